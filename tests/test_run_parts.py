"""docs/run_parts.py: a run carried across machines in parts gives the cube of one machine.

The tiny sweep's results are copied and one seed's compare.nc is held back,
as if the machine had been lost before that job: the first save must leave
that cell out (and ``missing`` list exactly its targets), a second save,
once the file is back, must add only that cell, and the merged parts must
hold the same values as the summary of the cube that ``nmmval gather`` made
of the whole run.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys

import numpy as np
import pytest
import xarray as xr

from conftest import ROOT, TINY_FITS

pytestmark = pytest.mark.slow

sys.path.insert(0, str(ROOT / "docs"))
run_parts = importlib.import_module("run_parts")
results_tables = importlib.import_module("results_tables")
run_times = importlib.import_module("run_times")

#: the cell whose seed 1 has not finished in the first stay
LATE = ("0.500", "1.000")


@pytest.fixture
def stays(tiny_run, tmp_path, monkeypatch):
    """(results folder, parts folder, params, the parts written) after the first stay's save;
    every save of the test in the same second, whose parts must not overwrite each other."""
    monkeypatch.setattr(run_parts, "_stamp", lambda: "20261207T000000Z")
    results = tmp_path / "results" / "tiny"
    shutil.copytree(tiny_run, results, ignore=shutil.ignore_patterns("figures", "cube.nc"))
    late = results / "cells" / f"p~{LATE[0]}" / f"lam~{LATE[1]}" / "seed~0001" / "compare.nc"
    late.rename(late.with_suffix(".held"))
    parts = tmp_path / "parts"
    params = run_parts.load_params([results / "config.resolved.yaml"])
    first = run_parts.save(results, parts)
    late.with_suffix(".held").rename(late)
    return results, parts, params, first


def test_save_leaves_out_an_unfinished_cell_and_missing_lists_it(stays):
    results, parts, params, first = stays
    assert [f.name.split("-")[0] for f in first] == ["lam0.800", "lam1.000"]
    held = run_parts.held_cells(parts)
    assert len(held) == TINY_FITS - 1 and LATE not in held
    (targets,) = run_parts.missing(parts, params)
    cell = f"results/tiny/cells/p~{LATE[0]}/lam~{LATE[1]}"
    assert targets == [f"{cell}/fit.nc", f"{cell}/seed~0000/compare.nc",
                       f"{cell}/seed~0001/compare.nc"]  # fmt: skip
    with pytest.raises(ValueError, match="1 cells in no part"):
        run_parts.merge(parts, params)
    batches = run_parts.missing(parts.parent / "no-parts", params, cells_per_batch=1)
    firsts = [b[0].split("/")[3:5] for b in batches]  # lambda by lambda, p in order
    assert firsts == [["p~0.100", "lam~0.800"], ["p~0.500", "lam~0.800"],
                      ["p~0.100", "lam~1.000"], ["p~0.500", "lam~1.000"]]  # fmt: skip
    assert [len(b) for b in run_parts.missing(parts.parent / "no-parts", params)] == [6, 6]


def test_merged_parts_equal_the_one_machine_cube(stays, tiny_run, tmp_path):
    results, parts, params, _ = stays
    (second,) = run_parts.save(results, parts)
    assert second.name == "lam1.000-20261207T000000Z-2.nc"
    assert run_parts.held_cells(parts)[LATE] == second
    assert run_parts.save(results, parts) == [] and run_parts.missing(parts, params) == []
    merged = run_parts.merge(parts, params)
    whole = tmp_path / "whole.nc"
    results_tables.summary(xr.load_dataset(tiny_run / "cube.nc"), whole)
    expected = xr.load_dataset(whole)
    kept = set(merged.data_vars)
    assert kept <= set(expected.data_vars) and "xcorr" in kept
    assert set(expected.data_vars) - kept <= {"spectrum", "spectrum_above_fmax"}
    for name in kept:
        a, b = merged[name], expected[name]
        assert a.dims == b.dims and a.dtype == b.dtype, name
        np.testing.assert_array_equal(a.values, b.values, err_msg=name)
        assert str(a.attrs) == str(b.attrs), name  # NaN cells named in the same order
    assert json.loads(merged.attrs["config"]) == json.loads(expected.attrs["config"])
    for name in ("n_cells", "nan_variables", "constant_potential_cells", "comment"):
        assert merged.attrs[name] == expected.attrs[name], name
    jobs = run_times.read_jobs(parts)
    assert {r["stage"] for r in jobs} == {"simulate", "fit", "masses", "compare"}
    assert len(jobs) == 3 * 2 * TINY_FITS + TINY_FITS


def test_a_part_of_another_config_and_a_cell_held_twice_are_refused(stays):
    results, parts, _, first = stays
    run_parts.save(results, parts)
    for change in ("analysis.alpha=0.05", "grid.seeds=[0, 1, 2]"):
        other = run_parts.cfgmod.load(results / "config.resolved.yaml", [change])
        with pytest.raises(ValueError, match="made with another config"):
            run_parts.merge(parts, other)
    shutil.copy(first[0], parts / "lam0.800-copy.nc")
    with pytest.raises(ValueError, match="cell p=0.100 lam=0.800 is also in"):
        run_parts.held_cells(parts)


def test_figures_from_the_parts_are_the_one_machine_figures(stays, tiny_run, tmp_path):
    results, parts, params, _ = stays
    run_parts.save(results, parts)
    outdir = tmp_path / "figures"
    config = str(results / "config.resolved.yaml")
    assert run_parts.main(["figures", str(parts), "--configfile", config,
                           "--results", str(results), "--outdir", str(outdir)]) == 0  # fmt: skip
    pngs = sorted(p.name for p in outdir.glob("*.png"))
    assert pngs == sorted(p.name for p in (tiny_run / "figures").glob("*.png"))
    for name in pngs:
        assert (outdir / name).read_bytes() == (tiny_run / "figures" / name).read_bytes(), name


def test_a_rerun_diagnostic_cell_must_give_its_parts_values(stays):
    results, parts, params, _ = stays
    run_parts.save(results, parts)
    cube = run_parts.merge(parts, params)
    cube["rho"].loc[{"p": 0.1, "lam": 0.8}] += 1e-12
    with pytest.raises(ValueError, match="cell p=0.1 lam=0.8: rho is not its part's"):
        run_parts.figure_cube(cube, results, params)
