"""The tiny sweep through a real Slurm cluster, with the users' Slurm profile.

As root on Debian, ``tests/cluster/slurm-single-node.sh start`` brings up (and,
the first time, installs) a single-node Slurm 22.05 with accounting on this
machine; anywhere else these tests are skipped with the reason. The workflow
then runs with ``--profile profiles/slurm`` plus a test override (partition
``debug``, small requests, short status-check delay) and must:

- run every heavy job (rules simulate, masses, compare) inside a Slurm job:
  each ``sbatch`` of the run is in ``sacct``, COMPLETED, under the run's job
  name, and the job logs name the rule and cell each one ran (the profile
  groups a cell's three rules into one job);
- produce the same cube as the same config run locally (``profiles/local``).

A few minutes on 2 cores (see tests/cluster/README.md).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import xarray as xr
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
TINY = REPO / "tests" / "data" / "tiny.yaml"
CLUSTER_SCRIPT = REPO / "tests" / "cluster" / "slurm-single-node.sh"
HEAVY_RULES = ("simulate", "masses", "compare")
N_CELLS = 8  # tiny.yaml: 2 p x 2 lambda x 2 seeds
PARTITION = "debug"
PROFILE = yaml.safe_load((REPO / "profiles" / "slurm" / "config.v8+.yaml").read_text())
# In a Slurm job's log the jobstep announces each rule it runs, then its wildcards.
JOBSTEP_RULE = re.compile(r"^\s*localrule (\w+):\n(?:.*\n)*?\s*wildcards: (.+)$", re.MULTILINE)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# The test's override of profiles/slurm (a --workflow-profile: its keys win).
# Small requests so that both CPUs of the test node run jobs side by side.
TEST_OVERRIDE = {
    "jobs": 4,
    "latency-wait": 5,
    "retries": 0,
    "keep-going": False,
    "slurm-init-seconds-before-status-checks": 5,
    "slurm-keep-successful-logs": True,
    "default-resources": {
        "slurm_partition": PARTITION,
        "runtime": 10,
        "mem_mb": 500,
        "cpus_per_task": 1,
    },
    "set-threads": {rule: 1 for rule in HEAVY_RULES},
    "set-resources": {
        rule: {"mem_mb": 600, "runtime": 10, "cpus_per_task": 1} for rule in HEAVY_RULES
    },
}

# Cube attributes that may differ between two runs of the same config.
VOLATILE_ATTRS = re.compile(r"(date|time|created|history|wall|host|elapsed)", re.IGNORECASE)


def _run(cmd, cwd, log_path: Path, timeout: float) -> int:
    """Run cmd with output to log_path; on timeout SIGINT it (Snakemake then cancels
    its Slurm jobs), then SIGKILL. Returns the exit code."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            pytest.fail(f"{cmd[0]} timed out after {timeout:.0f} s; log: {log_path}")


def _tail(path: Path, n: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A running single-node Slurm cluster; skips where the script cannot make one."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("needs root on Debian to install and start Slurm (not root here)")
    if not Path("/etc/debian_version").is_file() or shutil.which("apt-get") is None:
        pytest.skip("needs Debian (apt-get) to install Slurm")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("snakemake-executor-plugin-slurm not installed (pip install 'nmmval[slurm]')")
    status = subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "status"], capture_output=True, text=True, timeout=60
    )
    was_running = re.search(r"^slurmctld\s+running", status.stdout, re.MULTILINE) is not None
    log = tmp_path_factory.mktemp("slurm-cluster") / "start.log"
    t0 = time.perf_counter()
    rc = _run(["bash", str(CLUSTER_SCRIPT), "start"], cwd=REPO, log_path=log, timeout=900)
    took = time.perf_counter() - t0
    if rc == 3:
        pytest.skip(f"apt-get could not install Slurm: {_tail(log, 5)}")
    if rc == 4:
        pytest.skip(f"machine not supported by {CLUSTER_SCRIPT.name}: {_tail(log, 2)}")
    assert rc == 0, f"cluster start failed (exit {rc}):\n{_tail(log)}"
    print(f"slurm cluster up in {took:.1f} s", file=sys.stderr)
    yield
    if not was_running:  # leave the machine as we found it
        subprocess.run(["bash", str(CLUSTER_SCRIPT), "stop"], capture_output=True, timeout=300)


