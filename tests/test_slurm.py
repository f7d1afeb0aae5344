"""The tiny sweep through a real Slurm cluster, with the users' Slurm profile.

As root on Debian, ``tests/cluster/slurm-single-node.sh start`` brings up (and,
the first time, installs) a single-node Slurm 22.05 with accounting on this
machine; anywhere else these tests are skipped with the reason. The workflow
then runs with ``--profile profiles/slurm`` plus a test override (partition
``debug``, small requests, short status-check delay).

A clean sweep must:

- run every heavy job (rules simulate, fit, masses, compare) inside a Slurm
  job: each ``sbatch`` of the run is in ``sacct``, COMPLETED, under the run's
  job name, and the job logs name the rule and cell each one ran (the profile
  groups a cell's masses and compare into one job; simulate runs alone, as
  masses needs the fit of all the seeds of its <p, λ>);
- produce the same cube as the same config run locally (``profiles/default``).

A second sweep, with the profile's ``retries``, meets three faults, each on
cells of its own: ``slurmd`` restarted while jobs run (they carry on), a job
that hangs past its time limit (Slurm ends it, TIMEOUT, and Snakemake
resubmits it) and a job cancelled with ``scancel`` while it runs (the plugin
never notices: once the run waits for nothing else it is interrupted, and the
same command run again redoes just that cell and what it held back: the fit
of its <p, λ> and the masses and compare of its other seeds). No cell runs
twice but by its fault, and the cube is the local one.

4–5 min on 2 idle cores, up to 9 min under load (see tests/cluster/README.md).
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
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import xarray as xr
import yaml

from nmmval.store import CELL_PATTERN

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
TINY = REPO / "tests" / "data" / "tiny.yaml"
CLUSTER_SCRIPT = REPO / "tests" / "cluster" / "slurm-single-node.sh"
HEAVY_RULES = ("simulate", "fit", "masses", "compare")
#: the rules run once per cell <p, lam, seed>; fit runs once per <p, lam>
CELL_RULES = ("simulate", "masses", "compare")
N_SEEDS = 2  # tiny.yaml: 2 p x 2 lambda x 2 seeds
N_CELLS = 4 * N_SEEDS
N_FITS = 4
PARTITION = "debug"
PROFILE = yaml.safe_load((REPO / "profiles" / "slurm" / "config.v8+.yaml").read_text())
# Slurm jobs a cell needs: simulate, then masses and compare in one job (the profile's
# groups: masses needs the fit of all seeds, so simulate cannot join them), or one a rule.
JOBS_PER_CELL = 2 if PROFILE.get("groups") else len(CELL_RULES)
# Steps a cancelled simulate job holds back: itself, the fit of its <p, lam>, and masses
# and compare of every seed of that <p, lam>
HELD_BACK = 2 + 2 * N_SEEDS
# In a Slurm job's log the jobstep announces each rule it runs, then its wildcards.
JOBSTEP_RULE = re.compile(r"^\s*localrule (\w+):\n(?:.*\n)*?\s*wildcards: (.+)$", re.MULTILINE)
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: (.+?)\)")
# Slurm job states in which a job may still change (any other state is final).
ACTIVE_STATES = {"PENDING", "RUNNING", "COMPLETING", "REQUEUED", "SUSPENDED", "CONFIGURING"}
# Upper bound of each wait of the fault sweep: generous, for a loaded 2-core machine.
FAULT_WAIT = 300.0

# one worker runs both tests (pytest-xdist --dist loadgroup): the cluster is one per machine
pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.xdist_group("slurm")]

# The test's override of profiles/slurm (a --workflow-profile: its keys win).
# Small requests so that both CPUs of the test node run jobs side by side.
TEST_OVERRIDE = {
    "jobs": 4,
    "latency-wait": 5,
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

T = TypeVar("T")


#: how long Snakemake may take to stop on Ctrl-C (it cancels its Slurm jobs
#: first): seconds idle, over a minute beside two busy processes and a suite
INTERRUPT_WAIT_S = 300


class _Background:
    """A command running in the background, its output going to a log file.

    Leaving the ``with`` block while it still runs (a failed assertion, a
    timeout) interrupts it with SIGINT, on which Snakemake cancels its Slurm
    jobs, and kills it :data:`INTERRUPT_WAIT_S` later if it has not ended.
    """

    def __init__(self, cmd: list[str], cwd: Path, log_path: Path):
        self.cmd = cmd
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def __enter__(self) -> _Background:
        return self

    def __exit__(self, *exc_info) -> None:
        if self.proc.poll() is None:
            self.interrupt()
        self._log.close()

    def interrupt(self) -> int:
        """SIGINT (Ctrl-C), SIGKILL :data:`INTERRUPT_WAIT_S` later if still
        running; returns the exit code."""
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout=INTERRUPT_WAIT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()

    def text(self) -> str:
        """Everything the command has written so far."""
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        """The exit code; fails the test if the command runs longer than timeout s."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.interrupt()
            pytest.fail(f"{self.cmd[0]} timed out after {timeout:.0f} s; log: {self.log_path}")


