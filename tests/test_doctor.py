"""``nmmval doctor``: one line per item with status and fix; exit code 1 if an item fails."""

import importlib.util
import os
import stat
import subprocess
import sys

import pytest

from nmmval import cli, doctor
from nmmval.profiles import install_profile

ITEMS = [
    "Slurm executor plugin",
    "profile for --profile slurm",
    "workflow profile",
    "sbatch",
    "sacct",
    "NUMBA_CACHE_DIR",
    "Numba threading layer",
    "cores",
]


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """A login node as it should be: Slurm commands, the profile installed, a cache folder."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sbatch", "sacct"):
        exe = bin_dir / name
        exe.write_text("#!/bin/sh\n")
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    install_profile("slurm", dest_root=tmp_path / "xdg" / "snakemake")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def _doctor(capsys):
    code = cli.main(["doctor"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(ITEMS), lines
    return code, dict(zip(ITEMS, lines, strict=True))


def _status(line):
    return line.split()[0]


def test_a_ready_login_node_passes(cluster, capsys):
    code, lines = _doctor(capsys)
    assert code == 0, lines
    for item, line in lines.items():
        assert line.split(maxsplit=1)[1].startswith(f"{item}: "), line
        assert _status(line) in ("ok", "warn"), line
    assert str(cluster / "xdg" / "snakemake" / "slurm" / "config.v8+.yaml") in lines[ITEMS[1]]
    assert lines["sbatch"] == f"ok    sbatch: {cluster / 'bin' / 'sbatch'}"
    assert "every node" in lines["NUMBA_CACHE_DIR"]  # shared or not, it says why it matters
    assert _status(lines["Numba threading layer"]) == "ok"


def test_missing_pieces_fail_with_their_fix(cluster, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(cluster / "empty"))
    not_a_folder = cluster / "file"
    not_a_folder.write_text("")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(not_a_folder / "numba"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(cluster / "nothing"))
    find_spec = importlib.util.find_spec

    def no_plugin(name, *args, **kwargs):
        return None if name == doctor.PLUGIN else find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", no_plugin)
    code, lines = _doctor(capsys)
    assert code == 1
    plugin = lines["Slurm executor plugin"]
    assert _status(plugin) == "fail" and "pip install snakemake-executor-plugin-slurm" in plugin
    assert "pip install 'nmmval[slurm]'" in plugin
    profile = lines["profile for --profile slurm"]
    assert _status(profile) == "fail" and "fix: nmmval profile install slurm" in profile
    assert str(cluster / "nothing" / "snakemake") in profile
    for name in ("sbatch", "sacct"):
        assert lines[name].startswith(f"fail  {name}: not on PATH; fix: ")
    cache = lines["NUMBA_CACHE_DIR"]
    assert _status(cache) == "fail" and f"{not_a_folder} is not a folder" in cache
    assert "fix: export NUMBA_CACHE_DIR=" in cache


def test_unset_cache_checks_the_workflows_default(cluster, monkeypatch, capsys):
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setenv("HOME", str(cluster / "home"))
    _, lines = _doctor(capsys)
    expected = cluster / "home" / ".cache" / "nmmval" / "numba"
    assert f"unset; the workflow's jobs use {expected}, writable" in lines["NUMBA_CACHE_DIR"]


def test_tbb_fails_and_one_core_warns(cluster, monkeypatch, capsys):
    monkeypatch.setattr(doctor, "_threading_layer", lambda: "tbb")
    monkeypatch.setattr(doctor, "available_cpus", lambda: 1)
    code, lines = _doctor(capsys)
    assert code == 1
    layer = lines["Numba threading layer"]
    assert layer.startswith("fail  Numba threading layer: tbb")
    assert layer.endswith("fix: export NUMBA_THREADING_LAYER=omp (or workqueue)")
    assert lines["cores"].startswith("warn  cores: 1 available to this process")


def test_a_workflow_profile_that_overrides_slurm_settings_warns(cluster, capsys):
    default = cluster / "work" / "profiles" / "default"
    default.mkdir(parents=True)
    (default / "config.v8+.yaml").write_text("cores: all\nlatency-wait: 5\nkeep-going: false\n")
    code, lines = _doctor(capsys)
    assert code == 0
    line = lines["workflow profile"]
    assert _status(line) == "warn"
    assert "overrides the slurm profile's keep-going, latency-wait;" in line
    assert line.endswith("fix: snakemake --profile slurm --workflow-profile none")


def test_a_profile_that_does_not_submit_to_slurm_warns(cluster, capsys):
    local = cluster / "work" / "slurm"  # Snakemake looks in the working directory first
    local.mkdir()
    (local / "config.v8+.yaml").write_text("cores: all\n")
    _, lines = _doctor(capsys)
    line = lines["profile for --profile slurm"]
    assert _status(line) == "warn" and "runs jobs locally, not on Slurm" in line


def test_tbb_asked_for_in_the_environment_fails(tmp_path):
    # in a process of its own: Numba loads its threading layer once. The Slurm
    # plugin asks `scontrol show config` when Snakemake is imported (10 s
    # without a controller): a stub answers at once
    stub = tmp_path / "scontrol"
    stub.write_text("#!/bin/sh\nexit 1\n")
    stub.chmod(0o755)
    path = f"{tmp_path}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "NUMBA_THREADING_LAYER": "tbb", "PATH": path}
    res = subprocess.run(
        [sys.executable, "-m", "nmmval.cli", "doctor"], capture_output=True, text=True, env=env
    )
    assert res.returncode == 1, res.stdout + res.stderr
    (line,) = [ln for ln in res.stdout.splitlines() if "Numba threading layer" in ln]
    # tbb loaded, or not installed: a failure either way, with the fix
    assert line.startswith("fail  Numba threading layer: ")
    assert line.endswith("fix: export NUMBA_THREADING_LAYER=omp (or workqueue)")