@pytest.fixture(scope="session")
def local_cube(tmp_path_factory):
    """The tiny config's cube, run locally with profiles/local."""
    workdir = tmp_path_factory.mktemp("tiny-local")
    cmd = [
        "snakemake", "--profile", str(REPO / "profiles" / "local"), "--cores", "2",
        "-s", str(SNAKEFILE), "--directory", str(workdir), "--configfile", str(TINY),
    ]  # fmt: skip
    t0 = time.perf_counter()
    rc = _run(cmd, cwd=workdir, log_path=workdir / "snakemake.log", timeout=900)
    assert rc == 0, _tail(workdir / "snakemake.log")
    print(f"tiny sweep locally: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return workdir / "results" / "tiny" / "cube.nc"


def _sacct(run_id: str, since: float) -> list[dict[str, str]]:
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 120))
    cmd = ["sacct", "-a", "-X", "-n", "-P", "-S", start, "--name", run_id]
    cmd.append("--format=JobID,JobName,Comment,State")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    keys = ("jobid", "name", "comment", "state")
    return [dict(zip(keys, line.split("|"), strict=True)) for line in res.stdout.splitlines()]


def _same_attrs(a: dict, b: dict) -> None:
    keep_a = {k: v for k, v in a.items() if not VOLATILE_ATTRS.search(k)}
    keep_b = {k: v for k, v in b.items() if not VOLATILE_ATTRS.search(k)}
    assert keep_a.keys() == keep_b.keys()
    for key in keep_a:
        assert str(keep_a[key]) == str(keep_b[key]), key


def test_tiny_sweep_through_slurm_matches_local(slurm_cluster, local_cube, tmp_path):
    override = tmp_path / "test-profile"
    override.mkdir()
    (override / "config.v8+.yaml").write_text(yaml.safe_dump(TEST_OVERRIDE, sort_keys=False))
    workdir = tmp_path / "work"
    workdir.mkdir()
    log = tmp_path / "snakemake-slurm.log"
    cmd = [
        "snakemake", "--profile", str(REPO / "profiles" / "slurm"),
        "--workflow-profile", str(override),
        "-s", str(SNAKEFILE), "--directory", str(workdir), "--configfile", str(TINY),
    ]  # fmt: skip
    t0 = time.time()
    rc = _run(cmd, cwd=workdir, log_path=log, timeout=1200)
    wall = time.time() - t0
    text = log.read_text(errors="replace")
    assert rc == 0, _tail(log, 60)
    print(f"tiny sweep through Slurm: {wall:.1f} s", file=sys.stderr)

    # 1. every heavy job ran inside a Slurm job: each sbatch of this run (job name =
    #    the run's id) is COMPLETED in the accounting, and the job logs (kept in the
    #    profile's slurm-logdir) show which rule and cell each one ran
    match = re.search(r"SLURM run ID: (\S+)", text)
    assert match, "no 'SLURM run ID' in the log: did the slurm executor run?"
    run_id = match.group(1)
    submitted = dict(re.findall(r"submitted with SLURM jobid (\d+) \(log: (.+?)\)", text))
    deadline = time.monotonic() + 60
    while True:  # accounting records may lag the job's end by a moment
        rows = _sacct(run_id, since=t0)
        if all(r["state"] == "COMPLETED" for r in rows) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert {r["jobid"] for r in rows} == set(submitted), (rows, submitted)
    for row in rows:
        assert row["state"] == "COMPLETED", row
        assert row["comment"].startswith("rule_"), row  # the plugin's rule/group comment
    ran = defaultdict(list)  # rule -> cells it ran for, over all Slurm jobs
    for log_path in submitted.values():
        assert Path(log_path).is_relative_to(workdir / "logs" / "slurm"), log_path
        for rule, cell in JOBSTEP_RULE.findall(Path(log_path).read_text(errors="replace")):
            ran[rule].append(cell)
    assert set(ran) == set(HEAVY_RULES), dict(ran)  # gather, figures: local rules
    for rule in HEAVY_RULES:
        assert len(ran[rule]) == len(set(ran[rule])) == N_CELLS, (rule, ran[rule])
    # one sbatch a cell (the profile's groups) or a rule and cell (without them)
    n_jobs = N_CELLS if PROFILE.get("groups") else len(HEAVY_RULES) * N_CELLS
    assert len(rows) == n_jobs, rows  # and no retries

    # 2. the same cube as the local run, bit for bit
    with (
        xr.open_dataset(workdir / "results" / "tiny" / "cube.nc") as slurm,
        xr.open_dataset(local_cube) as local,
    ):
        xr.testing.assert_equal(slurm, local)
        for name in slurm.variables:
            xr.testing.assert_allclose(slurm[name], local[name], rtol=0, atol=0)
            _same_attrs(slurm[name].attrs, local[name].attrs)
        _same_attrs(slurm.attrs, local.attrs)
