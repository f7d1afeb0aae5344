"""docs/results_tables.py: the tables of docs/results.md count what the cube holds.

A synthetic cube (tests/test_figures.py's, every variable of the cube's
layout) is given known regimes and verdicts on a 6 p × 2 λ grid:

- λ = 0.8: p 0, 0.1 asynchronous; 0.2 before the onset and 0.3 the
  low-frequency onset (the onset region); 0.5, 1 low-frequency synchrony;
- λ = 0.9: p 0 asynchronous, then fast synchrony from p 0.1 (ϖ ≥ 30 Hz at a
  Spike-contrast of 0.25: the spectrum decides), a fast onset.

The CFM is adequate in exactly three cells (two in the onset region), the
MFM in one (in it) and diverges in two seeds of one fast cell; the fitted
models are adequate over the whole window but inadequate on the held-out
half, which is what the tables must count.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import xarray as xr
from test_figures import BIT, _params, synthetic_cube

from nmmval.analysis.protocol import ADEQUATE, INADEQUATE, UNDECIDED

from conftest import ROOT

spec = importlib.util.spec_from_file_location("results_tables", ROOT / "docs" / "results_tables.py")
rt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rt)

P = [0.0, 0.1, 0.2, 0.3, 0.5, 1.0]
LAM = [0.8, 0.9]
#: Spike-contrast, E rate (Hz) and the network's median frequency (Hz) per (p, λ)
SC = np.array([[0.1, 0.1], [0.1, 0.25], [0.2, 0.25], [0.5, 0.25], [0.9, 0.25], [0.95, 0.2]])
RATE = np.array([[0.4, 0.4], [0.5, 100.0], [0.8, 120.0], [3.0, 130.0], [7.0, 140.0], [9.0, 150]])
FREQ = np.array([[7.0, 8.0], [6.0, 100.0], [4.0, 120.0], [6.0, 130.0], [8.0, 140.0], [9.0, 300]])
REGIME = [
    [rt.ASYNC, rt.ASYNC],
    [rt.ASYNC, rt.FAST],
    [rt.ONSET, rt.FAST],
    [rt.ONSET, rt.FAST],
    [rt.LOW, rt.FAST],
    [rt.LOW, rt.FAST],
]
#: (p, λ) where each model is adequate (everywhere else inadequate)
ADEQUATE_AT = {"CFM": [(0.2, 0.8), (0.3, 0.8), (0.5, 0.8)], "MFM": [(0.3, 0.8)]}
#: (p, λ) where the paper's χ² is not significant
NOT_SIGNIFICANT_AT = {"CFM": [(0.1, 0.8), (0.3, 0.8)], "MFM": [(0.3, 0.8)]}
#: where the MFM diverges, in how many seeds
MFM_DIVERGED = ((1.0, 0.9), 2)


def _set(ds, name, where, value, **sel):
    for p, lam in where:
        ds[name].loc[dict(p=p, lam=lam, **sel)] = value


def designed_cube(N=10000, seeds=8):
    """The module docstring's cube."""
    ds = synthetic_cube(_params(seeds, str(P), str(LAM)))
    n_seeds = ds.sizes["seed"]
    tile = (..., None)
    ds["synchrony"][:] = np.repeat(SC[tile], n_seeds, axis=-1)
    ds["rate_E_Hz"][:] = np.repeat(RATE[tile], n_seeds, axis=-1)
    ds["median_freq_Hz"].loc[dict(model="LIF")] = FREQ
    ds["diverged_seed"][:] = 0
    for name in ("verdict", "verdict_held_out"):
        ds[name][:] = INADEQUATE
    ds["verdict_reasons"][:] = BIT["spectra_differ"]
    ds["verdict_reasons_held_out"][:] = BIT["rho_below_level"]
    ds["chi2_p_paper"][:] = 1e-10
    ds["chi2"][:] = 0.5
    for m, where in ADEQUATE_AT.items():
        _set(ds, "verdict", where, ADEQUATE, mass=m)
        _set(ds, "verdict_reasons", where, 0, mass=m)
    for m, where in NOT_SIGNIFICANT_AT.items():
        _set(ds, "chi2_p_paper", where, 0.5, mass=m)
    _set(ds, "chi2", [(0.3, 0.8)], 0.01, mass="CFM")  # least χ² of the row at the onset
    ds["verdict"].loc[dict(mass=["CFM-fit", "MFM-fit"])] = ADEQUATE
    ds["tau_max_ms"].loc[dict(mass="MFM")] = np.where(RATE < rt.SPIKING_MIN_HZ, 0.5, -8.0)
    (p, lam), k = MFM_DIVERGED
    ds["diverged_seed"].loc[dict(p=p, lam=lam, model="MFM", seed=ds.seed[:k])] = 1
    ds["verdict_reasons"].loc[dict(p=p, lam=lam, mass="MFM")] = BIT["diverged"]
    for name in ("chi2", "chi2_p_paper", "tau_max_ms", "rho", "rho_p"):
        ds[name].loc[dict(p=p, lam=lam, mass="MFM")] = np.nan
    ds["zeta"][:] = 1.2
    ds.attrs["config"] = ds.attrs["config"].replace('"N": 2000', f'"N": {N}')
    return ds


