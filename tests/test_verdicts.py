"""The validation protocol in the compare stage and the cube, and the diagnostics (MODEL.md
§4, §5.1, §6.3), on synthetic recordings with known truth.

A cell's network.nc is made by hand (no simulation): V_a, V_b = common part plus
independent noise of each half, V = (V_a + V_b)/2, constant spike arrivals φ_σ
and constant closure covariances, over T = 4 s at dt = 1 ms (analysis window
[1 s, 4 s), Welch segments of 500 ms, spectra stored to 200 Hz of Nyquist's
500 Hz so that the lumped bin counts), 8 seeds, with Poisson spike counts per
population. Its masses.nc holds the first mass model equal to the network's V
(adequate) and the others independent OU traces of the same spectrum (not
above the surrogate null: inadequate), and the PDM's rate 1.1 times the
network's.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import xarray as xr

from nmmval import config, cube, datasets, fit, models, store
from nmmval.analysis.diagnostics import (
    closure_error,
    damping_ratio,
    divergence_time,
    sum_conductance,
)
from nmmval.analysis.protocol import (
    ADEQUATE,
    INADEQUATE,
    REASON_FLAG_MASKS,
    REASON_FLAG_MEANINGS,
    VERDICT_FLAG_MEANINGS,
    VERDICT_FLAG_VALUES,
)
from nmmval.compare import compare_cell

from conftest import ROOT

CELL = {"p": 0.2, "lam": 0.8}
SEEDS = list(range(8))
SETTINGS = [
    "simulation.dt_ms=1.0",
    "simulation.T_ms=4000",
    "simulation.T0_ms=1000",
    "analysis.fmax_store_Hz=200",
    "analysis.welch_segment_ms=500",
    f"grid.p=[{CELL['p']}]",
    f"grid.lam=[{CELL['lam']}]",
    f"grid.seeds={SEEDS}",
    "figures.diagnostic_cells=[]",
]
PHI = {"E": 0.01, "I": 0.002, "ext": 0.005}
#: ⟨g_σ v⟩ − ⟨g_σ⟩⟨v⟩ (nS·mV) of (E, I, ext) × (E, I) in the window; 100 before it
COV = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
DIVERGED = {"seed": 3, "at_ms": 2500.0}
#: population sizes, rates (Hz) of the synthetic spike counts, the PDM's rate over the network's
N_POP, RATE_HZ, PDM_GAIN = (800, 200), (5.0, 10.0), 1.1
BIT = dict(zip(REASON_FLAG_MEANINGS.split(), REASON_FLAG_MASKS, strict=True))


@pytest.fixture(scope="module")
def params():
    return config.load(ROOT / "config" / "config.yaml", SETTINGS)


def _ou(rng, n, tau_ms, dt_ms):
    """Stationary unit-variance OU series (exact AR(1) update)."""
    a = math.exp(-dt_ms / tau_ms)
    noise = rng.standard_normal(n + 500) * math.sqrt(1 - a * a)
    return scipy.signal.lfilter([1.0], [1.0, -a], noise)[500:]


def _recordings(params, seed, diverge=False, closures=True):
    """network.nc and masses.nc Datasets of one synthetic seed."""
    sim = params.simulation
    n, dt = sim.n_steps, sim.dt_ms
    rng = np.random.default_rng([seed, 2021])
    t_ms = np.arange(n) * dt
    common = _ou(rng, n, 20.0, dt)
    halves = np.array([-60.0 + common + 0.3 * _ou(rng, n, 20.0, dt) for _ in "ab"])
    V = halves.mean(axis=0).astype(np.float32)
    cov = np.repeat(COV[..., None], n, axis=-1)
    cov[..., : sim.n0_steps] = 100.0  # before T0: not in the closure error
    closure_t = t_ms if closures else t_ms[:0]
    spikes = rng.poisson(np.multiply(N_POP, RATE_HZ)[:, None] * dt * 1e-3, (2, n))
    network = xr.Dataset(
        {
            "V": ("time_ms", V),
            "arrivals_pop": (
                ("synapse", "population", "time_ms"),
                np.zeros((3, 2, n), dtype=np.int32),
            ),
            "spikes_pop": (("population", "time_ms"), spikes.astype(np.int32)),
            **{f"phi_{s}": ("time_ms", np.full(n, phi)) for s, phi in PHI.items()},
            "V_half": (("half", "time_ms"), halves.astype(np.float32)),
            "cov_gv_pop": (
                ("synapse", "population", "closure_time_ms"),
                cov[..., : closure_t.size].astype(np.float32),
            ),
            "synchrony": 0.5,
            "rate_E_Hz": RATE_HZ[0],
            "rate_I_Hz": RATE_HZ[1],
            "Vbar_mV": float(V[sim.n0_steps :].mean()),
        },
        coords={
            "time_ms": t_ms,
            "closure_time_ms": closure_t,
            "half": ["a", "b"],
            "population": ["E", "I"],
            "synapse": ["E", "I", "ext"],
        },
        attrs={**CELL, "seed": seed, "n_E": N_POP[0], "n_I": N_POP[1]},
    )
    traces = [V] + [-60.0 + _ou(rng, n, 20.0, dt) for _ in models.registered()[1:]]
    traces = [np.asarray(v, dtype=np.float32) for v in traces]
    if diverge:
        traces[-1][int(DIVERGED["at_ms"] / dt) :] = np.nan
    masses = xr.Dataset(
        {m.variable: ("time_ms", v) for m, v in zip(models.registered(), traces, strict=True)},
        coords={"time_ms": t_ms},
    )
    # the PDM's rate: PDM_GAIN times the network's, exactly (its mean and its correlation known)
    A_Hz = network["spikes_pop"].values / (np.array(N_POP)[:, None] * dt * 1e-3)
    masses["r_pdm"] = (("population", "time_ms"), (PDM_GAIN * A_Hz).astype(np.float32))
    return network, masses


@pytest.fixture(scope="module")
def run(params, tmp_path_factory):
    """compare.nc of every seed and the cell's fit.nc written where gather reads them; the last
    model diverges in one seed of a second run."""
    roots = {}
    for name in ("clean", "diverged"):
        root = tmp_path_factory.mktemp(name)
        networks = []
        for seed in SEEDS:
            diverge = name == "diverged" and seed == DIVERGED["seed"]
            network, masses = _recordings(params, seed, diverge, closures=seed != 1)
            ds = compare_cell(network, masses, params).to_dataset(params)
            store.write_dataset(ds, _path(root, seed))
            networks.append(network)
        store.write_dataset(fit.run(networks, params), store.fit_path(root, **CELL))
        roots[name] = root
    return roots


def _path(root, seed):
    return store.cell_dir(root, CELL["p"], CELL["lam"], seed) / "compare.nc"


def _compare(root, seed):
    return store.open_dataset(_path(root, seed), "compare")


# ------------------------------------------------------------------ diagnostics, closed forms
def test_diagnostics_closed_forms():
    gain_ms = np.array([0.06, 0.6, 0.0754])
    rate = np.array([[0.1], [0.02], [0.05]]) * np.ones((3, 7))
    assert sum_conductance(gain_ms, rate) == pytest.approx(0.006 + 0.012 + 0.00377, rel=1e-14)
    # ζ = (τ_m + τ_s)/(2 sqrt(τ_m τ_s (1 + ΣḠ))): 25/(2·sqrt(100·1.5625)) = 1 exactly
    assert damping_ratio(20.0, 5.0, 0.5625) == 1.0
    assert damping_ratio(20.0, 5.0, 0.0) == 1.25
    assert damping_ratio(20.0, 5.0, 1.0) == pytest.approx(1.25 / math.sqrt(2.0), rel=1e-15)
    cov = np.repeat(COV[..., None], 4, axis=-1)
    np.testing.assert_allclose(closure_error(cov, 10.0), [0.9, 1.2], rtol=1e-15)
    assert np.isnan(closure_error(cov[..., :0], 10.0)).all()
    v = np.array([1.0, 2.0, np.nan, np.nan])
    assert divergence_time(v, np.arange(4) * 0.5) == 1.0
    assert math.isnan(divergence_time(v[:2], np.arange(2) * 0.5))


def test_compare_stores_the_diagnostics_of_the_recordings(params, run):
    ds = _compare(run["clean"], 0)
    net, neu = params.network, params.neuron
    g_hat = {"E": net.g_hat_E_nSms, "I": net.g_hat_I_nSms, "ext": net.g_hat_ext_nSms}
    sum_G = sum(g_hat[s] * PHI[s] for s in PHI) / (params.simulation.dt_ms * neu.g_L_nS)
    assert float(ds["sum_G"]) == pytest.approx(sum_G, rel=1e-12)
    assert float(ds["zeta"]) == pytest.approx(
        (neu.tau_m_ms + 5.0) / (2 * math.sqrt(neu.tau_m_ms * 5.0 * (1 + sum_G))), rel=1e-12
    )
    np.testing.assert_allclose(ds["closure_error_mV"], COV.sum(axis=0) / neu.g_L_nS, rtol=1e-6)
    assert list(ds["population"].values) == ["E", "I"]
    assert np.isnan(_compare(run["clean"], 1)["closure_error_mV"]).all()  # not recorded
    assert np.isnan(ds["diverged_at_ms"]).all()
    broken = _compare(run["diverged"], DIVERGED["seed"])
    assert float(broken["diverged_at_ms"][-1]) == DIVERGED["at_ms"]
    assert int(broken["diverged"][-1]) == 1
    # mean and sd of V over the window, NaN for the diverged model
    V = _recordings(params, 0)[0]["V"].values[params.simulation.n0_steps :].astype(np.float64)
    assert float(ds["V_mean_mV"][0]) == pytest.approx(V.mean(), rel=1e-12)
    assert float(ds["V_sd_mV"][0]) == pytest.approx(V.std(), rel=1e-12)
    assert np.isnan(broken["V_mean_mV"][-1]) and np.isnan(broken["V_sd_mV"][-1])


def test_compare_stores_the_protocol_pieces(params, run):
    ds = _compare(run["clean"], 0)
    freq = ds["welch_freq_Hz"].values
    np.testing.assert_allclose(np.diff(freq), 2.0)  # 500 ms segments
    assert freq[-1] == 200.0
    assert ds["welch_power"].dims == ("model", "welch_freq_Hz")
    assert ds["welch_power_half"].dims == ("half", "welch_freq_Hz")
    assert list(ds["half"].values) == ["a", "b"]
    assert (ds["welch_power_above_fmax"] > 0).all()  # the band above 200 Hz is not lost
    # the model equal to the network has its spectrum, exactly
    np.testing.assert_array_equal(ds["welch_power"][1], ds["welch_power"][0])
    assert 0.8 < float(ds["split_half_r"]) < 1.0  # halves share a common part of variance 1
    S = params.analysis.n_surrogates
    assert ds["rho_surrogate"].shape == (len(models.registered()), S)
    assert (ds["rho_surrogate"][0] < ds["rho_max"][0]).all()
    # the surrogates' stream is the cell's, seed's and model's own: same cell, same bits
    again = compare_cell(*_recordings(params, 0), params).values["rho_surrogate"]
    np.testing.assert_array_equal(again, ds["rho_surrogate"].values)
    other = _compare(run["clean"], 1)["rho_surrogate"].values
    assert not np.array_equal(other[0], ds["rho_surrogate"][0].values)
    assert not np.array_equal(ds["rho_surrogate"][0].values, ds["rho_surrogate"][1].values)


def test_compare_refuses_a_network_without_the_new_recordings(params):
    network, masses = _recordings(params, 0)
    with pytest.raises(store.InputError, match=r"no V_half .*simulate the cell again"):
        compare_cell(network.drop_vars("V_half"), masses, params)


# ------------------------------------------------------------------ the cube's verdicts
def test_cube_verdicts_follow_the_known_truth(params, run):
    ds = cube.gather(params, run["clean"]).sel(CELL)
    same, *others = models.names()
    assert int(ds["verdict"].sel(mass=same)) == ADEQUATE
    assert int(ds["verdict_reasons"].sel(mass=same)) == 0
    assert float(ds["equivalence_bound"].sel(mass=same)) < float(ds["equivalence_margin"])
    assert float(ds["rho_lower"].sel(mass=same)) >= float(ds["rho_level"])
    assert float(ds["rho_surrogate_p"].sel(mass=same)) == pytest.approx(0.01)
    for m in others:  # an independent trace: ρ is not above its surrogate null
        assert int(ds["verdict"].sel(mass=m)) == INADEQUATE
        assert int(ds["verdict_reasons"].sel(mass=m)) & BIT["rho_not_above_null"]
        assert float(ds["rho_surrogate_p"].sel(mass=m)) > params.analysis.alpha
    # the network's own numbers, and the seed-level pieces they come from
    r = ds["split_half_r_seed"].values
    rbar = np.tanh(np.arctanh(r).mean())
    assert float(ds["rho_ceiling"]) == pytest.approx(math.sqrt(2 * rbar / (1 + rbar)), rel=1e-12)
    assert float(ds["rho_level"]) == pytest.approx(0.8 * float(ds["rho_ceiling"]), rel=1e-15)
    assert float(ds["equivalence_margin"]) == pytest.approx(2 * float(ds["chi2_null_mean"]))
    assert 0 < float(ds["chi2_floor"])
    np.testing.assert_array_equal(ds["chi2_welch_seed"].sel(mass=same), 0.0)
    # diagnostics per seed, V's mean and sd also as seed means
    np.testing.assert_allclose(ds["V_mean_mV"], ds["V_mean_mV_seed"].mean("seed"), rtol=1e-15)
    assert ds["sum_G"].dims == ("seed",) and ds["closure_error_mV"].dims == ("seed", "population")
    assert "seed=0001" in ds["closure_error_mV"].attrs["nan_cells"]
    # the PDM's rate check per seed and as cell means: r = 1.1 A exactly (float32)
    assert ds["pdm_rate_rel_error_seed"].dims == ("seed", "population")
    np.testing.assert_allclose(ds["pdm_rate_rel_error_seed"], PDM_GAIN - 1, rtol=1e-6)
    np.testing.assert_allclose(ds["pdm_rate_rel_error"], PDM_GAIN - 1, rtol=1e-6)
    np.testing.assert_allclose(ds["pdm_rate_corr_seed"], 1.0, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ds["pdm_rate_corr"], 1.0, rtol=0, atol=1e-6)


def test_a_diverged_model_is_inadequate_and_the_network_numbers_stay(params, run):
    clean = cube.gather(params, run["clean"]).sel(CELL)
    ds = cube.gather(params, run["diverged"]).sel(CELL)
    m = models.names()[-1]
    assert int(ds["verdict"].sel(mass=m)) == INADEQUATE
    assert int(ds["verdict_reasons"].sel(mass=m)) == BIT["diverged"]
    for name in ("equivalence_bound", "difference_p", "rho_lower", "rho_surrogate_p"):
        assert np.isnan(ds[name].sel(mass=m)), name
    for name in ("equivalence_margin", "chi2_floor", "rho_ceiling", "rho_level"):
        assert float(ds[name]) == float(clean[name]), name
    assert np.isnan(ds["V_mean_mV"].sel(model=m))
    at = ds["diverged_at_ms"].sel(mass=m).values
    assert at[DIVERGED["seed"]] == DIVERGED["at_ms"]
    assert np.isnan(np.delete(at, DIVERGED["seed"])).all()
    # the other models are judged as before
    for other in models.names()[:-1]:
        assert int(ds["verdict"].sel(mass=other)) == int(clean["verdict"].sel(mass=other))


def test_the_cube_declares_every_variable_and_its_flags(params, run, tmp_path):
    ds = cube.gather(params, run["clean"])
    assert set(ds.data_vars) == set(datasets.CUBE)
    for name, var in datasets.CUBE.items():
        assert ds[name].dims == var.dims and ds[name].dtype == np.dtype(var.dtype), name
    store.write_dataset(ds, tmp_path / "cube.nc")
    back = store.open_dataset(tmp_path / "cube.nc", "cube")
    verdict, reasons = back["verdict"].attrs, back["verdict_reasons"].attrs
    assert verdict["flag_values"].dtype == np.int8 and "flag_masks" not in verdict
    np.testing.assert_array_equal(verdict["flag_values"], VERDICT_FLAG_VALUES)
    assert verdict["flag_meanings"] == VERDICT_FLAG_MEANINGS
    assert reasons["flag_masks"].dtype == np.int8 and "flag_values" not in reasons
    np.testing.assert_array_equal(reasons["flag_masks"], REASON_FLAG_MASKS)
    assert reasons["flag_meanings"] == REASON_FLAG_MEANINGS
    np.testing.assert_array_equal(back["diverged_seed"].attrs["flag_values"], [0, 1])
    # the paper's readings stay, labelled, with the cut the paper's χ² test amounts to
    for name in ("chi2", "chi2_p_paper", "rho_p"):
        assert "paper" in back[name].attrs["long_name"], name
    cut = back["chi2_p_paper"].attrs
    assert 0 < cut["chi2_cut_stored_band"] < cut["chi2_cut_full_band"]
    assert "lenient" in back["rho_p"].attrs["comment"]
    back.close()


def test_a_fit_is_checked_against_what_it_depends_on(params, run):
    """fit.nc enters the cube under a run whose analysis settings changed (the fit does not
    use them, and the workflow does not refit when they change), not under other masses
    settings, and one line names the key."""
    other_analysis = config.load(
        ROOT / "config" / "config.yaml", [*SETTINGS, "analysis.n_surrogates=199"]
    )
    got = cube.read_fit(
        other_analysis, run["clean"], **CELL, coords=cube.coordinates(other_analysis)
    )
    want = cube.read_fit(params, run["clean"], **CELL, coords=cube.coordinates(params))
    for name in datasets.FIT:
        np.testing.assert_array_equal(got[name], want[name])
    other_masses = config.load(
        ROOT / "config" / "config.yaml", [*SETTINGS, "masses.fit_gain_max=20"]
    )
    with pytest.raises(store.InputError, match=r"fit\.nc: made with a different masses than"):
        cube.read_fit(other_masses, run["clean"], **CELL, coords=cube.coordinates(other_masses))
