"""Rerunning one cell of a finished sweep: the README's one command.

``snakemake --forcerun results/<run>/cells/p~…/lam~…/seed~…/network.nc``, typed
without ``-c`` (the cores come from ``profiles/default``), redoes that cell's
simulation and everything after it: the fit of its <p, λ> (pooled over the
seeds), the masses and compare of every seed of that <p, λ>, then the cube and
the figures. It runs on a copy of the tiny sweep shared with
``test_reliability.py`` and ``test_determinism.py``; the simulation is
deterministic, so the cube's data come out the same.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_reliability import (
    _assert_same_cube,
    _benchmark,
    _copy_run,
    _finished,
    _job_counts,
    _results,
)

from conftest import SNAKEFILE, pinned_tiny, reference_run

#: the cell to rerun: not the diagnostic cell, so the figures rerun for the cube alone
PAIR = "p~0.500/lam~1.000"
CELL = f"{PAIR}/seed~0000"


@pytest.fixture(scope="session")
def reference(tmp_path_factory) -> Path:
    return reference_run(tmp_path_factory)


@pytest.mark.slow
def test_forcerun_of_a_network_file_reruns_that_cell_and_what_follows(
    reference, tmp_path, tmp_path_factory
):
    workdir = _copy_run(reference, tmp_path / "run")
    res_dir = _results(workdir)
    cube = res_dir / "cube.nc"
    figures = sorted((res_dir / "figures").glob("*.*"))
    before = _finished(workdir) | {p: p.stat().st_mtime_ns for p in [cube, *figures]}

    rel = f"results/tiny/cells/{CELL}/network.nc"
    cmd = [
        "snakemake", "-s", str(SNAKEFILE), "--directory", str(workdir),
        "--configfile", str(pinned_tiny(tmp_path_factory)), "--forcerun", rel,
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=workdir)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "workflow specific profile" in out  # no -c: profiles/default gave the cores

    chain = {"simulate": 1, "fit": 1, "masses": 2, "compare": 2, "gather": 1, "figures": 1}
    chain["all"] = 1
    assert _job_counts(out) == chain | {"total": sum(chain.values())}

    seeds = sorted((res_dir / "cells" / PAIR).glob("seed~*"))
    assert len(seeds) == 2
    expected = {res_dir / "cells" / CELL / "network.nc", res_dir / "cells" / PAIR / "fit.nc"}
    expected |= {s / f"{r}.nc" for s in seeds for r in ("masses", "compare")}
    expected |= {_benchmark(f) for f in expected} | {cube, *figures}
    redone = {p for p, t in before.items() if p.stat().st_mtime_ns != t}
    assert redone == expected, sorted(map(str, redone ^ expected))
    _assert_same_cube(workdir, reference)
