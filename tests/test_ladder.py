"""CBM, CBM-R and PDM (MODEL.md §5.2) as registered models, driven by recordings of the network.

The solvers' own known answers (fixed points, bookkeeping by hand, the
stationary Fokker–Planck solution, independent cells) are in
tests/test_cbm.py and tests/test_fokker_planck.py; here the same models run
on what a small network records: its conductances, its free pool, a
fast-synchrony input, and the masses and compare stages.
"""

from __future__ import annotations

import numpy as np
import pytest

from nmmval import masses, models
from nmmval.analysis.diagnostics import rate_agreement
from nmmval.compare import pdm_rate
from nmmval.models.cbm import cbm, cbm_r, conductances
from nmmval.sim import lif
from nmmval.simulation import network_dataset

from conftest import small_params

LADDER = ("CBM", "CBM-R", "PDM")
#: N = 400 with the paper's internal input per neuron (ĝ scaled by 10 000/N = 25)
PAPER_SCALED = {"network.g_hat_E_nSms": 3.0, "network.g_hat_I_nSms": 30.0}


def _params(**overrides):
    return small_params(**{**PAPER_SCALED, "simulation.record_closures": "true", **overrides})


@pytest.fixture(scope="module")
def fast():
    """λ = 1, p = 1: all-excitatory complete graph, fast synchrony (190 Hz, volleys of up
    to 244 of the 400 cells in one step)."""
    params = _params()
    rec = lif.simulate(params, 1.0, 1.0, 0, threads=1)
    return params, rec


@pytest.fixture(scope="module")
def cell():
    """p = 0.3, λ = 0.8: both populations, recorded with the closures."""
    params = _params()
    rec = lif.simulate(params, 0.3, 0.8, 2, threads=1)
    return params, rec, network_dataset(rec, params, 0.3, 0.8, 2, float("nan"))


def test_registry_holds_the_ladder_after_the_freeman_models():
    assert models.names() == ("CFM", "MFM", *LADDER, "CFM-fit", "MFM-fit")
    assert [m.variable for m in models.registered()][2:5] == ["V_cbm", "V_cbm_r", "V_pdm"]
    assert models.fitted_names() == ("CFM-fit", "MFM-fit")
    colours = [m.colour for m in models.registered()]
    assert len(set(colours)) == len(colours)


def test_cbm_conductances_equal_the_networks_mean(cell):
    """G_σ^P of the CBM from the recorded arrivals φ_σ^P equals the network's
    ⟨g_σ⟩ over the cells of P (Recording, float64) in every step: measured
    ≤ 1e-15 of each σ's largest value, tolerance 1e-12 (the I cells get no
    external input: both 0)."""
    params, rec, _ = cell
    phi = rec.phi_pop()
    g_pop = rec.closures["g_pop"]
    for P in range(2):
        G = conductances(phi[:, P], params)
        scale = np.abs(g_pop[:, P]).max(axis=1, keepdims=True)  # per synapse type
        assert np.max(np.abs(G - g_pop[:, P]) / np.where(scale > 0, scale, 1.0)) < 1e-12
    assert not g_pop[2, 1].any() and g_pop[:2].min(axis=-1).max() >= 0 and g_pop[:2, :, -1].all()


def test_cbm_stays_within_the_reversal_potentials_under_fast_synchrony(fast):
    params, rec = fast
    assert rec.n_I == 0 and rec.rate_E_Hz > 100 and rec.spikes_pop[0].max() > 100
    net = params.network
    lo = min(net.v_E_mV, net.v_I_mV, net.v_ext_mV, params.neuron.v_rest_mV)
    hi = max(net.v_E_mV, net.v_I_mV, net.v_ext_mV, params.neuron.v_rest_mV)
    phi = rec.phi_pop()
    V = cbm(phi[:, 0], np.zeros_like(phi[:, 0]), rec.n_E, 0, params).V_mV
    assert lo <= V.min() and V.max() <= hi, (V.min(), V.max())
    assert V.max() > -10.0  # the volleys drive it close to the excitatory reversal
    # CBM-R and PDM, with the reset, stay near the network's range: measured [-60, -54.3] mV
    out = masses.run(network_dataset(rec, params, 1.0, 1.0, 0, float("nan")), params)
    for name in ("V_cbm_r", "V_pdm"):
        assert -60.5 <= float(out[name].min()) and float(out[name].max()) <= -50.0, name