def _run(cmd: list[str], cwd: Path, log_path: Path, timeout: float) -> int:
    """Run cmd with output to log_path; returns the exit code (see ``_Background``)."""
    with _Background(cmd, cwd, log_path) as run:
        return run.wait(timeout)


def _tail(path: Path, n: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


def _poll(
    what: str, probe: Callable[[], T | None], timeout: float, run: _Background | None = None
) -> T:
    """Call probe every second until it returns something other than None.

    Fails the test after timeout s, or as soon as ``run`` (a ``_Background``)
    has ended without probe finding what it waits for.
    """
    deadline = time.monotonic() + timeout
    while (found := probe()) is None:
        if run is not None and run.proc.poll() is not None:
            pytest.fail(
                f"run ended (exit {run.proc.returncode}) before {what}:\n{_tail(run.log_path)}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout:.0f} s")
        time.sleep(1)
    return found


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
def local_cube(tiny_run):
    """The tiny config's cube, run locally (the session's tiny run, tests/conftest.py)."""
    return tiny_run / "cube.nc"


def _slurm_sweep(tmp_path: Path, **override) -> tuple[list[str], Path]:
    """The command of the tiny sweep through Slurm, and its working directory.

    The profile is profiles/slurm with TEST_OVERRIDE, updated by ``override``.
    """
    profile = tmp_path / "test-profile"
    profile.mkdir()
    settings = TEST_OVERRIDE | override
    (profile / "config.v8+.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    workdir = tmp_path / "work"
    workdir.mkdir()
    cmd = [
        "snakemake", "--profile", str(REPO / "profiles" / "slurm"),
        "--workflow-profile", str(profile),
        "-s", str(SNAKEFILE), "--directory", str(workdir), "--configfile", str(TINY),
    ]  # fmt: skip
    return cmd, workdir


def _run_id(text: str) -> str | None:
    """The plugin's run id, which is the Slurm job name of all the run's jobs."""
    match = re.search(r"SLURM run ID: (\S+)", text)
    return match.group(1) if match else None


def _sacct(run_id: str, since: float) -> list[dict[str, str]]:
    """The run's Slurm jobs: id, name, comment and state (``CANCELLED by 0``: CANCELLED)."""
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 120))
    cmd = ["sacct", "-a", "-X", "-n", "-P", "-S", start, "--name", run_id]
    cmd.append("--format=JobID,JobName,Comment,State")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    keys = ("jobid", "name", "comment", "state")
    rows = [dict(zip(keys, line.split("|"), strict=True)) for line in res.stdout.splitlines()]
    for row in rows:
        row["state"] = row["state"].split()[0]
    return rows


def _final_sacct(run_id: str, since: float) -> list[dict[str, str]]:
    """_sacct once no job of the run is active (accounting may lag a job's end)."""

    def final():
        rows = _sacct(run_id, since)
        return rows if not any(r["state"] in ACTIVE_STATES for r in rows) else None

    return _poll(f"final accounting of run {run_id}", final, timeout=60)


def _cells_started(job_log: Path) -> set[str]:
    """The cells (their wildcards) of the rules a Slurm job's log shows started."""
    if not job_log.exists():
        return set()
    return {cell for _, cell in JOBSTEP_RULE.findall(job_log.read_text(errors="replace"))}