@pytest.fixture(scope="module")
def cube():
    return designed_cube()


@pytest.fixture(scope="module")
def cells(cube):
    return rt.cells(cube)


def test_regimes_and_onsets_follow_the_documented_rule(cells):
    assert cells.regime.transpose("p", "lam").values.tolist() == REGIME
    assert cells.attrs["onsets"] == {0.8: (0.3, "low-frequency"), 0.9: (0.1, "fast")}


def test_fitted_models_are_counted_on_the_held_out_half(cells):
    assert int((cells.verdict.sel(mass="CFM-fit") == ADEQUATE).sum()) == 0
    assert int((cells.verdict.sel(mass="CFM") == ADEQUATE).sum()) == 3


def test_finding1_counts_and_grades(cells):
    f1 = rt.finding1(cells)
    assert f1["n_onset"] == 2
    assert f1["CFM"]["protocol"] == {"n_fit": 3, "n_fit_onset": 2, "grade": "partly"}
    assert f1["MFM"]["protocol"] == {"n_fit": 1, "n_fit_onset": 1, "grade": "reproduced"}
    assert f1["CFM"]["paper"] == {"n_fit": 2, "n_fit_onset": 1, "grade": "partly"}
    assert f1["CFM"]["rows"][0] == (0.8, 0.3, "low-frequency", 0.3, 0.01, rt.ONSET)


def test_finding2_counts_failures_per_regime(cells):
    f2 = rt.finding2(cells)
    cfm = f2["CFM"]["protocol"]
    assert cfm[rt.ASYNC] == {"fail": 3, "fit": 0, "of": 3}
    assert cfm[rt.FAST] == {"fail": 5, "fit": 0, "of": 5}
    assert cfm["grade"] == "reproduced"
    assert f2["CFM"]["paper"][rt.ASYNC]["fit"] == 1  # p 0.1, λ 0.8
    assert f2["CFM"]["paper"]["grade"] == "partly"  # 7 of 8 fail


def test_findings_3_to_6(cells):
    f3 = rt.finding3(cells)
    assert f3["verdicts_agree"] == 12 - 2  # CFM alone adequate at (0.2, 0.8), (0.5, 0.8)
    assert f3["mfm_diverged_cells"] == 1 and f3["mfm_diverged_seeds"] == 2
    assert f3["mfm_diverged_where"] == [MFM_DIVERGED[0]]
    assert f3["over_damped_cells"] == 12
    f4 = rt.finding4(cells)
    assert f4["CFM"] == {"not_significant": 2, "adequate": 3, "undecided": 0}
    f5 = rt.finding5(cells)
    assert f5["CFM"][rt.FAST]["of"] == 5
    f6 = rt.finding6(cells)
    assert f6["quiet"]["of"] == 4 and f6["quiet"]["range"] == (0.5, 0.5)
    assert f6["spiking"]["of"] == 3 and f6["fast"] == {
        "of": 5, "finite": 4, "range": (-8.0, -8.0), "median_abs": 8.0,
    }  # fmt: skip


def test_ladder_counts_every_model_per_regime(cells):
    lad = rt.ladder(cells)
    assert lad[rt.ONSET]["CFM"] == {"A": 2, "U": 0, "I": 0, "reasons": {}}
    assert lad[rt.LOW]["CFM"] == {"A": 1, "U": 0, "I": 1, "reasons": {"S": 1}}
    assert lad[rt.FAST]["MFM"]["reasons"] == {"D": 1, "S": 4}
    assert lad[rt.ASYNC]["MFM-fit"] == {"A": 0, "U": 0, "I": 3, "reasons": {"L": 3}}


