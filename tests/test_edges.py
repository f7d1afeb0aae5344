"""Edges of the grid and degenerate networks: no NaN or inf where the science defines a number.

Each case runs ``nmmval simulate -> masses -> compare`` through the CLI entry
point (:func:`nmmval.cli.main`, in process to save the interpreter start-up)
on a small network, and checks every stored variable of the three files: all
finite, except ``synchrony``, which is NaN exactly when no spike train has two
spikes in [T0, T) (MODEL.md §6), ``diverged_at_ms``, NaN as no model
diverges, and the PDM's rate check, NaN for a population without a spike (or a
constant binned rate, for the correlation). The conventions for a constant
series (a silent network relaxed to rest) are those of :mod:`nmmval.analysis.spectra` and
:mod:`nmmval.analysis.xcorr`: median frequency 0 Hz, χ² 0 between two zero spectra and
1 against a non-zero one, ρ = 0, τ_max = 0 ms, Fisher p = 0.5, n_eff = n.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import xarray as xr

from nmmval import cli, config, models
from nmmval.analysis.protocol import difference_test
from nmmval.analysis.spectra import (
    chi2_pvalue_paper,
    chi2_statistic,
    median_frequency,
    power_spectrum,
)
from nmmval.analysis.xcorr import best_lag, effective_n, fisher_pvalue, lagged_correlation, stouffer
from nmmval.datasets import PDM_RATE
from nmmval.sim.lif import simulate

from conftest import ROOT

CONFIG = ROOT / "config" / "config.yaml"
SMALL = ["network.N=200", "simulation.T_ms=400", "simulation.T0_ms=100"]
#: no external drive, no noise: nobody ever fires; T0 long enough for every
#: potential (LIF and every mass model) to settle to rest exactly, so all are constant
SILENT = [
    "network.N=50",
    "network.g_hat_ext_nSms=0",
    "neuron.noise_Q_V2ms=0",
    "simulation.T_ms=2600",
    "simulation.T0_ms=2500",
]
#: the same, but the window starts while the potentials still relax (not constant)
SILENT_RELAXING = [*SILENT[:3], "simulation.T_ms=400", "simulation.T0_ms=100"]
#: two neurons (one E, one I), no internal edges, no noise; one external train
#: wired to the E cell, each of its events strong and short enough to give
#: exactly one spike; ~1 event per second, so some seeds give exactly one spike
ONE_SPIKE = [
    "network.N=2",
    "network.M=1",
    "network.p_ext=1",
    "network.nu_ext_Hz=1",
    "network.g_hat_ext_nSms=1000",
    "network.tau_ext_ms=0.5",
    "neuron.noise_Q_V2ms=0",
    "simulation.T_ms=1000",
    "simulation.T0_ms=100",
]


def _sets(overrides):
    out = []
    for item in overrides:
        out += ["--set", item]
    return out


def _pipeline(tmp_path, p, lam, seed, overrides):
    """simulate -> masses -> compare through the CLI; the three datasets."""
    sets = _sets(overrides)
    net, mas, cmp = (tmp_path / f"{n}.nc" for n in ("network", "masses", "compare"))
    common = ["--config", str(CONFIG), *sets]
    cell = ["--p", str(p), "--lam", str(lam), "--seed", str(seed)]
    assert cli.main(["simulate", *common, *cell, "--threads", "1", "--out", str(net)]) == 0
    assert cli.main(["masses", *common, "--network", str(net), "--out", str(mas)]) == 0
    inputs = ["--network", str(net), "--masses", str(mas)]
    assert cli.main(["compare", *common, *inputs, "--out", str(cmp)]) == 0
    return tuple(xr.load_dataset(f, engine="netcdf4") for f in (net, mas, cmp))


def _two_spikes_in_a_train(net: xr.Dataset) -> bool:
    params = config.from_json(net.attrs["config"])
    n0 = params.simulation.n0_steps
    in_window = net["spike_step"].values >= n0
    counts = np.bincount(net["spike_neuron"].values[in_window], minlength=params.network.N)
    return bool((counts >= 2).any())


def _pdm_rate_undefined(name, net, mas) -> np.ndarray:
    """Per population, where the PDM's rate check has no value: the relative error
    without a spike of the network in [T0, T) (a population without cells has none),
    the correlation also where the PDM's binned rate is constant (MODEL.md §5.2)."""
    params = config.from_json(net.attrs["config"])
    n0 = params.simulation.n0_steps
    silent = ~net["spikes_pop"].values[:, n0:].any(axis=1)
    if name == "pdm_rate_rel_error":
        return silent
    k = max(1, round(params.analysis.rate_bin_ms / params.simulation.dt_ms))
    r = mas["r_pdm"].values[:, n0:]
    binned = r[:, : r.shape[1] // k * k].reshape(2, -1, k).mean(axis=-1)
    return silent | ~(np.ptp(binned, axis=1) > 0)


def _check_finite(net, mas, cmp):
    """Every numeric variable finite, synchrony NaN exactly without a two-spike train."""
    for ds in (net, mas, cmp):
        for name, var in ds.variables.items():
            if var.dtype.kind not in "fc":
                continue
            values = var.values
            if name == "synchrony":
                assert math.isnan(float(values)) == (not _two_spikes_in_a_train(net)), name
                continue
            if name == "diverged_at_ms":  # NaN: the model did not diverge
                assert np.isnan(values).all() and not cmp["diverged"].values.any(), name
                continue
            if "population" in var.dims:  # NaN exactly for a population without cells
                undefined = np.equal([net.attrs["n_E"], net.attrs["n_I"]], 0)
                if name in PDM_RATE:
                    undefined = _pdm_rate_undefined(name, net, mas)
                per_pop = np.moveaxis(np.isnan(values), var.dims.index("population"), 0)
                for P, none in enumerate(undefined):
                    assert per_pop[P].all() if none else not per_pop[P].any(), (name, P)
                continue
            assert np.isfinite(values).all(), f"{name} has NaN or inf"
    assert float(net["synchrony"]) == float(cmp["synchrony"]) or (
        math.isnan(float(net["synchrony"])) and math.isnan(float(cmp["synchrony"]))
    )
    assert ((cmp["rho_p"] >= 0) & (cmp["rho_p"] <= 1)).all()
    assert ((cmp["xcorr"] >= -1) & (cmp["xcorr"] <= 1)).all()


# --------------------------------------------------------------- corners of the grid
@pytest.mark.parametrize("p", [0.0, 1.0])
@pytest.mark.parametrize("lam", [0.6, 1.0])
def test_grid_corners_are_finite(tmp_path, p, lam):
    net, mas, cmp = _pipeline(tmp_path, p, lam, 0, SMALL)
    _check_finite(net, mas, cmp)
    assert net.attrs["n_spikes"] > 0
    if lam == 1.0:
        assert net.attrs["n_I"] == 0
        assert float(net["rate_I_Hz"]) == 0.0
        assert not net["phi_I"].values.any()
    if p == 0.0:
        assert net.attrs["n_edges"] == 0
        assert not net["phi_E"].values.any() and not net["phi_I"].values.any()


# --------------------------------------------------------------- silent network
def test_silent_network_constant_potentials_take_the_conventions(tmp_path):
    net, mas, cmp = _pipeline(tmp_path, 0.5, 0.8, 0, SILENT)
    _check_finite(net, mas, cmp)
    assert net.attrs["n_spikes"] == 0
    assert math.isnan(float(net["synchrony"]))
    n0 = config.from_json(net.attrs["config"]).simulation.n0_steps
    for v in (net["V"], *(mas[m.variable] for m in models.registered())):
        assert np.ptp(v.values[n0:]) == 0.0, "the setup must give constant potentials"
    # zero spectra: median 0 Hz; rho 0 at every lag, tau_max 0 ms, p 0.5, n_eff = n
    assert not cmp["power"].values.any() and not cmp["power_above_fmax"].values.any()
    np.testing.assert_array_equal(cmp["median_freq_Hz"], 0.0)
    np.testing.assert_array_equal(cmp["xcorr"], 0.0)
    np.testing.assert_array_equal(cmp["tau_max_ms"], 0.0)
    np.testing.assert_array_equal(cmp["rho_max"], 0.0)
    np.testing.assert_array_equal(cmp["rho_p"], 0.5)
    np.testing.assert_array_equal(cmp["n_eff"], cmp.attrs["n_samples"])


def test_silent_network_still_relaxing_is_finite(tmp_path):
    net, mas, cmp = _pipeline(tmp_path, 0.5, 0.8, 0, SILENT_RELAXING)
    _check_finite(net, mas, cmp)
    assert net.attrs["n_spikes"] == 0


# --------------------------------------------------------------- a single spike
def _one_spike_seed() -> int:
    params = config.load(CONFIG, ONE_SPIKE)
    for seed in range(40):
        rec = simulate(params, 0.0, 0.5, seed, threads=1)
        if rec.spike_neuron.size == 1 and rec.spike_step[0] >= params.simulation.n0_steps:
            return seed
    pytest.fail("no seed in 0..39 gives exactly one spike in the window")


def test_single_spike_network_is_finite(tmp_path):
    seed = _one_spike_seed()
    net, mas, cmp = _pipeline(tmp_path, 0.0, 0.5, seed, ONE_SPIKE)
    assert net.attrs["n_spikes"] == 1 and net.sizes["spike"] == 1
    _check_finite(net, mas, cmp)
    assert math.isnan(float(net["synchrony"]))  # one train, one spike: undefined
    assert float(net["rate_E_Hz"]) > 0 and float(net["rate_I_Hz"]) == 0.0


# --------------------------------------------------------------- the conventions, unit level
def test_constant_series_conventions():
    dt_ms, n = 0.1, 4000
    const = np.full(n, -60.123456789)  # its float mean is not exactly the constant
    freq, P0 = power_spectrum(const, dt_ms)
    assert not P0.any(), "a constant series has the zero spectrum, exactly"
    assert median_frequency(freq, P0) == 0.0
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.standard_normal(n))
    _, P = power_spectrum(x, dt_ms)
    assert chi2_statistic(P0, P) == pytest.approx(1.0, rel=1e-12)
    assert chi2_statistic(P, P0) == pytest.approx(1.0, rel=1e-12)
    assert chi2_statistic(P0, P0) == 0.0
    assert chi2_pvalue_paper(P0, P0, n) == 1.0
    p_one = chi2_pvalue_paper(P0, P, n)
    assert 0.0 <= p_one <= 1.0 and math.isfinite(p_one)
    # the paired difference test (MODEL.md §6.3): zero spectra stay zero, no NaN anywhere
    assert difference_test(np.zeros((2, P.size)), np.zeros((2, P.size))) == (0.0, 1.0)
    statistic, p_diff = difference_test(np.vstack([P0, P0]), np.vstack([P, 2 * P]))
    assert statistic == pytest.approx(1.0, rel=1e-12)
    assert p_diff == 0.5  # the smallest with 2 seeds: the observed pattern and its mirror
    assert difference_test(np.vstack([P0, P]), np.vstack([P0, P])) == (0.0, 1.0)

    lags, rho = lagged_correlation(x, const, dt_ms, 10.0)
    assert np.isfinite(rho).all() and not rho.any()
    assert best_lag(lags, rho) == (0.0, 0.0)
    assert effective_n(x, const) == n
    assert effective_n(const, const) == n
    assert fisher_pvalue(0.0, n) == 0.5
    assert stouffer([0.5, 0.5]) == pytest.approx(0.5)


