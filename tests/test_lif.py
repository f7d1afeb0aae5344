"""The LIF network kernel against closed forms and exact bookkeeping (MODEL.md §2-4)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

from nmmval.sim import kernel, lif
from nmmval.sim.network import WORD_BITS, Graph, complement, erdos_renyi, in_edge_bits
from nmmval.sim.rng import seed_chunk_lanes

from conftest import small_params


def run_kernel(
    params, v0, n_steps, g0=(0.0, 0.0, 0.0), pending_E=None, noise=True, seed=0, decay=None
):
    """Run the kernel on N unconnected excitatory neurons without external drive.

    Returns (v, (g_E, g_I, g_X), ref, V, spikes) after ``n_steps``. ``decay``
    replaces the three per-step conductance decay factors.
    """
    consts = lif._consts(params)
    if decay is not None:
        consts = consts._replace(decay_E=decay, decay_I=decay, decay_ext=decay)
    if not noise:
        consts = consts._replace(noise_sigma_mV=0.0)
    v = np.array(v0, dtype=float)
    n = v.size
    neurons = kernel.new_neurons(v)
    neurons.g_nS[:] = np.reshape(g0, (3, 1))
    if pending_E is not None:
        neurons.arrivals[0] = pending_E
    chunks = kernel.new_chunks(seed_chunk_lanes(np.random.SeedSequence(seed), lif.chunk_count(n)))
    n_parts = numba.get_num_threads()  # one part per thread, as simulate makes them
    no_edges = np.zeros(0, dtype=np.int32)
    unconnected = Graph(np.zeros(n + 1, dtype=np.int64), no_edges, n, False, False)
    no_trains = Graph(np.zeros(1, dtype=np.int64), no_edges, n, False, True)
    none = np.zeros(0, dtype=np.int64)
    no_drive = kernel.Drive(none, np.zeros(n_steps + 1, dtype=np.int64), none)
    out = kernel.new_output(n_steps, n, n_parts)
    wiring = kernel.wire(unconnected, no_trains, n, n_parts)
    k = kernel.run_block(0, n_steps, neurons, chunks, no_drive, wiring, consts, out)
    spikes = (out.spike_neuron[:k], out.spike_step[:k])
    return neurons.v_mV, neurons.g_nS, neurons.ref_steps, out.V_mV, spikes


def test_conductance_decays_exactly_without_input():
    params = small_params(**{"neuron.v_th_mV": 100})
    n = 400
    _, g, _, _, _ = run_kernel(params, [-60.0], n, g0=(1.0, 2.0, 3.0), noise=False)
    t = n * params.simulation.dt_ms
    net = params.network
    for gi, g0, tau in zip(
        g, (1.0, 2.0, 3.0), (net.tau_E_ms, net.tau_I_ms, net.tau_ext_ms), strict=True
    ):
        np.testing.assert_allclose(gi[0], g0 * np.exp(-t / tau), rtol=1e-12)


def test_one_arrival_raises_g_by_ghat_over_tau():
    params = small_params(**{"neuron.v_th_mV": 100})
    _, g, _, _, _ = run_kernel(params, [-60.0, -60.0], 1, pending_E=[1, 0], noise=False)
    dec = np.exp(-params.simulation.dt_ms / params.network.tau_E_ms)
    expected = params.network.g_hat_E_nSms / params.network.tau_E_ms
    np.testing.assert_allclose(g[0][0] / dec, expected, rtol=1e-14)
    assert g[0][1] == 0.0


def test_V_is_the_mean_of_v_at_the_start_of_each_step():
    """What the kernel records reaches the caller (Numba drops writes to a
    bundle's arrays inside a parallel loop, see ``nmmval.sim.kernel``)."""
    params = small_params(**{"neuron.v_th_mV": 100})
    v0 = np.linspace(-70.0, -55.0, 300)
    v1, _, _, _, _ = run_kernel(params, v0, 1)
    _, _, _, V, _ = run_kernel(params, v0, 2)
    np.testing.assert_allclose(V, [v0.mean(), v1.mean()], rtol=1e-14)


def test_membrane_converges_to_fixed_point_with_constant_conductances():
    # no decay: the conductances stay where they start
    params = small_params(**{"neuron.v_th_mV": 100})
    gE, gI, gX = 2.0, 5.0, 1.0
    v, _, _, _, _ = run_kernel(
        params, [-70.0, -40.0], 20000, g0=(gE, gI, gX), noise=False, decay=1.0
    )
    net, neu = params.network, params.neuron
    a = np.array([gE, gI, gX]) / neu.g_L_nS
    v_star = (neu.v_rest_mV + a @ [net.v_E_mV, net.v_I_mV, net.v_ext_mV]) / (1 + a.sum())
    np.testing.assert_allclose(v, v_star, rtol=0, atol=1e-10)


def test_noise_only_stationary_std():
    params = small_params(**{"neuron.v_th_mV": 100})
    n = 5000
    tau_m = params.neuron.tau_m_ms
    # 10 membrane time constants from v_rest: the start is forgotten
    n_steps = int(10 * tau_m / params.simulation.dt_ms)
    v, _, _, _, _ = run_kernel(params, np.full(n, -60.0), n_steps, noise=True, seed=5)
    expected = np.sqrt(params.neuron.noise_Q_mV2ms / (2 * tau_m))
    assert abs(v.std() / expected - 1) < 0.05
    assert abs(v.mean() - params.neuron.v_rest_mV) < 4 * expected / np.sqrt(n)


def test_refractory_holds_v_at_reset_and_no_double_spike():
    params = small_params()
    neu, dt = params.neuron, params.simulation.dt_ms
    n_ref = round(neu.tau_ref_ms / dt)
    # start above threshold with strong excitation: spikes as soon as allowed
    v0 = np.full(3, neu.v_th_mV + 1.0)
    v, _, ref, _, (spk_n, spk_s) = run_kernel(params, v0, 3, g0=(200.0, 0.0, 0.0), noise=False)
    np.testing.assert_array_equal(spk_s, [0, 0, 0])
    np.testing.assert_array_equal(v, neu.v_reset_mV)
    assert np.all(ref == n_ref - 2)
    # across a whole strongly driven network run, no neuron fires twice within tau_ref
    params = small_params(**{"network.g_hat_ext_nSms": 40.0, "network.p_ext": 0.02})
    rec = lif.simulate(params, 0.2, 1.0, 0)
    assert rec.rate_E_Hz > 50
    order = np.lexsort((rec.spike_step, rec.spike_neuron))
    same = np.diff(rec.spike_neuron[order]) == 0
    gaps = np.diff(rec.spike_step[order])[same]
    assert gaps.min() >= n_ref + 1


@pytest.mark.parametrize("p,lam", [(0.1, 0.8), (0.7, 0.6)])
def test_bookkeeping_phi_equals_out_degree_of_spikes(p, lam):
    params = small_params(**{"network.g_hat_ext_nSms": 20.0})
    rec = lif.simulate(params, p, lam, 2)
    internal, external, n_E, _ = lif.build_graphs(params, p, lam, 2)
    deg = internal.out_degree()
    N = params.network.N
    is_E = rec.spike_neuron < n_E
    assert is_E.sum() > 100 and (~is_E).sum() > 10
    assert round(N * rec.phi_E.sum()) == deg[rec.spike_neuron[is_E]].sum()
    assert round(N * rec.phi_I.sum()) == deg[rec.spike_neuron[~is_E]].sum()
    # external: events are Poisson(M nu T), each from a uniform train -> E[arrivals]
    net, sim = params.network, params.simulation
    events = net.M * net.nu_ext_Hz * 1e-3 * sim.T_ms
    mean_deg = external.out_degree().mean()
    var = events * (external.out_degree() ** 2).mean()  # compound Poisson variance
    assert abs(N * rec.phi_ext.sum() - events * mean_deg) < 5 * np.sqrt(var)


def _same(a: lif.Recording, b: lif.Recording) -> bool:
    fields = ("V_mV", "phi_E", "phi_I", "phi_ext", "spike_neuron", "spike_step")
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in fields)