def test_ladder_steps_count_where_the_added_term_explains_the_failure(cube):
    ds = cube.copy(deep=True)
    fast = [(p, 0.9) for p in P[1:]]
    _set(ds, "verdict", fast, ADEQUATE, mass="CBM-R")  # reset explains the fast failures
    _set(ds, "verdict", fast[:-1], ADEQUATE, mass="PDM")  # PDM fails one of them
    # held-out half: the fitted step must judge the CFM there too, where it is adequate at (0, 0.8)
    _set(ds, "verdict_held_out", [(0.0, 0.8), (0.1, 0.8)], ADEQUATE, mass="CFM-fit")
    _set(ds, "verdict_held_out", [(0.0, 0.8)], ADEQUATE, mass="CFM")
    steps = {(s["lower"], s["upper"]): s for s in rt.ladder_steps(rt.cells(ds))}
    assert set(steps) == {
        ("CFM", "CBM"), ("MFM", "CBM"), ("CBM", "CBM-R"), ("CBM-R", "PDM"),
        ("CFM", "CFM-fit"), ("MFM", "MFM-fit"),
    }  # fmt: skip
    assert steps[("CBM", "CBM-R")]["adds"] == "reset and refractoriness"
    #: (lower, upper), regime -> (explained, both_fail, worse, both_fit)
    expected = {
        (("CBM", "CBM-R"), rt.FAST): (5, 0, 0, 0),
        (("CBM-R", "PDM"), rt.FAST): (0, 0, 1, 4),
        (("CFM", "CBM"), rt.ONSET): (0, 0, 2, 0),
        (("CFM", "CFM-fit"), rt.ASYNC): (1, 1, 0, 1),
    }
    for (step, regime), counts in expected.items():
        got = steps[step][regime]
        assert (got["explained"], got["both_fail"], got["worse"], got["both_fit"]) == counts
        assert got["of"] == sum(r == regime for r in np.ravel(REGIME))
    assert steps[("CFM", "CFM-fit")][rt.ONSET]["worse"] == 0  # not the whole-window CFM's A


def test_finite_size_compares_the_shared_p_of_the_row():
    small = designed_cube(N=2500)
    small["verdict"].loc[dict(p=0.0, lam=0.8, mass="CBM")] = UNDECIDED  # quiet at every N
    small["verdict"].loc[dict(p=0.5, lam=0.8, mass="PDM")] = ADEQUATE  # spiking
    fr = rt.finite_row({10000: designed_cube(), 2500: small.sel(p=P[:-1])})
    assert list(fr["rows"]) == [2500, 10000] and fr["p"] == P[:-1]
    assert (fr["changed"], fr["compared"]) == (2, 5 * 7)
    assert (fr["changed_quiet"], fr["compared_quiet"]) == (1, 3 * 7)


def test_command_line_prints_every_section_and_writes_summaries(cube, tmp_path, capsys):
    paths = {}
    for name, ds in {"paper": cube, "N2500": designed_cube(N=2500)}.items():
        paths[name] = tmp_path / f"{name}.nc"
        ds.to_netcdf(paths[name])
    argv = ["--paper", str(paths["paper"]), "--highg", str(paths["paper"])]
    argv += ["--finite", f"2500={paths['N2500']}", "--finite", f"10000={paths['paper']}"]
    assert rt.main([*argv, "--summary-dir", str(tmp_path / "sum")]) == 0
    out = capsys.readouterr().out
    for head in ("Cell by cell: paper", "The six findings: highg", "The ladder: paper"):
        assert f"## {head}" in out
    assert "| CBM-R → PDM | the voltage distribution | 0 / 3 / 0 / 0 |" in out
    assert "## Finite size: λ = 0.8, N = 2500 / 10000" in out
    assert "Adequate in 3 cells, 2 in the onset region: partly." in out
    assert "| 0.20 | onset | 0.80 | 0.20 | 4.0 | A | I(S) |" in out
    for label in ("paper", "highg", "finite-N2500", "finite-N10000"):
        with xr.open_dataset(tmp_path / "sum" / f"cube_{label}_summary.nc") as s:
            assert "spectrum" in s and int((s.verdict == ADEQUATE).sum()) > 0
    small = tmp_path / "small.nc"
    assert rt.summary(cube, small, max_bytes=1000) == ()
    with xr.open_dataset(small) as s:
        assert "spectrum" not in s and "xcorr" not in s and "verdict_held_out" in s
    # a limit between the sizes without the spectra and without both keeps the curves
    assert rt.summary(cube.drop_vars("spectrum"), small) == ("xcorr",)
    limit = small.stat().st_size + 100
    assert rt.summary(cube, small, max_bytes=limit) == ("xcorr",)
    with xr.open_dataset(small) as s:
        assert "spectrum" not in s and "xcorr" in s and "dropped" in s.attrs["comment"]


def test_finite_size_label_must_match_the_run(cube, tmp_path):
    path = tmp_path / "c.nc"
    cube.to_netcdf(path)
    with pytest.raises(SystemExit):
        rt.main(["--paper", str(path), "--finite", f"2500={path}"])
