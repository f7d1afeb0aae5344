"""The conductance-based LIF network of MODEL.md §2-4 (paper Eqs. 5-12).

Membrane (Eq. 11a, Euler-Maruyama, v in mV, t in ms)::

    v += dt/τ_m · [-(v - ṽ) - Σ_σ (g_σ/g_L)(v - ṽ_σ)] + sqrt(Q·dt)/τ_m · ξ

Conductances (Eq. 11b): each arriving type-σ spike raises g_σ by ĝ_σ/τ_σ
(nS), and g_σ decays exactly, ``g ← g·exp(-dt/τ_σ)``, between arrivals.

Order within step n: (1) record V[n], the mean of v at the start of the
step; (2) non-refractory cells integrate v with the g at the start of the
step, refractory cells stay at v_reset without noise; (3) every g decays;
(4) threshold v ≥ v_th, and the external trains' events of this step; (5)
every spike of this step adds ĝ_σ/τ_σ to its targets' g_σ, felt from step
n + 1, and is counted in φ_σ[n]; (6) spiking cells reset and are held for
τ_ref/dt steps.

Arrivals are accumulated as integer counts per neuron and type, then added
as ``count · ĝ/τ``: delivery by the graph or by its complement, and any
thread count, give the same bits.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numba
import numpy as np
from numba import prange

from nmmval.barrier import SLOT, arrive_and_wait
from nmmval.config import Params
from nmmval.network import Graph, bipartite, cell_streams, complement, erdos_renyi
from nmmval.rng import ZIGGURAT, seed_states, standard_normal
from nmmval.threads import Governor, available_cpus

#: neurons per work chunk: the chunk layout, not the thread count, fixes the
#: order of every floating-point sum, so results do not depend on threads.
CHUNK_NEURONS = 256
#: steps per call of the kernel (external events are drawn per block)
BLOCK_STEPS = 200


@dataclass
class Recording:
    """What one simulation records (MODEL.md §4).

    Attributes
    ----------
    V_mV : ndarray, float64, (n_steps,)
        Population-mean membrane potential at the start of each step (Eq. 12).
    phi_E, phi_I, phi_ext : ndarray, float64, (n_steps,)
        Type-σ spike arrivals added in each step, summed over neurons, divided
        by N (spikes per neuron per step); Φ_σ = φ_σ/dt.
    spike_neuron, spike_step : ndarray, int32
        Every spike: neuron id (excitatory ids are 0 .. n_E - 1) and step.
    rate_E_Hz, rate_I_Hz : float
        Mean firing rates of the populations over [T0, T) (NaN for an empty
        population).
    Vbar_mV : float
        Mean of V over [T0, T).
    steps_by_threads : dict
        Thread count -> steps run on it (:class:`nmmval.threads.Governor`).
    """

    V_mV: np.ndarray
    phi_E: np.ndarray
    phi_I: np.ndarray
    phi_ext: np.ndarray
    spike_neuron: np.ndarray
    spike_step: np.ndarray
    rate_E_Hz: float
    rate_I_Hz: float
    Vbar_mV: float
    n_E: int
    n_I: int
    n_edges: int
    n_ext_edges: int
    build_s: float
    loop_s: float
    steps_by_threads: dict


def chunk_count(N: int) -> int:
    """How many chunks of :data:`CHUNK_NEURONS` neurons (the last may be
    short) cover N neurons: one random stream each."""
    return (N + CHUNK_NEURONS - 1) // CHUNK_NEURONS


def _part_bounds(N: int, n_parts: int) -> np.ndarray:
    """Neuron boundaries of the kernel's parts: part t is neurons
    ``bounds[t] .. bounds[t + 1] - 1``, a run of whole chunks."""
    return np.minimum(np.arange(n_parts + 1) * chunk_count(N) // n_parts * CHUNK_NEURONS, N)


@numba.njit(parallel=True, cache=True)
def _part_splits(indptr, indices, bounds):
    """Where each source's sorted targets cross the part boundaries.

    Returns ``split`` (n_sources, bounds.size): the targets of source s in
    [bounds[t], bounds[t + 1]) are ``indices[split[s, t]:split[s, t + 1]]``.
    """
    n_src = indptr.size - 1
    split = np.empty((n_src, bounds.size), dtype=np.int64)
    for s in prange(n_src):
        a = indptr[s]
        row = indices[a : indptr[s + 1]]
        for j in range(bounds.size):
            split[s, j] = a + np.searchsorted(row, bounds[j])
    return split


@numba.njit(inline="always")
def _deliver(t, par, chunk_spk, chunk_n, e0, e1, ext_src, g_split, g_idx, x_split, x_idx, n_E, cnt):
    """Count, at the targets of part ``t``, the arrivals of the spikes listed
    in ``chunk_spk[par]`` and of the external events ``ext_src[e0:e1]``
    (``cnt`` rows: E, I, ext)."""
    for c in range(chunk_n.shape[1]):
        for q in range(chunk_n[par, c, 0]):
            i = chunk_spk[par, c, q]
            row = cnt[0] if i < n_E else cnt[1]
            for k in range(g_split[i, t], g_split[i, t + 1]):
                row[np.uint64(g_idx[k])] += 1
    row = cnt[2]
    for k in range(e0, e1):
        s = ext_src[k]
        for kk in range(x_split[s, t], x_split[s, t + 1]):
            row[np.uint64(x_idx[kk])] += 1


@numba.njit(inline="always")
def _chunk_sum(v, lo, m):
    """Sum of ``v[lo:lo + m]`` in a fixed order: 8 interleaved lanes (lane
    j collects neurons lo + j, lo + j + 8, ...), added pairwise, then the
    ``m % 8`` last neurons in order. Independent lanes let LLVM add them
    as vectors, where one running sum would be a chain of dependent adds.
    """
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    m8 = m - m % 8
    for jj in range(0, m8, 8):
        u = np.uint64(lo + jj)
        a0 += v[u]
        a1 += v[u + np.uint64(1)]
        a2 += v[u + np.uint64(2)]
        a3 += v[u + np.uint64(3)]
        a4 += v[u + np.uint64(4)]
        a5 += v[u + np.uint64(5)]
        a6 += v[u + np.uint64(6)]
        a7 += v[u + np.uint64(7)]
    acc = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
    for jj in range(m8, m):
        acc += v[np.uint64(lo + jj)]
    return acc


@numba.njit(inline="always")
def _step_neuron(u, a_E, a_I, x, v, g_E, g_I, g_X, ref, spiked, cnt_E, cnt_I, cnt_X, k):
    """One neuron's step (MODEL.md §2 steps 2-4, 6), without branches.

    ``a_E``, ``a_I``: its E and I arrivals of the previous step; ``x``: its
    noise; ``k``: the constants of :func:`_consts`, unpacked. Returns 1 if it
    fires, else 0.
    """
    dt_over_tau_m, sig, v_rest, v_E, v_I, v_X, inv_gL, v_th, v_reset = k[:9]
    dec_E, dec_I, dec_X, inc_E, inc_I, inc_X, n_ref_f = k[9:]
    gE = g_E[u] + a_E * inc_E
    gI = g_I[u] + a_I * inc_I
    gX = g_X[u] + np.float64(cnt_X[u]) * inc_X
    vi = v[u]
    r = ref[u]
    drive = -(vi - v_rest) - inv_gL * (gE * (vi - v_E) + gI * (vi - v_I) + gX * (vi - v_X))
    vn = vi + dt_over_tau_m * drive + sig * x
    active = r <= 0
    fire = active & (vn >= v_th)
    v[u] = v_reset if fire else (vn if active else vi)
    ref[u] = np.int32(n_ref_f) if fire else (r - np.int32(1) if r > 0 else r)
    spiked[u] = fire
    g_E[u] = gE * dec_E
    g_I[u] = gI * dec_I
    g_X[u] = gX * dec_X
    cnt_E[u] = 0
    cnt_I[u] = 0
    cnt_X[u] = 0
    return np.int64(fire)


@numba.njit(cache=True)
def _update_chunk(
    lo,
    m,
    v,
    g_E,
    g_I,
    g_X,
    ref,
    spiked,
    cnt_E,
    cnt_I,
    cnt_X,
    xb,
    S_E_prev,
    S_I_prev,
    compl,
    n_E,
    consts,
):
    """One step of neurons lo .. lo + m - 1 (:func:`_step_neuron`); returns how many fire.

    ``xb[j]`` is the noise of neuron lo + j if it is not refractory. The E
    and I arrivals are the counts of the previous step (direct delivery) or,
    with ``compl``, all spikes of the type minus the missing edges minus the
    neuron's own spike. Two loops, so that direct delivery reads neither the
    spike flags nor the totals. A call of its own, not inlined into the
    parallel region: there LLVM cannot bound the arrays and does not
    vectorise the loops; here it does (with runtime alias checks), and the
    result is the scalar one, bit for bit.
    """
    k = (
        consts[0], consts[1], consts[2], consts[3], consts[4], consts[5], consts[6], consts[7],
        consts[8], consts[9], consts[10], consts[11], consts[12], consts[13], consts[14],
        consts[15],
    )  # fmt: skip
    n_fire = 0
    if compl:
        S_E_f = np.float64(S_E_prev)
        S_I_f = np.float64(S_I_prev)
        for jj in range(m):
            u = np.uint64(lo + jj)
            # integer counts held exactly in float64 (< 2**53): the same
            # numbers as integer arithmetic, and cheaper to vectorise
            sp = np.float64(spiked[u])
            self_E = sp if lo + jj < n_E else 0.0
            a_E = S_E_f - self_E - np.float64(cnt_E[u])
            a_I = S_I_f - (sp - self_E) - np.float64(cnt_I[u])
            x = xb[np.uint64(jj)]
            n_fire += _step_neuron(
                u, a_E, a_I, x, v, g_E, g_I, g_X, ref, spiked, cnt_E, cnt_I, cnt_X, k
            )
    else:
        for jj in range(m):
            u = np.uint64(lo + jj)
            a_E = np.float64(cnt_E[u])
            a_I = np.float64(cnt_I[u])
            x = xb[np.uint64(jj)]
            n_fire += _step_neuron(
                u, a_E, a_I, x, v, g_E, g_I, g_X, ref, spiked, cnt_E, cnt_I, cnt_X, k
            )
    return n_fire


@numba.njit(parallel=True, cache=True)
def _run_block(
    n0,
    n_steps,
    v,
    g,
    ref,
    spiked,
    cnt,
    chunk_spk,
    chunk_n,
    prev_ext,
    rng_state,
    zig,
    ext_ptr,
    ext_src,
    g_split,
    g_idx,
    g_compl,
    x_split,
    x_idx,
    out_deg,
    x_deg,
    n_E,
    consts,
    bounds,
    V_out,
    phi_out,
    spk_neuron,
    spk_step,
    sleeps,
):
    """Integrate ``n_steps`` steps starting at global step ``n0``.

    ``g`` (3, N) holds g_E, g_I, g_ext in nS; ``cnt`` (3, N, int32) the
    arrivals counted so far for the next update, per type; ``chunk_spk``
    (2, n_chunks, CHUNK_NEURONS) and ``chunk_n`` (2, n_chunks, 2) the spikes
    of the last two steps, by step parity and chunk (``chunk_n[., c]``: how
    many, how many excitatory); ``prev_ext`` the external trains' events of
    the step before ``n0``, not yet delivered; ``phi_out`` (3, ≥ n_steps)
    receives φ_E, φ_I, φ_ext; ``sleeps`` (≥ n_parts, int64) the times each
    part slept at the barrier. Returns the number of spikes written to
    ``spk_*``.

    One parallel region for the block, one part of :func:`_part_bounds` per
    thread, each a fixed run of whole chunks of :data:`CHUNK_NEURONS`
    neurons; the parts meet at a barrier after every step
    (:func:`nmmval.barrier.arrive_and_wait`). The caller makes the part
    count ``numba.get_num_threads()``: with more parts than threads, a part
    would wait for one queued behind it on its own thread.

    In a step, a part first counts, for its own neurons, the arrivals from
    the previous step's spikes and external events (integer counts: any
    partition of the targets gives the same counts, and no part writes to
    another's neurons); ``g_split`` and ``x_split`` (:func:`_part_splits`)
    give each source's targets in each part, so that no part searches a
    target list. Then chunk c of the part (a) sums v for V
    (:func:`_chunk_sum`) and draws the noise of its non-refractory neurons,
    in neuron order, from stream ``rng_state[c]``; (b) updates every neuron
    without branches (:func:`_update_chunk`, SIMD; refractory cells keep
    v); (c) lists its spikes. After the barrier, the last part (at
    N = 10 000 on 2 threads the smaller one) records the step, V, φ and the
    spikes in neuron order, while the others go on: the spike lists and
    chunk sums are kept by step parity, so the next step's writes do not
    touch what is being recorded.

    The chunk layout, not the parts, fixes every random stream and the
    order of every floating-point sum, so results do not depend on the
    thread count. Indices are unsigned where it matters, so that Numba
    emits no negative-index wraparound, which keeps LLVM from vectorising.
    """
    N = v.size
    n_parts = bounds.size - 1
    compl = np.int64(1 if g_compl else 0)
    kn, wn, fn = zig[0], zig[1], zig[2]
    g_E, g_I, g_X = g[0], g[1], g[2]
    cnt_E, cnt_I, cnt_X = cnt[0], cnt[1], cnt[2]
    n_chunks = chunk_n.shape[1]
    chunk_sum = np.zeros((2, n_chunks))
    xbuf = np.zeros((n_chunks, CHUNK_NEURONS))
    counters = np.zeros(n_parts * SLOT, dtype=np.int32)
    n_recorded = np.zeros(1, dtype=np.int64)
    for t in prange(n_parts):
        c_lo = bounds[t] // CHUNK_NEURONS
        c_hi = (bounds[t + 1] + CHUNK_NEURONS - 1) // CHUNK_NEURONS
        n_spk = 0
        n_sleep = 0
        for b in range(n_steps):
            par = (n0 + b) & 1
            prv = 1 - par
            # the previous step's spikes by type, for complement delivery
            S_E_prev = 0
            S_prev = 0
            for c in range(n_chunks):
                S_prev += chunk_n[prv, c, 0]
                S_E_prev += chunk_n[prv, c, 1]
            S_I_prev = S_prev - S_E_prev
            if b == 0:
                src_ext, e0, e1 = prev_ext, 0, prev_ext.size
            else:
                src_ext, e0, e1 = ext_src, ext_ptr[b - 1], ext_ptr[b]
            _deliver(
                t, prv, chunk_spk, chunk_n, e0, e1, src_ext,
                g_split, g_idx, x_split, x_idx, n_E, cnt,
            )  # fmt: skip
            for c in range(c_lo, c_hi):
                lo = c * CHUNK_NEURONS
                m = min(CHUNK_NEURONS, N - lo)
                xb = xbuf[c]
                # (a) V's chunk sum; the noise, sequential in neuron order
                chunk_sum[par, c] = _chunk_sum(v, lo, m)
                s0, s1, s2, s3 = rng_state[c, 0], rng_state[c, 1], rng_state[c, 2], rng_state[c, 3]
                for jj in range(m):
                    u = np.uint64(lo + jj)
                    if ref[u] <= 0:
                        xb[np.uint64(jj)], s0, s1, s2, s3 = standard_normal(
                            s0, s1, s2, s3, kn, wn, fn
                        )
                rng_state[c, 0], rng_state[c, 1], rng_state[c, 2], rng_state[c, 3] = s0, s1, s2, s3
                # (b) integrate, decay, threshold, reset: branch-free
                n_fire = _update_chunk(
                    lo, m, v, g_E, g_I, g_X, ref, spiked, cnt_E, cnt_I, cnt_X, xb,
                    S_E_prev, S_I_prev, compl, n_E, consts,
                )  # fmt: skip
                # (c) this chunk's spikes, in neuron order
                k = 0
                k_E = 0
                if n_fire > 0:
                    for jj in range(m):
                        if spiked[np.uint64(lo + jj)]:
                            chunk_spk[par, c, k] = lo + jj
                            k += 1
                            k_E += 1 if lo + jj < n_E else 0
                chunk_n[par, c, 0] = k
                chunk_n[par, c, 1] = k_E
            n_sleep += arrive_and_wait(counters, t, n_parts, b + 1)
            if t == n_parts - 1:
                # record the step: V, its spikes in neuron order, φ
                total = 0.0
                for c in range(n_chunks):
                    total += chunk_sum[par, c]
                V_out[b] = total / N
                arr_E = 0
                arr_I = 0
                for c in range(n_chunks):
                    for q in range(chunk_n[par, c, 0]):
                        i = chunk_spk[par, c, q]
                        spk_neuron[n_spk] = i
                        spk_step[n_spk] = n0 + b
                        n_spk += 1
                        if i < n_E:
                            arr_E += out_deg[i]
                        else:
                            arr_I += out_deg[i]
                arr_X = 0
                for k in range(ext_ptr[b], ext_ptr[b + 1]):
                    arr_X += x_deg[ext_src[k]]
                phi_out[0, b] = arr_E / N
                phi_out[1, b] = arr_I / N
                phi_out[2, b] = arr_X / N
        sleeps[t] = n_sleep
        if t == n_parts - 1:
            n_recorded[0] = n_spk
    return n_recorded[0]


def build_graphs(params: Params, p: float, lam: float, seed: int):
    """Internal and external graphs of a cell, and its random streams."""
    net = params.network
    streams = cell_streams(params.seed, p, lam, seed)
    n_E = int(round(lam * net.N))
    internal = erdos_renyi(net.N, p, streams["graph"])
    external = bipartite(net.M, n_E, net.p_ext, streams["external"])
    return internal, external, n_E, streams


def _consts(params: Params) -> np.ndarray:
    net, neu, sim = params.network, params.neuron, params.simulation
    dt = sim.dt_ms
    tau_m = neu.tau_m_ms
    return np.array(
        [
            dt / tau_m,
            np.sqrt(neu.noise_Q_mV2ms * dt) / tau_m,
            neu.v_rest_mV,
            net.v_E_mV,
            net.v_I_mV,
            net.v_ext_mV,
            1.0 / neu.g_L_nS,
            neu.v_th_mV,
            neu.v_reset_mV,
            np.exp(-dt / net.tau_E_ms),
            np.exp(-dt / net.tau_I_ms),
            np.exp(-dt / net.tau_ext_ms),
            net.g_hat_E_nSms / net.tau_E_ms,
            net.g_hat_I_nSms / net.tau_I_ms,
            net.g_hat_ext_nSms / net.tau_ext_ms,
            round(neu.tau_ref_ms / dt),
        ]
    )


def simulate(
    params: Params,
    p: float,
    lam: float,
    seed: int,
    threads: int | None = None,
    delivery: str = "auto",
    progress: bool = False,
    on_block=None,
) -> Recording:
    """Simulate one cell <p, λ, seed> of the network (MODEL.md §2-4).

    Parameters
    ----------
    params : Params
        Validated configuration.
    p : float
        Internal connection probability.
    lam : float
        Fraction of excitatory neurons λ (Eq. 3); round(λ·N) are excitatory.
    seed : int
        Repetition index; with ``params.seed``, p and λ it fixes every stream.
    threads : int, optional
        Most Numba threads to use (default: :func:`nmmval.threads.available_cpus`,
        capped by Numba's ``NUMBA_NUM_THREADS``). Between blocks of steps the
        kernel runs on fewer while the cores are oversubscribed
        (:class:`nmmval.threads.Governor`); results are bitwise independent
        of the thread count. The caller's Numba thread count is restored.
    delivery : {"auto", "direct", "complement"}
        Deliver spikes through the present edges or through the missing ones
        (inputs = all spikes of the type minus the missing edges). "auto"
        uses the side the graph was sampled by (complement for p > 1/2). The
        model, and the result, are the same.
    progress : bool
        Print a progress line to stderr about every 5 %.
    on_block : callable, optional
        Called as ``on_block(step, v_mV, refractory_steps)`` after every block
        of steps with the state at the start of ``step`` (for monitoring and
        tests; the arrays must not be modified).
    """
    t_start = time.perf_counter()
    n_max = min(
        available_cpus() if threads is None else int(threads), numba.config.NUMBA_NUM_THREADS
    )
    if n_max < 1:
        raise ValueError(f"threads: {threads!r} must be >= 1")
    net, neu, sim = params.network, params.neuron, params.simulation
    internal, external, n_E, streams = build_graphs(params, p, lam, seed)
    want_compl = internal.complemented if delivery == "auto" else delivery == "complement"
    if delivery not in ("auto", "direct", "complement"):
        raise ValueError(f"delivery: {delivery!r} is not one of auto, direct, complement")
    graph: Graph = internal if want_compl == internal.complemented else complement(internal)
    N = net.N
    n_steps = sim.n_steps
    n0 = sim.n0_steps
    out_deg = internal.out_degree()
    x_deg = external.out_degree()
    layouts = {}  # thread count -> part bounds and each graph's splits at them

    def layout(n):
        if n not in layouts:
            bounds = _part_bounds(N, n)
            layouts[n] = (
                bounds,
                _part_splits(graph.indptr, graph.indices, bounds),
                _part_splits(external.indptr, external.indices, bounds),
            )
        return layouts[n]

    layout(n_max)
    if numba.threading_layer() == "tbb":  # a TBB task may run two parts on one thread
        raise RuntimeError(
            "nmmval.lif: the Numba threading layer is tbb; set NUMBA_THREADING_LAYER=omp "
            "(or workqueue): the kernel's parts wait for each other, one per thread"
        )

    rng_drive = streams["drive"]
    init_seq, kernel_seq = streams["noise"].spawn(2)
    v = np.random.Generator(np.random.PCG64(init_seq)).uniform(neu.v_reset_mV, neu.v_th_mV, size=N)
    n_chunks = chunk_count(N)
    rng_state = seed_states(kernel_seq, n_chunks)
    g = np.zeros((3, N))
    ref = np.zeros(N, dtype=np.int32)
    spiked = np.zeros(N, dtype=np.bool_)
    cnt = np.zeros((3, N), dtype=np.int32)
    # the spikes of the last two steps by parity and chunk (how many, how
    # many excitatory), and the last step's external events: a block's last
    # step is delivered in the next block
    chunk_spk = np.zeros((2, n_chunks, CHUNK_NEURONS), dtype=np.int32)
    chunk_n = np.zeros((2, n_chunks, 2), dtype=np.int64)
    prev_ext = np.zeros(0, dtype=np.int64)
    consts = _consts(params)

    V = np.empty(n_steps)
    phi = np.empty((3, n_steps))
    # the kernel fills a whole (3, BLOCK_STEPS) block: a slice phi[:, a:b]
    # would be C-contiguous or not by its length and give the kernel two
    # signatures (two compilations, two cache loads per process)
    phi_blk = np.empty((3, BLOCK_STEPS))
    spk_n_buf = np.empty(BLOCK_STEPS * N, dtype=np.int32)
    spk_s_buf = np.empty(BLOCK_STEPS * N, dtype=np.int32)
    spikes_n, spikes_s = [], []
    sleeps = np.zeros(n_max, dtype=np.int64)
    governor = Governor(n_max, log=sys.stderr if progress else None)
    caller_threads = numba.get_num_threads()
    ext_rate = net.M * net.nu_ext_Hz * sim.dt_ms * 1e-3 if n_E > 0 else 0.0
    build_s = time.perf_counter() - t_start
    t_loop = time.perf_counter()
    next_report = 0.05
    try:
        for start in range(0, n_steps, BLOCK_STEPS):
            nb = min(BLOCK_STEPS, n_steps - start)
            counts = rng_drive.poisson(ext_rate, size=nb) if ext_rate > 0 else np.zeros(nb, int)
            ext_ptr = np.zeros(nb + 1, dtype=np.int64)
            np.cumsum(counts, out=ext_ptr[1:])
            ext_src = rng_drive.integers(0, max(net.M, 1), size=int(ext_ptr[-1]), dtype=np.int64)
            # the block's steps in one kernel call, or two when the governor
            # probes more threads on its first steps: a call may start anywhere,
            # the state between steps does not depend on the thread count
            a = 0
            while a < nb:
                n_threads, m = governor.next_segment(nb - a)
                bounds, g_split, x_split = layout(n_threads)
                numba.set_num_threads(n_threads)  # one part per thread (see _run_block)
                t_seg = time.perf_counter()
                k = _run_block(
                    start + a,
                    m,
                    v,
                    g,
                    ref,
                    spiked,
                    cnt,
                    chunk_spk,
                    chunk_n,
                    prev_ext if a == 0 else ext_src[ext_ptr[a - 1] : ext_ptr[a]],
                    rng_state,
                    ZIGGURAT,
                    ext_ptr[a : a + m + 1],
                    ext_src,
                    g_split,
                    graph.indices,
                    graph.complemented,
                    x_split,
                    external.indices,
                    out_deg,
                    x_deg,
                    n_E,
                    consts,
                    bounds,
                    V[start + a : start + a + m],
                    phi_blk,
                    spk_n_buf,
                    spk_s_buf,
                    sleeps,
                )
                governor.done(
                    n_threads, m, time.perf_counter() - t_seg, int(sleeps[:n_threads].sum())
                )
                phi[:, start + a : start + a + m] = phi_blk[:, :m]
                spikes_n.append(spk_n_buf[:k].copy())
                spikes_s.append(spk_s_buf[:k].copy())
                a += m
            prev_ext = ext_src[ext_ptr[nb - 1] :]
            if on_block is not None:
                on_block(start + nb, v, ref)
            if progress and (start + nb) / n_steps >= next_report:
                frac = (start + nb) / n_steps
                print(
                    f"nmmval simulate p={p:g} lam={lam:g} seed={seed}: {100 * frac:5.1f} % "
                    f"({time.perf_counter() - t_loop:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
                next_report = frac + 0.05
    finally:
        numba.set_num_threads(caller_threads)
    loop_s = time.perf_counter() - t_loop
    spike_neuron = np.concatenate(spikes_n)
    spike_step = np.concatenate(spikes_s)
    in_window = spike_step >= n0
    window_s = (n_steps - n0) * sim.dt_ms * 1e-3
    n_I = N - n_E
    n_spk_E = int(np.count_nonzero(spike_neuron[in_window] < n_E))
    n_spk_I = int(np.count_nonzero(in_window)) - n_spk_E
    return Recording(
        V_mV=V,
        phi_E=phi[0],
        phi_I=phi[1],
        phi_ext=phi[2],
        spike_neuron=spike_neuron,
        spike_step=spike_step,
        rate_E_Hz=n_spk_E / (n_E * window_s) if n_E else 0.0,
        rate_I_Hz=n_spk_I / (n_I * window_s) if n_I else 0.0,
        Vbar_mV=float(V[n0:].mean()),
        n_E=n_E,
        n_I=n_I,
        n_edges=internal.n_edges,
        n_ext_edges=external.n_edges,
        build_s=build_s,
        loop_s=loop_s,
        steps_by_threads=dict(governor.steps_by_threads),
    )