def test_determinism_same_seed_and_thread_count_independent():
    params = small_params(**{"network.N": 1000})
    a = lif.simulate(params, 0.3, 0.8, 7, threads=1)
    b = lif.simulate(params, 0.3, 0.8, 7, threads=numba.config.NUMBA_NUM_THREADS)
    c = lif.simulate(params, 0.3, 0.8, 8, threads=1)
    assert a.spike_neuron.size > 0
    assert _same(a, b)
    assert not np.array_equal(a.V_mV, c.V_mV)


def test_more_threads_than_cores_give_the_same_bits(tmp_path):
    """Three parts meeting at every step on (here) two cores: the barrier's
    sleeping path, and the same bits as one thread."""
    params = small_params(**{"network.N": 1000})
    script = (
        "import sys, numpy as np\n"
        "from nmmval.sim import lif\n"
        "from conftest import small_params\n"
        "r = lif.simulate(small_params(**{'network.N': 1000}), 0.3, 0.8, 7, threads=3)\n"
        "np.savez(sys.argv[1], V=r.V_mV, E=r.phi_E, I=r.phi_I, X=r.phi_ext,\n"
        "         n=r.spike_neuron, s=r.spike_step)\n"
    )
    out = tmp_path / "threads3.npz"
    env = dict(os.environ, NUMBA_NUM_THREADS="3")
    res = subprocess.run(
        [sys.executable, "-c", script, str(out)],
        capture_output=True, text=True, env=env, cwd=Path(__file__).parent, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    a = lif.simulate(params, 0.3, 0.8, 7, threads=1)
    b = np.load(out)
    assert a.spike_neuron.size > 0
    fields = ("V_mV", "phi_E", "phi_I", "phi_ext", "spike_neuron", "spike_step")
    for key, field in zip("VEIXns", fields, strict=True):
        assert np.array_equal(b[key], getattr(a, field)), field


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")
def test_simulate_sets_the_thread_count_per_call_and_restores_the_callers():
    """Each kernel call sets its own thread count (the governor may change
    it between calls), so a callback that changes Numba's count changes
    nothing, and the caller's count is back after the run."""
    params = small_params(**{"network.N": 300})
    before = numba.get_num_threads()

    def to_one_thread(*_):
        numba.set_num_threads(1)

    try:
        a = lif.simulate(params, 0.1, 0.8, 0, threads=2, on_block=to_one_thread)
        assert numba.get_num_threads() == before
        b = lif.simulate(params, 0.1, 0.8, 0, threads=1)
        assert np.array_equal(a.V_mV, b.V_mV) and np.array_equal(a.spike_step, b.spike_step)
    finally:
        numba.set_num_threads(before)


def test_the_tbb_threading_layer_is_refused(monkeypatch):
    """TBB may run two parts as tasks on one thread, where the first would
    wait for the second for ever."""
    monkeypatch.setattr(numba, "threading_layer", lambda: "tbb")
    with pytest.raises(RuntimeError, match="threading layer is tbb"):
        lif.simulate(small_params(**{"network.N": 300}), 0.1, 0.8, 0)


@pytest.mark.parametrize("p", [0.3, 0.8, 1.0])
def test_complement_delivery_equals_direct_delivery(p):
    params = small_params(**{"network.N": 300, "network.g_hat_ext_nSms": 20.0})
    direct = lif.simulate(params, p, 0.8, 1, delivery="direct")
    compl = lif.simulate(params, p, 0.8, 1, delivery="complement")
    assert direct.spike_neuron.size > 100
    assert _same(direct, compl)


def test_graph_complement_used_for_dense_graphs():
    params = small_params()
    internal, _, _, _ = lif.build_graphs(params, 0.9, 0.8, 0)
    assert internal.complemented
    assert complement(internal).indices.size == internal.n_edges


def test_recording_shapes_and_rates():
    params = small_params()
    rec = lif.simulate(params, 0.1, 0.8, 0)
    n = params.simulation.n_steps
    assert rec.V_mV.shape == rec.phi_E.shape == rec.phi_ext.shape == (n,)
    assert rec.n_E == 320 and rec.n_I == 80
    n0 = params.simulation.n0_steps
    assert rec.Vbar_mV == pytest.approx(rec.V_mV[n0:].mean(), rel=1e-12)
    window_s = (params.simulation.T_ms - params.simulation.T0_ms) / 1000
    n_E_spk = np.count_nonzero((rec.spike_neuron < rec.n_E) & (rec.spike_step >= n0))
    assert rec.rate_E_Hz == pytest.approx(n_E_spk / (rec.n_E * window_s))
    assert np.all(np.isfinite(rec.V_mV))


def test_on_block_sees_state_between_blocks():
    params = small_params()
    seen = []
    lif.simulate(params, 0.1, 0.8, 0, on_block=lambda step, v, ref: seen.append((step, v.max())))
    assert [s for s, _ in seen][-1] == params.simulation.n_steps
    assert all(vmax < params.neuron.v_th_mV for _, vmax in seen)


@pytest.mark.parametrize("compl", [False, True])
def test_vectorised_update_equals_the_scalar_rule_bit_for_bit(compl):
    """`kernel.update_chunk` (branch-free, SIMD) against MODEL.md §2 steps 2-4, 6
    written neuron by neuron in plain Python, refractory and spiking cells
    included."""
    params = small_params()
    k = lif._consts(params)
    rng = np.random.default_rng(5)
    lo, m, n_E, N = 3, 61, 40, 70
    v = rng.uniform(-70.0, -49.0, N)
    g = rng.uniform(0.0, 5.0, (3, N))
    ref = rng.choice([0, 0, 0, 1, 7], N).astype(np.int32)
    spiked = rng.random(N) < 0.2
    cnt = rng.integers(0, 4, (3, N)).astype(np.int32)
    xb = rng.standard_normal(m)
    S_E, S_I = 9, 5
    expected = [a.copy() for a in (v, g, ref, spiked, cnt)]
    ev, eg, eref, espk, ecnt = expected
    for j in range(m):
        i = lo + j
        self_E, self_I = int(spiked[i] and i < n_E), int(spiked[i] and i >= n_E)
        a_E = S_E - self_E - int(cnt[0, i]) if compl else int(cnt[0, i])
        a_I = S_I - self_I - int(cnt[1, i]) if compl else int(cnt[1, i])
        gE, gI = g[0, i] + a_E * k.dg_E_nS, g[1, i] + a_I * k.dg_I_nS
        gX = g[2, i] + int(cnt[2, i]) * k.dg_ext_nS
        vi, fired = v[i], False
        if ref[i] > 0:
            eref[i] -= 1
        else:
            syn = gE * (vi - k.v_E_mV) + gI * (vi - k.v_I_mV) + gX * (vi - k.v_ext_mV)
            drive = -(vi - k.v_rest_mV) - k.inv_g_L_per_nS * syn
            vi = vi + k.dt_over_tau_m * drive + k.noise_sigma_mV * xb[j]
            if vi >= k.v_th_mV:
                fired, vi, eref[i] = True, k.v_reset_mV, k.n_ref_steps
        ev[i], espk[i] = vi, fired
        eg[:, i] = (gE * k.decay_E, gI * k.decay_I, gX * k.decay_ext)
        ecnt[:, i] = 0
    xb_full = np.zeros(lif.CHUNK_NEURONS)
    xb_full[:m] = xb
    neurons = kernel.Neurons(v_mV=v, g_nS=g, ref_steps=ref, spiked=spiked, arrivals=cnt)
    kernel.update_chunk(lo, m, xb_full, S_E, S_I, int(compl), n_E, neurons, k)
    assert espk[lo : lo + m].any() and (ref[lo : lo + m] > 0).any()  # both branches taken
    for got, want in zip((v, g, ref, spiked, cnt), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_update_chunk_vectorises_both_loops():
    """LLVM vectorises `kernel.update_chunk`'s direct and complement loops
    (the result is the same without, the speed is not): a bundle's array
    read inside a loop that branches would stop it (see `nmmval.sim.kernel`)."""
    fresh = numba.njit(kernel.update_chunk.py_func)  # not from the cache: its IR can be read
    n = 300
    neurons = kernel.new_neurons(np.zeros(n))
    fresh(0, n, np.zeros(n), 0, 0, 1, n, neurons, lif._consts(small_params()))
    ir = fresh.inspect_llvm(fresh.signatures[0])
    assert len(re.findall(r"^vector\.body\d*:", ir, flags=re.M)) == 2


@pytest.mark.parametrize("p", [0.3, 0.5, 0.8])
def test_dense_count_gives_the_same_bits_as_the_scatter(p):
    """Counting a step's arrivals densely (popcounts against the in-edge
    bits) or by scattering them gives the same integers, so the same
    recording bit for bit, on one thread and on all; N = 300 with 240
    excitatory cells puts the E/I boundary inside a word of 64 sources."""
    params = small_params(**{"network.N": 300, "network.g_hat_ext_nSms": 20.0})
    scatter = lif.simulate(params, p, 0.8, 1, dense="never", threads=1)
    assert scatter.spike_neuron.size > 100
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        for dense in ("always", "auto"):
            got = lif.simulate(params, p, 0.8, 1, dense=dense, threads=threads)
            assert _same(scatter, got), (dense, threads)
            np.testing.assert_array_equal(scatter.arrivals_pop, got.arrivals_pop)


@pytest.mark.parametrize("p", [0.05, 0.5, 0.9])
def test_dense_and_scatter_count_the_same_arrivals_in_a_part(p):
    """`kernel.dense_arrivals` against `kernel.scatter_arrivals` on random
    steps of 1 to all 700 cells spiking, for a part of the targets cut
    inside the chunks, E and I sources apart (n_E = 525: mid-word)."""
    N, n_E = 700, 525
    graph = erdos_renyi(N, p, np.random.SeedSequence(3))
    no_trains = Graph(np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32), n_E, False, True)
    wiring = kernel.wire(graph, no_trains, n_E, 3)
    bits = in_edge_bits(graph)
    rng = np.random.default_rng(4)
    for n_spk in (1, 5, 64, 300, N):
        ids = np.sort(rng.choice(N, n_spk, replace=False))
        spikes = np.zeros((lif.chunk_count(N), lif.CHUNK_NEURONS), dtype=np.int32)
        n_spikes = np.zeros((lif.chunk_count(N), 2), dtype=np.int64)
        words = np.zeros(bits.shape[0], dtype=np.uint8)
        for i in ids:
            c = i // lif.CHUNK_NEURONS
            spikes[c, n_spikes[c, 0]] = i
            n_spikes[c, 0] += 1
            words[i // WORD_BITS] |= np.uint8(1 << (i % WORD_BITS))
        rows = np.zeros((2, words.size), dtype=np.int64)
        vals = np.zeros((2, words.size), dtype=np.uint8)
        n_rows = kernel.spike_rows(words, n_E, rows, vals)
        assert sum(n_rows) >= np.count_nonzero(words)
        for t in range(3):
            lo, hi = wiring.bounds[t], wiring.bounds[t + 1]
            want = np.zeros((2, N), dtype=np.int32)
            got = np.zeros((2, N), dtype=np.int32)
            kernel.scatter_arrivals(
                spikes, n_spikes, wiring.targets, wiring.split, t, n_E, want[0], want[1]
            )
            kernel.dense_arrivals(bits, rows, vals, *n_rows, got[0], got[1], lo, hi)
            assert want[:, lo:hi].sum() > 0 or n_spk == 1
            np.testing.assert_array_equal(got, want)


def test_in_edge_bits_only_where_a_dense_count_can_pay():
    """`simulate(dense="auto")` keeps the in-edge bits only where a full word
    of spiking sources would be cheaper to count densely, and within
    `lif.DENSE_MAX_BYTES`."""
    params = small_params(**{"network.N": 2000})
    sparse, _, _, _ = lif.build_graphs(params, 0.001, 0.8, 0)
    dense, _, _, _ = lif.build_graphs(params, 0.5, 0.8, 0)
    assert lif._dense_layout(sparse, "auto")[0] is None
    assert lif._dense_layout(sparse, "always")[0].shape == (250, 2000)
    assert lif._dense_layout(dense, "auto")[0].shape == (250, 2000)
    assert lif._dense_layout(dense, "never")[0] is None
    with pytest.raises(ValueError, match="dense: 'sometimes'"):
        lif._dense_layout(dense, "sometimes")


def test_in_edge_bits_over_the_memory_cap_are_not_built(monkeypatch):
    params = small_params(**{"network.N": 2000})
    graph, _, _, _ = lif.build_graphs(params, 0.5, 0.8, 0)
    monkeypatch.setattr(lif, "DENSE_MAX_BYTES", 250 * 2000 - 1)
    assert lif._dense_layout(graph, "auto")[0] is None


def test_dense_count_vectorises():
    """LLVM vectorises `kernel.dense_arrivals`'s passes over the targets (the
    result is the same without, the speed is not)."""

    @numba.njit
    def count(bits, rows, vals, arr_E, arr_I):
        kernel.dense_arrivals(bits, rows, vals, 5, 1, arr_E, arr_I, 0, arr_E.size)

    n = 300
    arr = np.zeros((2, n), dtype=np.int32)
    rows = np.zeros((2, 5), dtype=np.int64)
    count(np.zeros((5, n), dtype=np.uint8), rows, np.ones((2, 5), np.uint8), arr[0], arr[1])
    ir = count.inspect_llvm(count.signatures[0])
    assert len(re.findall(r"^vector\.body\d*:", ir, flags=re.M)) >= 2
    assert re.search(r"@llvm\.ctpop\.v\d+i8", ir)


def test_without_noise_no_normal_is_drawn():
    """Q = 0: the kernel draws no normal (the streams stay where they were
    seeded), and v follows the same update as with a zero draw."""
    params = small_params()
    consts = lif._consts(params)._replace(noise_sigma_mV=0.0)
    n = 40
    neurons = kernel.new_neurons(np.full(n, -55.0))
    seeded = seed_chunk_lanes(np.random.SeedSequence(0), lif.chunk_count(n))
    chunks = kernel.new_chunks(seeded.copy())
    no_edges = np.zeros(0, dtype=np.int32)
    unconnected = Graph(np.zeros(n + 1, dtype=np.int64), no_edges, n, False, False)
    no_trains = Graph(np.zeros(1, dtype=np.int64), no_edges, n, False, True)
    none = np.zeros(0, dtype=np.int64)
    drive = kernel.Drive(none, np.zeros(11, dtype=np.int64), none)
    n_parts = numba.get_num_threads()
    wiring = kernel.wire(unconnected, no_trains, n, n_parts)
    kernel.run_block(
        0, 10, neurons, chunks, drive, wiring, consts, kernel.new_output(10, n, n_parts)
    )
    np.testing.assert_array_equal(chunks.rng_state, seeded)
    want = -55.0
    for _ in range(10):
        want = want + consts.dt_over_tau_m * (-(want - consts.v_rest_mV))
    np.testing.assert_array_equal(neurons.v_mV, np.full(n, want))