def _states_by_cell(text: str, since: float) -> dict[str, list[str]]:
    """Cell -> the final states of the Slurm jobs a run (its log: text) ran for it.

    In submission order; a job's cell is the one its log shows it started.
    """
    submitted = dict(SUBMITTED.findall(text))
    rows = _final_sacct(_run_id(text), since)
    assert {r["jobid"] for r in rows} == set(submitted), (rows, submitted)
    states = defaultdict(list)
    for row in sorted(rows, key=lambda r: int(r["jobid"])):
        cells = _cells_started(Path(submitted[row["jobid"]]))
        assert len(cells) == 1, (row, submitted[row["jobid"]], cells)
        states[cells.pop()].append(row["state"])
    return dict(states)


def _pair(cell: str) -> str:
    """The ``p=…, lam=…`` part of a cell's wildcards: its fit job's."""
    return ", ".join(kv for kv in cell.split(", ") if not kv.startswith("seed="))


def _cell_dir(cell: str) -> Path:
    """A cell's directory below results/<run>/cells from its wildcards ``p=…, lam=…, seed=…``."""
    return Path(CELL_PATTERN.format(**dict(kv.split("=") for kv in cell.split(", "))))


def _reported_failed(text: str, jobid: str) -> bool:
    """Whether Snakemake's log reports the Slurm job failed (names its log in an error).

    The error's ``log:`` line lists the rule's own log first, if the job ran one rule
    (simulate), then the Slurm job's log.
    """
    job_log = re.escape(dict(SUBMITTED.findall(text))[jobid])
    error = rf"log: (?:\S+, )?{job_log} \(check log file\(s\) for error details\)"
    return re.search(error, text) is not None


def _steps_done(text: str) -> int:
    """How many steps (rule runs) Snakemake's log reports done so far."""
    done = re.findall(r"^(\d+) of \d+ steps", text, re.MULTILINE)
    return int(done[-1]) if done else 0


def _squeue(run_id: str, *options: str) -> list[tuple[str, str]]:
    """(job id, comment) of the run's jobs that ``squeue`` lists with the options."""
    cmd = ["squeue", "-h", "-n", run_id, "-o", "%i|%k", *options]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return [tuple(line.split("|", 1)) for line in res.stdout.splitlines()]


def _running(run: _Background, skip: set[str]) -> dict[str, str]:
    """RUNNING Slurm jobs of the run that started a rule of a cell not in skip.

    A job is found by its name (the run id), its comment (``rule_<rule or
    group>…``, naming simulate) and its state; its cell is in its log.
    Returns job id -> cell.
    """
    text = run.text()
    run_id = _run_id(text)
    if run_id is None:
        return {}
    logs = dict(SUBMITTED.findall(text))
    found = {}
    for jobid, comment in _squeue(run_id, "-t", "RUNNING"):
        if comment.startswith("rule_") and "simulate" in comment and jobid in logs:
            cells = _cells_started(Path(logs[jobid])) - skip
            if cells:
                found[jobid] = cells.pop()
    return found


def _one_running(run: _Background, skip: set[str]) -> tuple[str, str]:
    """The first RUNNING job (id, cell) of the run on a cell not in skip; waits for one."""
    return _poll(
        f"running job of a cell other than {sorted(skip)}",
        lambda: next(iter(_running(run, skip).items()), None),
        FAULT_WAIT,
        run,
    )


def _check(*cmd: str) -> None:
    """Run a Slurm or cluster-script command; fail the test if it fails."""
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, (cmd, res.stdout, res.stderr)


def _job_processes(jobids: set[str]) -> list[int]:
    """PIDs of the processes on this machine that belong to one of the Slurm jobs."""
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            variables = environ.read_bytes().split(b"\0")
        except OSError:  # ended meanwhile
            continue
        if any(f"SLURM_JOB_ID={jobid}".encode() in variables for jobid in jobids):
            pids.append(int(environ.parent.name))
    return pids


def _describe(pids: list[int]) -> str:
    """'pid state command' of each process, for a failure message."""
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # ended meanwhile
            continue
        out.append(f"{pid} {state} {command.strip()}")
    return "; ".join(out) or "none by now"


def _mtimes(root: Path) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in root.rglob("*") if path.is_file()}


def _same_attrs(a: dict, b: dict) -> None:
    keep_a = {k: v for k, v in a.items() if not VOLATILE_ATTRS.search(k)}
    keep_b = {k: v for k, v in b.items() if not VOLATILE_ATTRS.search(k)}
    assert keep_a.keys() == keep_b.keys()
    for key in keep_a:
        assert str(keep_a[key]) == str(keep_b[key]), key


