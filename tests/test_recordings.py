"""What the kernel records besides V and φ (MODEL.md §4), against direct computations.

Per-population arrivals and spike counts, the split-half means and the
closure diagnostics, each checked against a per-neuron computation from the
graph, the spikes or the neurons' state, for direct and complement delivery.
"""

import numpy as np
import pytest

from nmmval.analysis.protocol import noise_ceiling
from nmmval.sim import lif
from nmmval.sim.network import complement

from conftest import small_params

#: the cells of the checks: direct (p <= 1/2) and complement delivery, both
#: populations, a chunk that straddles the E/I boundary (N = 300, n_E = 240)
CELLS = [(0.2, 0.8, "direct"), (0.8, 0.8, "auto"), (0.8, 0.8, "direct"), (0.3, 0.8, "complement")]


def _params(**overrides):
    base = {"network.N": 300, "simulation.T_ms": 200, "simulation.T0_ms": 50}
    return small_params(**{**base, **overrides})


@pytest.fixture(scope="module", params=CELLS, ids=lambda c: f"p{c[0]}-{c[2]}")
def recorded(request):
    p, lam, delivery = request.param
    params = _params(**{"simulation.record_closures": "true"})
    return params, p, lam, lif.simulate(params, p, lam, 3, threads=1, delivery=delivery)


def test_per_population_arrivals_sum_to_phi(recorded):
    params, _, _, rec = recorded
    N = params.network.N
    for s, phi in enumerate((rec.phi_E, rec.phi_I, rec.phi_ext)):
        np.testing.assert_array_equal(rec.arrivals_pop[s].sum(axis=0) / N, phi)
        weighted = (rec.n_E * rec.phi_pop()[s, 0] + rec.n_I * rec.phi_pop()[s, 1]) / N
        np.testing.assert_allclose(weighted, phi, rtol=1e-12, atol=0)
    assert not rec.arrivals_pop[2, 1].any()  # the external trains reach E cells only
    assert rec.arrivals_pop.sum() > 0


def test_per_population_arrivals_follow_the_graph(recorded):
    """Arrivals by target population = the spikes times their out-degree onto it."""
    params, p, lam, rec = recorded
    internal, _, n_E, _ = lif.build_graphs(params, p, lam, 3)
    graph = complement(internal) if internal.complemented else internal
    targets = np.split(graph.indices, graph.indptr[1:-1])
    onto_E = np.array([np.count_nonzero(t < n_E) for t in targets])
    onto_I = np.array([t.size for t in targets]) - onto_E
    n = params.simulation.n_steps
    for s, src in enumerate((rec.spike_neuron < n_E, rec.spike_neuron >= n_E)):
        for P, onto in enumerate((onto_E, onto_I)):
            expected = np.bincount(
                rec.spike_step[src], weights=onto[rec.spike_neuron[src]], minlength=n
            )
            np.testing.assert_array_equal(rec.arrivals_pop[s, P], expected)


def test_spike_counts_per_population(recorded):
    params, _, _, rec = recorded
    n = params.simulation.n_steps
    is_E = rec.spike_neuron < rec.n_E
    np.testing.assert_array_equal(rec.spikes_pop[0], np.bincount(rec.spike_step[is_E], minlength=n))
    np.testing.assert_array_equal(
        rec.spikes_pop[1], np.bincount(rec.spike_step[~is_E], minlength=n)
    )


def test_split_halves_are_the_even_and_odd_cells(recorded):
    params, p, lam, _ = recorded
    states = {}

    def keep(step, v, ref):
        states[step] = v.copy()

    rec = lif.simulate(params, p, lam, 3, threads=1, on_block=keep)
    N = params.network.N
    n_a, n_b = (N + 1) // 2, N // 2
    np.testing.assert_allclose((n_a * rec.V_half_mV[0] + n_b * rec.V_half_mV[1]) / N, rec.V_mV)
    for step, v in states.items():
        if step < params.simulation.n_steps:
            np.testing.assert_allclose(rec.V_half_mV[:, step], [v[0::2].mean(), v[1::2].mean()])


