"""The test-only kill points of :mod:`nmmval.faults`: where they are, what they do.

A point that fires SIGKILLs its process group, so it is only ever reached in
child processes started in a session of their own, never in pytest's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from nmmval import cli, faults
from nmmval.sim.lif import BLOCK_STEPS

from conftest import ROOT

#: passes the points block=1 .. block=4, printing each one passed
CHILD = (
    "from nmmval import faults\n"
    "for k in range(1, 5):\n"
    "    faults.reached('block', k)\n"
    "    print(k, flush=True)\n"
)


def _child(env: dict, setup: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", setup + CHILD],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        start_new_session=True,
        timeout=120,
    )


def test_the_point_named_kills_the_group_once(tmp_path):
    token = tmp_path / "token"
    env = {faults.VARIABLE: f"block=3:{token}"}
    first = _child(env)
    assert first.returncode == -signal.SIGKILL
    assert first.stdout.split() == ["1", "2"]
    assert token.read_text().isdigit()
    assert sorted(tmp_path.iterdir()) == [token]
    # a later run (another process group) finds the token and goes on
    again = _child(env)
    assert again.returncode == 0 and again.stdout.split() == ["1", "2", "3", "4"]


def test_a_job_reaching_the_point_while_its_group_is_killed_dies_too(tmp_path):
    token = tmp_path / "token"
    # the token as the first job of the same group leaves it, the signal still on its way
    setup = f"import os\nopen({str(token)!r}, 'w').write(str(os.getpgrp()))\n"
    res = _child({faults.VARIABLE: f"block=2:{token}"}, setup)
    assert res.returncode == -signal.SIGKILL and res.stdout.split() == ["1"]


@pytest.mark.parametrize("value", [None, "", "block=9:{token}", "written=block:{token}"])
def test_without_the_variable_or_at_other_points_nothing_happens(tmp_path, value):
    token = tmp_path / "token"
    env = {faults.VARIABLE: value.format(token=token)} if value is not None else {}
    res = _child(env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["1", "2", "3", "4"]
    assert list(tmp_path.iterdir()) == []


def test_a_variable_without_token_is_an_error(monkeypatch):
    monkeypatch.setenv(faults.VARIABLE, "block=3")
    with pytest.raises(RuntimeError, match="expected POINT:TOKEN_FILE"):
        faults.reached("block", 3)


def test_simulate_passes_every_block_then_the_written_and_the_renamed_file(tmp_path, monkeypatch):
    """The points of ``nmmval simulate`` in order: block=1 .. block=K; written=network.nc,
    the temporary file alone there; renamed=network.nc, the final file alone there."""
    out = tmp_path / "network.nc"
    passed = []

    def record(name, value):
        passed.append((name, value, sorted(p.name for p in tmp_path.iterdir())))

    monkeypatch.delenv(faults.VARIABLE, raising=False)
    monkeypatch.setattr(faults, "reached", record)
    config = ["--config", str(ROOT / "config" / "config.yaml"), "--set", "network.N=100"]
    config += ["--set", "simulation.T_ms=300", "--set", "simulation.T0_ms=100"]
    cell = ["--p", "0.1", "--lam", "0.8", "--seed", "0", "--out", str(out)]
    assert cli.main(["simulate", *config, *cell]) == 0
    n_blocks = -(-3000 // BLOCK_STEPS)
    blocks = [("block", k) for k in range(1, n_blocks + 1)]
    points = [(name, value) for name, value, _ in passed]
    assert points == [*blocks, ("written", "network.nc"), ("renamed", "network.nc")]
    *_, (_, _, at_written), (_, _, at_renamed) = passed
    assert len(at_written) == 1
    assert at_written[0].startswith(".network.nc.") and at_written[0].endswith(".tmp.nc")
    assert at_renamed == ["network.nc"]