def _assert_same_cube(cube: Path, local_cube: Path) -> None:
    """The two cubes agree bit for bit, attributes included (but run times, hosts)."""
    with xr.open_dataset(cube) as slurm, xr.open_dataset(local_cube) as local:
        xr.testing.assert_equal(slurm, local)
        for name in slurm.variables:
            xr.testing.assert_allclose(slurm[name], local[name], rtol=0, atol=0)
            _same_attrs(slurm[name].attrs, local[name].attrs)
        _same_attrs(slurm.attrs, local.attrs)


def test_tiny_sweep_through_slurm_matches_local(slurm_cluster, local_cube, tmp_path):
    cmd, workdir = _slurm_sweep(tmp_path, retries=0)  # a clean run needs no retry
    log = tmp_path / "snakemake-slurm.log"
    t0 = time.time()
    rc = _run(cmd, cwd=workdir, log_path=log, timeout=1200)
    wall = time.time() - t0
    text = log.read_text(errors="replace")
    assert rc == 0, _tail(log, 60)
    print(f"tiny sweep through Slurm: {wall:.1f} s", file=sys.stderr)

    # 1. every heavy job ran inside a Slurm job: each sbatch of this run (job name =
    #    the run's id) is COMPLETED in the accounting, and the job logs (kept in the
    #    profile's slurm-logdir) show which rule and cell each one ran
    run_id = _run_id(text)
    assert run_id, "no 'SLURM run ID' in the log: did the slurm executor run?"
    submitted = dict(SUBMITTED.findall(text))
    rows = _final_sacct(run_id, since=t0)
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
        n = N_CELLS if rule in CELL_RULES else N_FITS
        assert len(ran[rule]) == len(set(ran[rule])) == n, (rule, ran[rule])
    assert len(rows) == JOBS_PER_CELL * N_CELLS + N_FITS, rows  # and no retries

    # 2. the same cube as the local run, bit for bit
    _assert_same_cube(workdir / "results" / "tiny" / "cube.nc", local_cube)