def test_closures_equal_a_per_neuron_computation(recorded, monkeypatch):
    """⟨g_σ v⟩ − ⟨g_σ⟩⟨v⟩ per population, step by step, to 1e-12 relative.

    One step per kernel call; g_σ as the step integrates with it is its value
    after the step divided by the step's decay factor.
    """
    params, p, lam, _ = recorded
    consts = lif._consts(params)
    decay = np.array([consts.decay_E, consts.decay_I, consts.decay_ext])[:, None]
    before, used = [], []
    run_block = lif.run_block

    def one_step(n0, n_steps, neurons, *rest):
        before.append(neurons.v_mV.copy())
        k = run_block(n0, n_steps, neurons, *rest)
        used.append(neurons.g_nS / decay)
        return k

    monkeypatch.setattr(lif, "BLOCK_STEPS", 1)
    monkeypatch.setattr(lif, "run_block", one_step)
    rec = lif.simulate(params, p, lam, 3, threads=1)
    n_E = rec.n_E
    cl = rec.closures
    for n in range(0, params.simulation.n_steps, 7):
        v, g = before[n], used[n]
        for P, cells in enumerate((slice(0, n_E), slice(n_E, None))):
            vp, gp = v[cells], g[:, cells]
            np.testing.assert_allclose(cl["v_pop"][P, n], vp.mean(), rtol=1e-13)
            np.testing.assert_allclose(cl["var_v_pop"][P, n], vp.var(), rtol=1e-10)
            np.testing.assert_allclose(cl["g_pop"][:, P, n], gp.mean(axis=1), rtol=1e-12)
            cov = (gp * vp).mean(axis=1) - gp.mean(axis=1) * vp.mean()
            direct = ((gp - gp.mean(axis=1, keepdims=True)) * (vp - vp.mean())).mean(axis=1)
            np.testing.assert_allclose(cov, direct, rtol=1e-9, atol=1e-12 * np.abs(gp * vp).max())
            np.testing.assert_allclose(
                cl["cov_gv_pop"][:, P, n], cov, rtol=1e-12, atol=1e-12 * np.abs(gp * vp).max()
            )
    assert np.abs(cl["cov_gv_pop"]).max() > 0


def test_closures_off_by_default_and_same_bits():
    """Recording the closures changes nothing else."""
    on = lif.simulate(_params(**{"simulation.record_closures": "true"}), 0.3, 0.8, 1, threads=1)
    off = lif.simulate(_params(**{"simulation.record_closures": "false"}), 0.3, 0.8, 1, threads=1)
    assert off.closures is None and on.closures is not None
    for name in ("V_mV", "phi_E", "phi_I", "phi_ext", "spike_neuron", "arrivals_pop", "V_half_mV"):
        np.testing.assert_array_equal(getattr(on, name), getattr(off, name))


def _shared_drive(Q_V2ms: float):
    """N = 400 cells, no internal edges, every cell driven by the same 50 external
    trains (p_ext = 1) below threshold: a common input, and independent noise."""
    return _params(
        **{
            "network.N": 400,
            "network.M": 50,
            "network.p_ext": 1.0,
            "network.nu_ext_Hz": 20.0,
            "network.g_hat_ext_nSms": 0.3,
            "neuron.v_th_mV": 0.0,
            "neuron.noise_Q_V2ms": Q_V2ms,
            "simulation.T_ms": 4000,
            "simulation.T0_ms": 500,
            "simulation.record_closures": "false",
        }
    )


def test_split_half_ceiling_is_one_without_noise():
    params = _shared_drive(0.0)
    rec = lif.simulate(params, 0.0, 1.0, 0, threads=1)
    n0 = params.simulation.n0_steps
    _, ceiling = noise_ceiling(rec.V_half_mV[0, n0:], rec.V_half_mV[1, n0:])
    assert ceiling > 0.9999


def test_split_half_ceiling_matches_the_known_noise_variance():
    """ρ_ceiling = sqrt(R), R = 1 − var(noise in V)/var(V), within 5 %.

    Each cell's noise is an AR(1) with a = 1 − dt(1 + G)/τ_m and step
    standard deviation s = sqrt(Q·dt)/τ_m (Euler–Maruyama); G, the external
    conductance over g_L, is common to all cells and its time mean is used.
    The noise of V, the mean of N independent such, has variance
    s²/(1 − a²)/N.
    """
    params = _shared_drive(3.18e-4)
    rec = lif.simulate(params, 0.0, 1.0, 0, threads=1)
    n0 = params.simulation.n0_steps
    _, ceiling = noise_ceiling(rec.V_half_mV[0, n0:], rec.V_half_mV[1, n0:])
    net, neu, dt = params.network, params.neuron, params.simulation.dt_ms
    G = (net.g_hat_ext_nSms * rec.phi_ext[n0:] / dt).mean() / neu.g_L_nS
    a = 1 - dt * (1 + G) / neu.tau_m_ms
    s2 = neu.noise_Q_mV2ms * dt / neu.tau_m_ms**2
    noise_var = s2 / (1 - a * a) / params.network.N
    R = 1 - noise_var / rec.V_mV[n0:].var()
    assert 0.3 < R < 0.97  # a test in the range where the ceiling says something
    assert ceiling == pytest.approx(np.sqrt(R), rel=0.05)


def test_recordings_do_not_depend_on_the_thread_count():
    params = _params(**{"simulation.record_closures": "true", "network.N": 1000})
    a = lif.simulate(params, 0.3, 0.8, 5, threads=1)
    b = lif.simulate(params, 0.3, 0.8, 5, threads=2)
    for name in ("arrivals_pop", "spikes_pop", "V_half_mV"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for name, values in a.closures.items():
        np.testing.assert_array_equal(values, b.closures[name])
