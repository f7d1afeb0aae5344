"""Shared fixtures: configs of the repository and small variants of them,
and a helper that kills a workflow run at a chosen point."""

import os
import signal
import subprocess
from pathlib import Path

import pytest

from nmmval import config, faults

ROOT = Path(__file__).resolve().parents[1]


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