def test_slurm_faults_recover(slurm_cluster, local_cube, tmp_path):
    """slurmd restart, time limit, scancel: one sweep, each fault on cells of its own.

    In order, while the sweep runs with the profile's ``retries``:

    1. slurmd restart: once two jobs run (a rule of their cell started), the
       cluster script restarts ``slurmd``. These jobs carry on: each of their
       cells completes in its first job;
    2. time limit: the next job to run a new cell hangs (``scancel
       --signal=STOP`` stops its running rule) and its limit is cut to 1 min,
       Slurm's smallest. Slurm ends it at the limit (TIMEOUT) and leaves no
       process of it, the plugin reports the failure and Snakemake resubmits
       the cell once, which completes;
    3. scancel: the next job to run a new cell is cancelled while it runs.
       The plugin never reports it (it reads sacct's ``CANCELLED by <uid>``
       as still running), so the run waits for it after everything else is
       done. Then it is interrupted (Ctrl-C) and the same command run again:
       that rerun submits just the cancelled cell and rewrites no output of a
       finished cell.

    No cell without a fault runs twice, and the final cube is the local one.
    """
    assert PROFILE.get("retries", 0) >= 1, "profiles/slurm must resubmit a failed job"
    cmd, workdir = _slurm_sweep(tmp_path)
    log = tmp_path / "snakemake-slurm-faults.log"
    t0 = time.time()
    with _Background(cmd, cwd=workdir, log_path=log) as run:

        def two_running() -> dict[str, str] | None:
            jobs = _running(run, skip=set())
            return jobs if len(jobs) >= 2 else None

        survivors = set(_poll("two running jobs", two_running, FAULT_WAIT, run).values())
        _check("bash", str(CLUSTER_SCRIPT), "restart-slurmd")
        hung_job, hung_cell = _one_running(run, skip=survivors)
        _check("scancel", "--signal=STOP", hung_job)
        _check("scontrol", "update", f"JobId={hung_job}", "TimeLimit=1")
        cancelled_job, cancelled_cell = _one_running(run, skip=survivors | {hung_cell})
        _check("scancel", cancelled_job)

        def waiting_for_cancelled() -> bool | None:
            """True once all but the cancelled cell is done and no job is left in Slurm."""
            text = run.text()
            if _reported_failed(text, cancelled_job):
                pytest.fail(
                    "the plugin now reports a scancelled job as failed: test the retry "
                    "instead, and update tests/cluster/README.md"
                )
            all_but_held = _steps_done(text) == len(CELL_RULES) * N_CELLS + N_FITS - HELD_BACK
            return (all_but_held and not _squeue(_run_id(text))) or None

        _poll("run waiting for the cancelled job only", waiting_for_cancelled, 900, run)
        stopped = run.interrupt()
    print(f"tiny sweep through Slurm with faults: {time.time() - t0:.1f} s", file=sys.stderr)
    text = log.read_text(errors="replace")

    states = _states_by_cell(text, since=t0)
    # every cell, and every <p, lam>'s fit but the one the cancelled cell holds back
    assert len(states) == N_CELLS + N_FITS - 1, states
    done = ["COMPLETED"] * JOBS_PER_CELL
    fits = {c for c in states if "seed=" not in c}
    assert {c: states[c] for c in fits} == dict.fromkeys(fits, ["COMPLETED"]), states
    # the other seeds of the cancelled cell's <p, lam>: simulated, then waiting for its fit
    siblings = {c for c in states if c != cancelled_cell and _pair(c) == _pair(cancelled_cell)}

    def expected(cell: str) -> list[str]:
        """Its jobs' states: (a TIMEOUT,) simulate, then masses + compare unless held back."""
        first = ["TIMEOUT"] if cell == hung_cell else []
        return first + (done[:1] if cell in siblings else done)

    for cell in survivors:
        assert states[cell] == expected(cell), f"slurmd restart: {cell} not done in its first job"
    assert states[hung_cell] == expected(hung_cell), f"time limit: {hung_cell} not retried once"
    assert _reported_failed(text, hung_job), "time limit: the TIMEOUT not reported as an error"
    jobids = set(dict(SUBMITTED.findall(text)))
    left: list[int] = []

    def all_ended() -> bool | None:
        left[:] = _job_processes(jobids)
        return not left or None

    # FAULT_WAIT, not a minute: 60 s ran out once beside a sweep that held both cores
    try:
        _poll("time limit: end of every process of the run's jobs", all_ended, FAULT_WAIT)
    except pytest.fail.Exception as exc:
        pytest.fail(f"{exc.msg}; left: {_describe(left)}")
    assert states[cancelled_cell] == ["CANCELLED"], f"scancel: {cancelled_cell} resubmitted"
    others = set(states) - {cancelled_cell} - fits
    assert {c: states[c] for c in others} == {c: expected(c) for c in others}, (
        "a cell without a fault ran more than once"
    )

    # scancel, recovered: the same command again redoes the cancelled cell and what it held
    # back (the fit of its <p, lam>, masses and compare of its other seeds), nothing else
    cells = workdir / "results" / "tiny" / "cells"
    cancelled_dir = cells / _cell_dir(cancelled_cell)

    def finished_outputs() -> dict[Path, int]:
        return {p: t for p, t in _mtimes(cells).items() if not p.is_relative_to(cancelled_dir)}

    before = finished_outputs()
    if stopped == -signal.SIGKILL:  # Ctrl-C did not end it in time: the README's advice
        unlock = _run(
            [*cmd, "--unlock"], cwd=workdir, log_path=tmp_path / "unlock.log", timeout=120
        )
        assert unlock == 0, _tail(tmp_path / "unlock.log")
    rerun_log = tmp_path / "snakemake-slurm-rerun.log"
    t1 = time.time()
    assert _run(cmd, cwd=workdir, log_path=rerun_log, timeout=600) == 0, _tail(rerun_log, 60)
    print(f"rerun after the scancel: {time.time() - t1:.1f} s", file=sys.stderr)
    rerun = _states_by_cell(rerun_log.read_text(errors="replace"), since=t1)
    held_back = {cancelled_cell: done, _pair(cancelled_cell): ["COMPLETED"]}
    held_back |= dict.fromkeys(siblings, done[1:])  # their masses + compare
    assert rerun == held_back, "scancel: the rerun did not redo just what the cancel held back"
    after = finished_outputs()
    assert {p: after.get(p) for p in before} == before, (
        "scancel: the rerun rewrote outputs of finished cells"
    )
    _assert_same_cube(workdir / "results" / "tiny" / "cube.nc", local_cube)
