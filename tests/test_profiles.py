"""The Snakemake profiles: installing them for a user, and Snakemake resolving them.

``profiles/default`` is the workflow profile Snakemake reads by itself (from the
working directory or next to the Snakefile); its keys win over ``--profile``'s,
so it must not undo what ``profiles/slurm`` sets.

Every test uses a temporary HOME and XDG_CONFIG_HOME, so the real
``~/.config/snakemake`` is never touched. The dry runs need no Slurm: the
slurm executor plugin only has to be installed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.cli import parse_args
from snakemake.utils import available_cpu_count

from nmmval.profiles import ProfileError, install_profile, profiles_dir, user_root

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
TINY = REPO / "tests" / "data" / "tiny.yaml"
PROFILE_FILE = "config.v8+.yaml"

needs_slurm_plugin = pytest.mark.skipif(
    importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
    reason="snakemake-executor-plugin-slurm not installed (pip install 'nmmval[slurm]')",
)


@pytest.fixture
def fake_home(tmp_path, monkeypatch):
    """A temporary HOME and XDG_CONFIG_HOME; returns the environment for subprocesses."""
    home = tmp_path / "home"
    xdg = home / ".config"
    xdg.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba")
    return env


def _dry_run(profile: str | None, cwd: Path, workdir: Path, env: dict) -> str:
    """Output of ``snakemake -n`` on the tiny config, with ``--profile profile`` if given."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [
        "snakemake", *(["--profile", profile] if profile else []), "-n",
        "-s", str(SNAKEFILE), "--directory", str(workdir), "--configfile", str(TINY),
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    return out


def _simulate_resources(out: str) -> str:
    """The 'resources:' line of the first simulate job in a dry run's output."""
    block = out.split("rule simulate:", 1)[1]
    return next(line for line in block.splitlines() if line.strip().startswith("resources:"))


# ------------------------------------------------------------------ profile files
@pytest.mark.parametrize("name", ["default", "slurm"])
def test_profile_file_is_valid_yaml(name):
    cfg = yaml.safe_load((profiles_dir() / name / PROFILE_FILE).read_text())
    assert isinstance(cfg, dict) and cfg


def test_slurm_profile_keys():
    cfg = yaml.safe_load((profiles_dir() / "slurm" / PROFILE_FILE).read_text())
    assert cfg["executor"] == "slurm"
    assert cfg["slurm-logdir"]
    assert cfg["slurm-init-seconds-before-status-checks"] > 0
    for rule in ("simulate", "fit", "masses", "compare"):
        res = cfg["set-resources"][rule]
        assert {"mem_mb", "runtime", "cpus_per_task"} <= set(res), rule
        assert res["cpus_per_task"] == cfg["set-threads"][rule], rule
    # the account and partition are the user's to fill in, not ours
    assert "slurm_account" not in cfg["default-resources"]
    assert "slurm_partition" not in cfg["default-resources"]


def test_default_profile_undoes_nothing_of_the_slurm_profile():
    """Read beside ``--profile slurm``, profiles/default's keys would win: it sets no
    executor and no key of the slurm profile to another value."""
    cfg = yaml.safe_load((profiles_dir() / "default" / PROFILE_FILE).read_text())
    slurm = yaml.safe_load((profiles_dir() / "slurm" / PROFILE_FILE).read_text())
    assert cfg["cores"] == "all"
    assert "executor" not in cfg and "jobs" not in cfg
    assert not any(key.startswith("slurm") for key in cfg)
    assert {k: slurm[k] for k in cfg.keys() & slurm.keys()} == {
        k: cfg[k] for k in cfg.keys() & slurm.keys()
    }


def test_plain_snakemake_uses_all_cores(monkeypatch):
    """`snakemake` as typed in the repository: profiles/default gives the cores."""
    monkeypatch.chdir(REPO)
    _, args = parse_args([])
    assert args.cores == available_cpu_count()
    assert args.executor is None


@needs_slurm_plugin
def test_slurm_profile_settings_survive_the_default_profile(monkeypatch):
    """`snakemake --profile profiles/slurm` in the repository reads profiles/default too
    and still submits to Slurm with the slurm profile's settings."""
    monkeypatch.chdir(REPO)
    slurm = yaml.safe_load((profiles_dir() / "slurm" / PROFILE_FILE).read_text())
    _, args = parse_args(["--profile", "profiles/slurm"])
    assert args.executor == "slurm"
    assert args.jobs == slurm["jobs"]
    assert args.latency_wait == slurm["latency-wait"]
    assert args.keep_going is slurm["keep-going"]
    assert args.retries == slurm["retries"]
    assert args.rerun_incomplete is slurm["rerun-incomplete"]


