"""CBM and CBM-R (MODEL.md §5.2) against hand-computed steps, closed forms and a direct count."""

import math

import numpy as np
import pytest
from numba import njit

from nmmval import config
from nmmval.models.cbm import cbm, cbm_r, conductances, drive
from nmmval.sim.rng import ZIGGURAT, seed_states, standard_normal, uniform_open0

V_REVERSALS_MV = (-80.0, -60.0, 0.0)  # ṽ_I, ṽ, ṽ_E = ṽ_ext of params()


def params(**overrides):
    """The reconstructed parameters of MODEL.md §3 with ``section__key=value`` overrides."""
    cfg = {
        "run": "test",
        "seed": 0,
        "grid": {"p": [0.0], "lam": [0.8], "seeds": [0]},
        "network": {
            "tau_E_ms": 4.0,
            "tau_I_ms": 7.0,
            "tau_ext_ms": 4.0,
            "g_hat_E_nSms": 0.12,
            "g_hat_I_nSms": 1.2,
            "g_hat_ext_nSms": 0.754,
            "v_E_mV": 0.0,
            "v_I_mV": -80.0,
            "v_ext_mV": 0.0,
        },
        "neuron": {
            "C_pF": 200.0,
            "g_L_nS": 10.0,
            "v_rest_mV": -60.0,
            "v_th_mV": -50.0,
            "v_reset_mV": -60.0,
            "tau_ref_ms": 5.0,
            "noise_Q_V2ms": 3.18e-4,
        },
        "simulation": {"dt_ms": 0.1, "T_ms": 1000.0, "T0_ms": 100.0},
    }
    for key, value in overrides.items():
        section, name = key.split("__")
        cfg[section][name] = value
    return config.from_dict(cfg)


@njit(cache=True)
def _cells(G, n_cells, state, zig, dt, tau_m, v_rest, v_syn, g_L, sigma, v_th, v_reset, n_ref):
    kn, wn, fn = zig[0], zig[1], zig[2]
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    v = np.empty(n_cells)
    for u in range(n_cells):
        x, s0, s1, s2, s3 = uniform_open0(s0, s1, s2, s3)
        v[u] = v_reset + (v_th - v_reset) * x
    ref = np.zeros(n_cells, dtype=np.int64)
    n_steps = G.shape[1]
    V = np.empty((2, n_steps))
    count = np.zeros((2, n_steps), dtype=np.int64)
    free = np.zeros(n_steps, dtype=np.int64)
    for i in range(n_steps):
        V[0, i] = v[0::2].mean()
        V[1, i] = v[1::2].mean()
        gE, gI, gX = G[0, i], G[1, i], G[2, i]
        for u in range(n_cells):
            if ref[u] > 0:
                ref[u] -= 1
                continue
            free[i] += 1
            vi = v[u]
            drive = (
                -(vi - v_rest)
                - (gE * (vi - v_syn[0]) + gI * (vi - v_syn[1]) + gX * (vi - v_syn[2])) / g_L
            )
            x, s0, s1, s2, s3 = standard_normal(s0, s1, s2, s3, kn, wn, fn)
            vn = vi + dt / tau_m * drive + sigma * x
            if vn >= v_th:
                v[u] = v_reset
                ref[u] = n_ref
                count[u % 2, i] += 1
            else:
                v[u] = vn
    return V, count, free


def independent_cells(G, n_cells, seed, params):
    """Unconnected network cells that all see the conductances ``G`` (nS, shape (3, n_steps)).

    Each step as the network's (MODEL.md §2): record the mean v; free cells
    integrate by Euler–Maruyama, ``v += dt/τ_m·drive + sqrt(Q·dt)/τ_m·ξ``,
    fire if v ≥ v_th, reset and are held for round(τ_ref/dt) steps; held
    cells count down. Initial v ~ U(v_reset, v_th).

    Returns
    -------
    V : (2, n_steps) mean v of the even and of the odd cells at the start of
        each step (mV); ``V.mean(0)`` is the mean of all for even ``n_cells``
    count : (2, n_steps) spikes of the even and of the odd cells in each step
    free : (n_steps,) non-refractory cells at the start of each step
    """
    net, neu, dt = params.network, params.neuron, params.simulation.dt_ms
    return _cells(
        np.ascontiguousarray(G, dtype=np.float64),
        n_cells,
        seed_states(np.random.SeedSequence(seed), 1)[0],
        ZIGGURAT,
        dt,
        neu.tau_m_ms,
        neu.v_rest_mV,
        np.array([net.v_E_mV, net.v_I_mV, net.v_ext_mV]),
        neu.g_L_nS,
        math.sqrt(neu.noise_Q_mV2ms * dt) / neu.tau_m_ms,
        neu.v_th_mV,
        neu.v_reset_mV,
        int(round(neu.tau_ref_ms / dt)),
    )


