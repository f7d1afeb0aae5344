"""Shared fixtures: configs of the repository and small variants of them, the
tiny workflow run, and a helper that kills a workflow run at a chosen point."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nmmval import config, faults

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
#: 2 p x 2 lambda x 2 seeds, N = 400, T = 1 s: the whole workflow in about 2 min on 2 cores
TINY = ROOT / "tests" / "data" / "tiny.yaml"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's top folder."""
    return ROOT


@pytest.fixture(scope="session")
def quick_params():
    """Params of the default (quick) config."""
    return config.load(ROOT / "config" / "config.yaml")


def small_params(**overrides):
    """The quick config with ``section.key=value`` overrides (a small, fast network)."""
    base = [
        "network.N=400",
        "simulation.T_ms=500",
        "simulation.T0_ms=100",
    ]
    extra = [f"{k.replace('__', '.')}={v}" for k, v in overrides.items()]
    return config.load(ROOT / "config" / "config.yaml", base + extra)


def snakemake_in(workdir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``snakemake`` on the repository's Snakefile with ``workdir`` as its working folder."""
    cmd = ["snakemake", "-s", str(SNAKEFILE), "--directory", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=workdir)


def job_counts(text: str, first: bool = False) -> dict[str, int]:
    """Rule -> count from Snakemake's 'Job stats' table in ``text``: the last one, or the
    first (the plan of a run that prints more than one) if ``first``."""
    counts, in_table = {}, False
    for line in text.splitlines():
        if line.startswith("Job stats:"):
            if first and counts:
                break
            in_table, counts = True, {}
            continue
        if in_table:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
            elif counts and not parts:
                if first:
                    break
                in_table = False
    return counts


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """One uninterrupted run of the tiny config; the results folder.

    Its working folder (``tiny_run.parents[1]``) is shared by the tests that use it:
    they may read it or run Snakemake there without changing any result.
    """
    workdir = tmp_path_factory.mktemp("tiny")
    t0 = time.perf_counter()
    res = snakemake_in(workdir, "--configfile", str(TINY), "-c", "2", timeout=600)
    wall = time.perf_counter() - t0
    assert res.returncode == 0, res.stderr[-3000:]
    print(f"tiny workflow: {wall:.1f} s", file=sys.stderr)
    return workdir / "results" / "tiny"


def kill_at(cmd: list[str], point: str, log: Path, timeout: float = 600) -> None:
    """Run ``cmd`` (a ``snakemake`` command) until a job SIGKILLs it at ``point``.

    ``cmd`` runs in a session of its own with ``NMMVAL_TEST_KILL`` set
    (:mod:`nmmval.faults`): the first job that reaches ``point`` (e.g.
    ``block=3``, ``written=compare.nc``) kills Snakemake and every job at once,
    leaving Snakemake's lock behind, as a user's ``kill -9`` of the run does.
    Output goes to ``log``; the token file lies next to it.
    """
    token = log.with_name(f"{log.name}.killed")
    env = {**os.environ, faults.VARIABLE: f"{point}:{token}"}
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:  # hung or the test failed: leave nothing running
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    tail = log.read_text()[-3000:]
    assert proc.returncode == -signal.SIGKILL, f"the run ended before {point}:\n{tail}"
    assert token.exists(), f"killed, but not at {point}:\n{tail}"
