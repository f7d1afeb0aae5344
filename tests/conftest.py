"""Shared fixtures: configs of the repository and small variants of them,
and a helper that kills a run at a chosen point."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from nmmval import config

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


def kill_when(proc: subprocess.Popen, seen, timeout: float = 300) -> list[Path]:
    """SIGKILL the whole process group as soon as ``seen()`` returns something."""
    deadline = time.monotonic() + timeout
    hit = []
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            hit = seen()
            if hit:
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert hit, "the awaited point of the run never came"
    return hit