def modulated_arrivals(n_steps, dt_ms, ext=4.0, volley=60.0, inh=3.0):
    """φ (3, n_steps): 10 Hz modulated external input, 40 Hz excitatory volleys of
    2 ms width and 20 Hz modulated inhibition; the rates are arrivals per ms
    per neuron at their mean (external, inhibitory) and at the volleys' peak."""
    t = np.arange(n_steps) * dt_ms
    rate = np.vstack(
        [
            volley * np.exp(-(((t % 25.0) - 5.0) ** 2) / 2.0),
            inh * (1 + 0.5 * np.sin(2 * np.pi * t / 50.0 + 1)),
            ext * (1 + 0.5 * np.sin(2 * np.pi * t / 100.0)),
        ]
    )
    return rate * dt_ms


def volleys(n_steps, rng, size):
    """Synchronous volleys at 150 Hz: every 67th step the whole population
    arrives on every cell (``size`` arrivals per neuron, ±50 %), else nothing."""
    phi = np.zeros((3, n_steps))
    hits = np.arange(0, n_steps, 67)
    phi[:, hits] = size * rng.uniform(0.5, 1.5, size=(3, hits.size))
    return phi


def test_conductance_recursion_by_hand():
    P = params()
    phi = np.array([[2.0, 0.0, 1.0, 0.0], [0.0, 3.0, 0.0, 0.0], [1.0, 1.0, 0.0, 5.0]])
    a_E, a_I = math.exp(-0.1 / 4.0), math.exp(-0.1 / 7.0)
    r_E, r_I, r_X = 0.12 / 4.0, 1.2 / 7.0, 0.754 / 4.0
    # step 0 runs with g = 0; the arrivals of step n are felt from step n + 1
    expected = np.array(
        [
            [0.0, 2 * r_E, 2 * r_E * a_E, 2 * r_E * a_E**2 + r_E],
            [0.0, 0.0, 3 * r_I, 3 * r_I * a_I],
            [0.0, r_X, (r_X * a_E + r_X), (r_X * a_E + r_X) * a_E],
        ]
    )
    np.testing.assert_allclose(conductances(phi, P), expected, rtol=1e-15, atol=0)
    k, v_inf = drive(phi, P)
    x = expected / 10.0
    np.testing.assert_allclose(k, 1 + x.sum(axis=0), rtol=1e-15)
    np.testing.assert_allclose(v_inf, (-60.0 - 80.0 * x[1]) / (1 + x.sum(axis=0)), rtol=1e-15)


