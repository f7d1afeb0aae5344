"""Shared fixtures: configs of the repository and small variants of them, the
tiny workflow run, and a helper that kills a workflow run at a chosen point.

The suite runs on pytest-xdist workers (``-n 2`` in pyproject.toml): what a
session makes once for all its workers (the tiny reference run) lives in
:func:`shared_tmp` and is made under a file lock by the first worker that
needs it.
"""

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

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


def shared_tmp(tmp_path_factory) -> Path:
    """This test session's folder shared by all its pytest-xdist workers.

    Each worker's base folder is ``<session folder>/popen-gw<k>``; without
    xdist the base folder itself.
    """
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def locked(path: Path):
    """Hold an exclusive lock on ``path`` (created if missing) across processes; closing
    the file releases it."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


#: the tiny config with every default filled in, written once per session (see
#: :func:`pinned_tiny`): runs of one session compare equal even if someone
#: changes a schema default meanwhile
_PINNED: dict[str, Path] = {}


def pinned_tiny(tmp_path_factory) -> Path:
    """tests/data/tiny.yaml, resolved (defaults filled in) once for the session."""
    path = shared_tmp(tmp_path_factory) / "tiny.pinned.yaml"
    with locked(path.with_suffix(".lock")):
        if not path.exists():
            resolved = config.validate(yaml.safe_load(TINY.read_text()))
            path.write_text(yaml.safe_dump(resolved, sort_keys=False))
    _PINNED["tiny"] = path
    return path


def tiny_command(workdir: Path, *extra: str) -> list[str]:
    """The tiny sweep's command (the one a user would type), plus extra flags; on the
    pinned config once :func:`pinned_tiny` has run in this process."""
    configfile = _PINNED.get("tiny", TINY)
    return [
        "snakemake", "-s", str(SNAKEFILE), "--directory", str(workdir),
        "--configfile", str(configfile), "-c", "2", *extra,
    ]  # fmt: skip


#: the workflow's jobs that run once per cell
CELL_JOBS = ("simulate", "masses", "compare")
#: the tiny sweep's cells (2 p x 2 lambda x 2 seeds) and fits (one per <p, lambda>)
TINY_CELLS, TINY_FITS = 8, 4


def cell_jobs(counts: dict[str, int]) -> int:
    """The jobs of :data:`CELL_JOBS` in a :func:`job_counts` table."""
    return sum(counts.get(k, 0) for k in CELL_JOBS)


def reference_run(tmp_path_factory) -> Path:
    """Working folder of one uninterrupted tiny sweep, made once per test session (by the
    first worker that asks; the others wait for it)."""
    pinned_tiny(tmp_path_factory)
    workdir = shared_tmp(tmp_path_factory) / "nmmval_tiny_reference"
    done = workdir / "DONE"
    with locked(workdir.with_suffix(".lock")):
        if not done.exists():
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir(parents=True)
            t0 = time.perf_counter()
            res = subprocess.run(
                tiny_command(workdir), capture_output=True, text=True, timeout=600, cwd=workdir
            )
            assert res.returncode == 0, res.stderr[-3000:]
            print(f"tiny workflow: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            counts = job_counts(res.stdout + res.stderr, first=True)
            assert cell_jobs(counts) == 3 * TINY_CELLS and counts.get("gather") == 1, counts
            assert counts.get("fit") == TINY_FITS, counts
            done.touch()
    return workdir


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """One uninterrupted run of the tiny config (:func:`reference_run`); the results folder.

    Its working folder (``tiny_run.parents[1]``) is shared by the tests that use it:
    they may read it or run Snakemake there without changing any result.
    """
    return reference_run(tmp_path_factory) / "results" / "tiny"


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
