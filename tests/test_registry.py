"""Registering a mass model is all it takes: it appears in masses.nc, compare.nc, the cube and the
figures with no other change (issue #15).

The toy model ``V = V̄`` (with one extra trace) is registered for the test
only; one cell of a tiny sweep (N = 300, T = 500 ms) then runs through the CLI
entry points simulate -> masses -> compare -> gather -> figures in this
process, and every stage must carry the toy along.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import yaml

from nmmval import cli, figures, models, store
from nmmval.config import load
from nmmval.datasets import Var
from nmmval.models import Drive, MassModel, Output

from conftest import ROOT

CELL = {"p": 0.2, "lam": 0.8, "seed": 0}
#: the models registered by nmmval itself
MASSES = ["CFM", "MFM", "CBM", "CBM-R", "PDM", "CFM-fit", "MFM-fit"]
TINY = {
    "run": "toy",
    "grid": {"p": [CELL["p"]], "lam": [CELL["lam"]], "seeds": [CELL["seed"]]},
    "network": {"N": 300},
    "simulation": {"T_ms": 500.0, "T0_ms": 100.0},
    "figures": {"diagnostic_cells": [{"p": CELL["p"], "lam": CELL["lam"]}]},
}


def constant_vbar(drive: Drive, params) -> Output:
    """The toy: V = V̄ at every step; its extra trace, the summed input φ_E + φ_I + φ_ext."""
    n = drive.phi["E"].size
    total = drive.phi["E"] + drive.phi["I"] + drive.phi["ext"]
    return Output(np.full(n, drive.Vbar_mV), {"phi_toy": total})


TOY = MassModel(
    name="TOY",
    run=constant_vbar,
    long_name="toy potential V = Vbar",
    comment="a test's model: the network's time-mean potential, constant",
    colour="tab:gray",
    extra={"phi_toy": Var(("time_ms",), "float32", "1", "summed spike arrivals per neuron")},
)


@pytest.fixture
def toy():
    models.register(TOY)
    try:
        yield TOY
    finally:
        models.unregister(TOY.name)


@pytest.fixture
def run_dir(tmp_path):
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for section, values in TINY.items():
        cfg[section] = {**cfg[section], **values} if isinstance(values, dict) else values
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return tmp_path, path


def _sweep(run_dir):
    """simulate -> fit -> masses -> compare of the one cell, then gather and figures."""
    root, config = run_dir
    cell = store.cell_dir(root, **CELL)
    net, mas, cmp = (cell / f"{k}.nc" for k in ("network", "masses", "compare"))
    fit = store.fit_path(root, CELL["p"], CELL["lam"])
    common = ["--config", str(config)]
    where = ["--p", str(CELL["p"]), "--lam", str(CELL["lam"]), "--seed", str(CELL["seed"])]
    argvs = [
        ["simulate", *common, *where, "--threads", "1", "--out", str(net)],
        ["fit", *common, "--network", str(net), "--out", str(fit)],
        ["masses", *common, "--network", str(net), "--fit", str(fit), "--out", str(mas)],
        ["compare", *common, "--network", str(net), "--masses", str(mas), "--out", str(cmp)],
        ["gather", *common, "--results", str(root), "--out", str(root / "cube.nc")],
        ["figures", *common, "--cube", str(root / "cube.nc"), "--results", str(root),
         "--outdir", str(root / "figures")],
    ]  # fmt: skip
    for argv in argvs:
        assert cli.main(argv) == 0, argv[0]
    return [xr.load_dataset(f) for f in (net, mas, cmp, root / "cube.nc")]


def test_registered_toy_model_runs_through_every_stage(toy, run_dir):
    net, mas, cmp, cube = _sweep(run_dir)
    # masses.nc: its potential V_toy = V̄ (float32) and its declared extra trace
    vbar = float(net["Vbar_mV"])
    np.testing.assert_array_equal(mas["V_toy"].values, np.float32(vbar))
    assert mas["V_toy"].attrs["long_name"] == TOY.long_name
    assert mas["V_toy"].attrs["diverged_at_ms"] == "none"
    total = net["phi_E"].values + net["phi_I"].values + net["phi_ext"].values
    np.testing.assert_array_equal(mas["phi_toy"].values, total.astype(np.float32))
    # compare.nc and the cube: a row of model and of mass, measured like the others
    for ds in (cmp, cube):
        assert list(ds["model"].values) == ["LIF", *MASSES, "TOY"]
        assert list(ds["mass"].values) == [*MASSES, "TOY"]
    # a constant potential takes the conventions: zero spectrum, median 0 Hz, rho 0, chi2 1
    toy_cmp = cmp.sel(model="TOY", mass="TOY")
    assert not toy_cmp["power"].values.any()
    assert float(toy_cmp["median_freq_Hz"]) == 0.0 and float(toy_cmp["rho_max"]) == 0.0
    toy_cube = cube.sel(model="TOY", mass="TOY", p=CELL["p"], lam=CELL["lam"])
    assert float(toy_cube["chi2"]) == pytest.approx(1.0)
    assert "model=TOY" in cube.attrs["constant_potential_cells"]
    # every measure has a row per model (or mass model) in the cube
    for name, var in cube.data_vars.items():
        for dim, n in (("model", len(MASSES) + 2), ("mass", len(MASSES) + 1)):
            assert dim not in var.dims or cube.sizes[dim] == n, name
    # figures: a panel per mass model, the toy's included, and the diagnostic page
    root, config = run_dir
    params = load(config)
    titles = [ax.get_title() for ax in figures.fig_chi2(params, cube).axes]
    assert "LIF – TOY" in titles
    for f in [*(f.name for f in figures.FIGURES), figures.diagnostic_name(CELL["p"], CELL["lam"])]:
        assert (root / "figures" / f"{f}.png").stat().st_size > 1000, f


def test_register_refuses_clashes(toy):
    with pytest.raises(ValueError, match="already registered"):
        models.register(TOY)
    with pytest.raises(ValueError, match="already used"):
        models.register(MassModel("OTHER", constant_vbar, "x", "x", "red", extra=TOY.extra))
    with pytest.raises(ValueError, match="already registered"):
        models.register(MassModel("LIF", constant_vbar, "x", "x", "red"))


def test_ladder_steps_come_from_the_registry():
    """MODEL.md §5.2: each rung names the rungs below it and what it adds."""
    assert models.steps() == (
        ("CFM", "CBM", "the network's conductances (no Freeman reduction)"),
        ("MFM", "CBM", "the network's conductances (no Freeman reduction)"),
        ("CBM", "CBM-R", "reset and refractoriness"),
        ("CBM-R", "PDM", "the voltage distribution"),
        ("CFM", "CFM-fit", "parameters fitted per cell, not derived"),
        ("MFM", "MFM-fit", "parameters fitted per cell, not derived"),
    )
    on_top = MassModel("TOP", constant_vbar, "x", "x", "red", below=("PDM",), adds="spread")
    models.register(on_top)
    try:
        assert models.steps()[-1] == ("PDM", "TOP", "spread")
    finally:
        models.unregister("TOP")
    with pytest.raises(ValueError, match="not registered before it"):
        models.register(MassModel("TOP", constant_vbar, "x", "x", "red", below=("X",), adds="y"))
    with pytest.raises(ValueError, match="both below and adds"):
        models.register(MassModel("TOP", constant_vbar, "x", "x", "red", below=("PDM",)))
    assert "TOP" not in models.names()