def test_cbm_r_free_pool_equals_a_direct_count_on_the_network(monkeypatch):
    """The free (non-refractory) cells of each population at the start of every
    step, counted on the network's state (one step per kernel call), equal
    CBM-R's bookkeeping from the recorded spike counts n_P, exactly."""
    params = _params(**{"simulation.T_ms": 200, "simulation.T0_ms": 50})
    n_E = int(round(0.9 * params.network.N))
    populations = (slice(0, n_E), slice(n_E, None))
    free = {}

    def count(step, v, ref):
        free[step] = [np.count_nonzero(ref[cells] == 0) for cells in populations]

    monkeypatch.setattr(lif, "BLOCK_STEPS", 1)
    rec = lif.simulate(params, 1.0, 0.9, 1, threads=1, on_block=count)
    n = params.simulation.n_steps
    direct = np.array([[rec.n_E, rec.n_I]] + [free[k] for k in range(1, n)]).T
    # both populations fire, and a good part of each is refractory at times
    assert rec.spikes_pop.sum(axis=1).min() > 100
    assert (direct.min(axis=1) < 0.8 * np.array([rec.n_E, rec.n_I])).all()
    phi = rec.phi_pop()
    res = cbm_r(phi[:, 0], phi[:, 1], *rec.spikes_pop, rec.n_E, rec.n_I, params)
    np.testing.assert_array_equal(res.free_E, direct[0])
    np.testing.assert_array_equal(res.free_I, direct[1])


def test_masses_stage_runs_the_ladder_deterministically(cell):
    """masses.run on a recorded cell: every model's V and declared per-population
    traces, V = (N_E V_E + N_I V_I)/N, nothing diverges, and the same bits twice."""
    params, rec, net = cell
    a, b = (masses.run(net, params) for _ in range(2))
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    N = rec.n_E + rec.n_I
    for m in models.registered():
        assert a[m.variable].attrs["diverged_at_ms"] == "none", m.name
    for name in ("cbm", "cbm_r", "pdm"):
        V_pop = a[f"V_pop_{name}"]
        assert V_pop.dims == ("population", "time_ms")
        combined = (rec.n_E * V_pop[0].astype(float) + rec.n_I * V_pop[1].astype(float)) / N
        np.testing.assert_allclose(a[f"V_{name}"], combined, rtol=0, atol=1e-5)
    r = a["r_pdm"].values
    assert a["r_pdm"].attrs["units"] == "Hz" and r.min() >= 0 and r.max() > 0


def test_pdm_rate_is_compared_with_the_networks(cell):
    """compare's check of r_P against A_P = n_P/(N_P dt), as
    :func:`rate_agreement` with 1 ms bins gives it from the two traces."""
    params, rec, net = cell
    mas = masses.run(net, params)
    out = pdm_rate(net, mas, params)
    n0, dt = params.simulation.n0_steps, params.simulation.dt_ms
    for P, N_P in enumerate((rec.n_E, rec.n_I)):
        A = rec.spikes_pop[P, n0:] / (N_P * dt * 1e-3)
        r = mas["r_pdm"].values[P, n0:]
        expected = rate_agreement(r, A, 10)
        assert (out["pdm_rate_rel_error"][P], out["pdm_rate_corr"][P]) == expected
        assert np.isfinite(expected).all()
    assert np.isnan(pdm_rate(*_empty_I(net, mas), params)["pdm_rate_corr"][1])


def _empty_I(net, mas):
    """The cell with its I population declared empty (rates NaN, as the PDM gives them)."""
    net = net.copy()
    net.attrs["n_I"] = 0
    mas = mas.copy()
    mas["r_pdm"] = mas["r_pdm"].copy()
    mas["r_pdm"][1] = np.nan
    return net, mas


def test_rate_agreement_known_answers():
    rng = np.random.default_rng(5)
    A = rng.poisson(2.0, 10_000) * 125.0  # Hz, 8 cells at 0.1 ms
    rel, corr = rate_agreement(1.1 * A, A, 10)
    assert rel == pytest.approx(0.1, rel=1e-12) and corr == pytest.approx(1.0, rel=1e-12)
    rel, corr = rate_agreement(np.full_like(A, A.mean()), A, 10)
    assert rel == pytest.approx(0.0, abs=1e-12) and np.isnan(corr)  # a constant rate
    rel, corr = rate_agreement(A, np.zeros_like(A), 10)
    assert np.isnan(rel) and np.isnan(corr)  # a silent network population
    noisy = A + rng.normal(0.0, A.std(), A.size)
    binned = [x.reshape(-1, 10).mean(axis=1) for x in (noisy, A)]
    assert rate_agreement(noisy, A, 10)[1] == pytest.approx(np.corrcoef(*binned)[0, 1], rel=1e-12)
    assert np.isnan(rate_agreement(A[:15], A[:15], 10)[1])  # one bin: no correlation