def test_cbm_without_input_relaxes_exactly_to_rest():
    P = params()
    n = np.arange(2000)
    res = cbm(np.zeros((3, n.size)), np.zeros((3, n.size)), 800, 200, P, v0_mV=-52.0)
    expected = -60.0 + 8.0 * np.exp(-n * 0.1 / 20.0)
    np.testing.assert_allclose(res.V_E_mV, expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(res.V_mV, (800 * res.V_E_mV + 200 * res.V_I_mV) / 1000)


def test_cbm_constant_arrivals_reach_the_fixed_point():
    P = params()
    net, dt = P.network, 0.1
    phi_per_step = np.array([0.5, 0.2, 0.6]) * dt  # arrivals per ms per neuron, times dt
    phi = np.repeat(phi_per_step[:, None], 20000, axis=1)
    tau = np.array([net.tau_E_ms, net.tau_I_ms, net.tau_ext_ms])
    g_hat = np.array([net.g_hat_E_nSms, net.g_hat_I_nSms, net.g_hat_ext_nSms])
    G_inf = g_hat / tau * phi_per_step / (1 - np.exp(-dt / tau))  # nS
    x = G_inf / P.neuron.g_L_nS
    V_star = (-60.0 + x @ np.array([0.0, -80.0, 0.0])) / (1 + x.sum())
    res = cbm(phi, phi, 1, 1, P)
    assert abs(res.V_E_mV[-1] - V_star) < 1e-9, (res.V_E_mV[-1], V_star)
    np.testing.assert_array_equal(res.V_E_mV, res.V_I_mV)


@pytest.mark.parametrize("size", [1e-3, 10.0, 8000.0, 1e6])
def test_cbm_stays_within_the_reversal_potentials(size):
    """150 Hz synchronous volleys up to 10⁶ arrivals per neuron (ΣG/g_L ~ 10⁵)
    and random bursty input, from the extreme initial values; exact to
    within 1e-9 mV (the bound holds exactly for the exponential update,
    up to the rounding of V*)."""
    P = params()
    rng = np.random.default_rng(7)
    lo, hi = min(V_REVERSALS_MV), max(V_REVERSALS_MV)
    bursty = rng.exponential(size, size=(3, 3000)) * (rng.random((3, 3000)) < 0.02)
    for phi in (volleys(3000, rng, size), bursty):
        for v0 in (lo, hi, -50.0):
            V = cbm(phi, phi[::-1], 8000, 2000, P, v0_mV=v0).V_mV
            assert lo - 1e-9 <= V.min() and V.max() <= hi + 1e-9, (size, v0, V.min(), V.max())


def test_cbm_empty_population_has_no_weight():
    P = params()
    phi = modulated_arrivals(500, 0.1)
    res = cbm(phi, np.zeros_like(phi), 1000, 0, P)
    assert np.all(np.isnan(res.V_I_mV))
    np.testing.assert_array_equal(res.V_mV, res.V_E_mV)


def test_cbm_r_bookkeeping_by_hand():
    """Four cells, no input, n_ref = 2: spikes leave the pool at v_th after the
    step's integration, and rejoin at v_reset two steps after their own."""
    P = params(neuron__tau_ref_ms=0.2)
    counts = np.array([0, 1, 0, 2, 0, 0, 0])
    n = counts.size
    zero = np.zeros((3, n))
    res = cbm_r(zero, zero, counts, np.zeros(n, dtype=int), 4, 0, P, v0_mV=-52.0)
    a = math.exp(-0.1 / 20.0)

    def relax(u):
        return -60.0 + (u - -60.0) * a

    u, F = -52.0, 4
    free, V = [], []
    held = [0, 0]  # spikes of the last two steps
    for c in counts:
        free.append(F)
        V.append((F * u + (4 - F) * -60.0) / 4)
        u = relax(u)
        back = held.pop(0)
        total = F * u - c * -50.0 if F > c else 0.0
        F = F - c + back
        u = (total + back * -60.0) / F
        held.append(c)
    np.testing.assert_array_equal(res.free_E, free)
    assert free == [4, 4, 3, 3, 2, 2, 4]
    np.testing.assert_allclose(res.V_E_mV, V, rtol=0, atol=1e-12)


@pytest.mark.parametrize("tau_ref_ms", [0.0, 2.0, 5.0])
def test_cbm_r_free_pool_equals_a_direct_count(tau_ref_ms):
    """Free and refractory counts of CBM-R equal those of 400 independent
    network cells (same G, noise, threshold, reset, refractoriness) in
    every step. V agrees up to the closure and the cells' finite-N noise:
    measured 0.30-0.37 mV max and 0.10-0.13 mV RMS over the three τ_ref, at
    49-71 Hz; the CBM, without the reset, is 8-10 mV RMS away."""
    P = params(neuron__tau_ref_ms=tau_ref_ms)
    phi = modulated_arrivals(3000, 0.1, ext=6.0)
    V, count, free = independent_cells(conductances(phi, P), 400, 3, P)
    V, count = V.mean(axis=0), count.sum(axis=0)
    assert count.sum() > 400, count.sum()
    res = cbm_r(phi, np.zeros_like(phi), count, np.zeros_like(count), 400, 0, P)
    np.testing.assert_array_equal(res.free_E, free)
    rms = np.sqrt(np.mean((res.V_mV - V) ** 2))
    assert np.max(np.abs(res.V_mV - V)) < 0.6 and rms < 0.2, (np.max(np.abs(res.V_mV - V)), rms)
    assert np.sqrt(np.mean((cbm(phi, phi, 400, 0, P).V_mV - V) ** 2)) > 5.0


def test_cbm_r_rejects_impossible_counts():
    P = params()
    zero = np.zeros((3, 100))
    counts = np.zeros(100, dtype=int)
    counts[[10, 20]] = 3  # the three spikes of step 10 are still refractory in step 20
    with pytest.raises(ValueError, match="3 spikes in step 20 but only 2 free cells"):
        cbm_r(zero, zero, counts, counts, 5, 5, P)
    with pytest.raises(ValueError, match="count_I: expected integers"):
        cbm_r(zero, zero, counts, counts * 1.0, 5, 5, P)


def test_inputs_are_checked():
    P = params()
    with pytest.raises(ValueError, match=r"phi_E: shape \(100,\)"):
        cbm(np.zeros(100), np.zeros((3, 100)), 1, 1, P)
    with pytest.raises(ValueError, match="phi_I: arrivals must be finite and >= 0"):
        cbm(np.zeros((3, 100)), -np.ones((3, 100)), 1, 1, P)
    with pytest.raises(ValueError, match="not both 0"):
        cbm(np.zeros((3, 100)), np.zeros((3, 100)), 0, 0, P)


def test_same_bits_twice():
    P = params()
    phi = modulated_arrivals(2000, 0.1)
    counts = np.random.default_rng(1).poisson(0.5, 2000)
    a, b = (cbm(phi, phi / 2, 800, 200, P) for _ in range(2))
    np.testing.assert_array_equal(a.V_mV, b.V_mV)
    a, b = (cbm_r(phi, phi / 2, counts, counts, 800, 200, P) for _ in range(2))
    np.testing.assert_array_equal(a.V_mV, b.V_mV)
    np.testing.assert_array_equal(a.free_I, b.free_I)