def test_best_lag_ties_pick_the_smallest_abs_lag():
    lags = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    assert best_lag(lags, np.array([0.5, 0.1, 0.2, 0.1, 0.5])) == (-2.0, 0.5)
    assert best_lag(lags, np.array([0.1, 0.5, 0.2, 0.5, 0.3])) == (-1.0, 0.5)
    assert best_lag(lags, np.array([0.1, 0.2, 0.5, 0.5, 0.5])) == (0.0, 0.5)
    assert best_lag(lags, np.array([0.1, 0.2, 0.3, 0.5, 0.5])) == (1.0, 0.5)
    assert best_lag(lags, np.array([np.nan, 0.2, 0.2, np.nan, 0.1])) == (0.0, 0.2)


def test_paper_pvalue_degenerate_dof():
    # one non-empty bin in both: no degree of freedom, chi2 = 0 -> p = 1
    assert chi2_pvalue_paper([0.0, 3.0, 0.0], [0.0, 5.0, 0.0], 100) == 1.0
    # one spectrum zero, the other in one bin: chi2 = n > 0 with no dof -> p = 0
    assert chi2_pvalue_paper([0.0, 0.0, 0.0], [0.0, 5.0, 0.0], 100) == 0.0
    # the regular case is unchanged: referred to chi2 with L - 1 - empty dof
    P, Q = np.array([1.0, 2.0, 0.0, 3.0]), np.array([4.0, 2.0, 0.0, 6.0])
    assert chi2_pvalue_paper(P, Q, 60) == pytest.approx(scipy.stats.chi2.sf(200 / 30, 2))