# ------------------------------------------------------------------ install_profile
def test_install_into_xdg_config_home(fake_home):
    dest = install_profile("slurm")
    assert dest == Path(os.environ["XDG_CONFIG_HOME"]) / "snakemake" / "slurm"
    assert dest == user_root() / "slurm"
    src = profiles_dir() / "slurm" / PROFILE_FILE
    assert (dest / PROFILE_FILE).read_bytes() == src.read_bytes()


def test_install_defaults_to_dot_config_without_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert install_profile("default") == tmp_path / ".config" / "snakemake" / "default"


def test_install_identical_is_a_noop(tmp_path):
    dest = install_profile("slurm", dest_root=tmp_path)
    mtime = (dest / PROFILE_FILE).stat().st_mtime_ns
    assert install_profile("slurm", dest_root=tmp_path) == dest
    assert (dest / PROFILE_FILE).stat().st_mtime_ns == mtime


def test_install_refuses_to_overwrite_a_different_profile(tmp_path):
    dest = install_profile("slurm", dest_root=tmp_path)
    (dest / PROFILE_FILE).write_text("jobs: 1\n")
    with pytest.raises(ProfileError, match="force"):
        install_profile("slurm", dest_root=tmp_path)
    assert (dest / PROFILE_FILE).read_text() == "jobs: 1\n"
    (dest / "extra.yaml").write_text("x: 1\n")
    install_profile("slurm", dest_root=tmp_path, force=True)
    assert not (dest / "extra.yaml").exists()
    src = profiles_dir() / "slurm" / PROFILE_FILE
    assert (dest / PROFILE_FILE).read_bytes() == src.read_bytes()


def test_install_unknown_profile_names_the_available_ones(tmp_path):
    with pytest.raises(ProfileError, match="available: default, slurm"):
        install_profile("nope", dest_root=tmp_path)
    with pytest.raises(ProfileError):
        install_profile("../slurm", dest_root=tmp_path)


# ------------------------------------------------------------------ Snakemake resolves them
@needs_slurm_plugin
def test_installed_slurm_profile_resolves_by_name(fake_home, tmp_path):
    install_profile("slurm")
    elsewhere = tmp_path / "elsewhere"  # no ./slurm here: only the installed one matches
    elsewhere.mkdir()
    out = _dry_run("slurm", cwd=elsewhere, workdir=tmp_path / "work", env=fake_home)
    # the profile's per-rule requests, not the rule's own (tiny) ones
    line = _simulate_resources(out)
    assert "mem_mb=1500" in line and "runtime=30" in line and "cpus_per_task=2" in line, line
    assert "This was a dry-run" in out


@needs_slurm_plugin
def test_repo_slurm_profile_resolves_from_repo_root(fake_home, tmp_path):
    out = _dry_run("profiles/slurm", cwd=REPO, workdir=tmp_path / "work", env=fake_home)
    assert "Using profiles profiles/slurm and workflow specific profile" in out
    line = _simulate_resources(out)
    assert "mem_mb=1500" in line and "cpus_per_task=2" in line, line


def test_default_profile_is_read_next_to_the_snakefile(fake_home, tmp_path):
    """Without --profile, from any folder: Snakemake finds profiles/default by the
    Snakefile (`snakemake -s .../Snakefile --directory ...` as the tests run it)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = _dry_run(None, cwd=elsewhere, workdir=tmp_path / "work", env=fake_home)
    assert f"workflow specific profile {REPO / 'profiles' / 'default'}" in out
    assert "This was a dry-run" in out


def test_cli_profile_install_and_refusal(tmp_path):
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "nmmval.cli", "profile", "install", "slurm"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    dest = tmp_path / "snakemake" / "slurm" / "config.v8+.yaml"
    assert dest.exists()
    dest.write_text(dest.read_text() + "\n# edited by the user\n")
    again = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1 and again.stderr.startswith("nmmval: ")
    forced = subprocess.run([*cmd, "--force"], capture_output=True, text=True, env=env)
    assert forced.returncode == 0
    assert "edited by the user" not in dest.read_text()
