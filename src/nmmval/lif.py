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

from nmmval.config import Params
from nmmval.network import Graph, bipartite, cell_streams, complement, erdos_renyi
from nmmval.rng import ZIGGURAT, seed_states, standard_normal

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


@numba.njit(inline="always")
def _scatter(idx, lo, hi, cnt):
    """Add one arrival to every target of ``idx`` (sorted) that lies in [lo, hi)."""
    a = np.searchsorted(idx, lo)
    b = np.searchsorted(idx, hi)
    for k in range(a, b):
        cnt[idx[k]] += 1


@numba.njit(parallel=True, cache=True)
def _run_block(
    n0,
    n_steps,
    v,
    g_E,
    g_I,
    g_X,
    ref,
    spiked,
    cnt_E,
    cnt_I,
    cnt_X,
    pending,
    rng_state,
    zig,
    ext_ptr,
    ext_src,
    g_ptr,
    g_idx,
    g_compl,
    x_ptr,
    x_idx,
    out_deg,
    x_deg,
    n_E,
    consts,
    n_parts,
    V_out,
    phiE_out,
    phiI_out,
    phiX_out,
    spk_neuron,
    spk_step,
):
    """Integrate ``n_steps`` steps starting at global step ``n0``.

    Neurons are updated in fixed chunks of :data:`CHUNK_NEURONS`, chunk c
    drawing its noise from stream ``rng_state[c]``. Spikes are delivered as
    integer counts, in parallel over ranges of targets. ``pending`` holds
    [S_E, S_I] of the previous step (for complement delivery). Returns the
    number of spikes written to ``spk_*``.
    """
    N = v.size
    dt_over_tau_m = consts[0]
    sig = consts[1]
    v_rest = consts[2]
    v_E = consts[3]
    v_I = consts[4]
    v_X = consts[5]
    inv_gL = consts[6]
    v_th = consts[7]
    v_reset = consts[8]
    dec_E = consts[9]
    dec_I = consts[10]
    dec_X = consts[11]
    inc_E = consts[12]
    inc_I = consts[13]
    inc_X = consts[14]
    n_ref = np.int32(consts[15])
    kn, wn, fn = zig[0], zig[1], zig[2]
    n_chunks = (N + CHUNK_NEURONS - 1) // CHUNK_NEURONS
    chunk_sum = np.zeros(n_chunks)
    chunk_nspk = np.zeros(n_chunks, dtype=np.int64)
    chunk_spk = np.empty((n_chunks, CHUNK_NEURONS), dtype=np.int32)
    n_spk = 0
    for b in range(n_steps):
        S_E_prev = pending[0]
        S_I_prev = pending[1]
        # (1)-(4) per neuron; arrivals of the previous step are added first
        # (they are felt from this step on).
        for c in prange(n_chunks):
            lo = c * CHUNK_NEURONS
            hi = min(lo + CHUNK_NEURONS, N)
            s0, s1, s2, s3 = rng_state[c, 0], rng_state[c, 1], rng_state[c, 2], rng_state[c, 3]
            acc = 0.0
            k = 0
            for i in range(lo, hi):
                if g_compl:
                    self_e = 1 if (spiked[i] and i < n_E) else 0
                    self_i = 1 if (spiked[i] and i >= n_E) else 0
                    a_E = S_E_prev - self_e - cnt_E[i]
                    a_I = S_I_prev - self_i - cnt_I[i]
                else:
                    a_E = cnt_E[i]
                    a_I = cnt_I[i]
                gE = g_E[i] + a_E * inc_E
                gI = g_I[i] + a_I * inc_I
                gX = g_X[i] + cnt_X[i] * inc_X
                cnt_E[i] = 0
                cnt_I[i] = 0
                cnt_X[i] = 0
                vi = v[i]
                acc += vi
                fired = False
                if ref[i] > 0:
                    ref[i] -= 1
                else:
                    xi, s0, s1, s2, s3 = standard_normal(s0, s1, s2, s3, kn, wn, fn)
                    drive = -(vi - v_rest) - inv_gL * (
                        gE * (vi - v_E) + gI * (vi - v_I) + gX * (vi - v_X)
                    )
                    vi = vi + dt_over_tau_m * drive + sig * xi
                    if vi >= v_th:
                        fired = True
                        vi = v_reset
                        ref[i] = n_ref
                        chunk_spk[c, k] = i
                        k += 1
                v[i] = vi
                spiked[i] = fired
                g_E[i] = gE * dec_E
                g_I[i] = gI * dec_I
                g_X[i] = gX * dec_X
            chunk_sum[c] = acc
            chunk_nspk[c] = k
            rng_state[c, 0], rng_state[c, 1], rng_state[c, 2], rng_state[c, 3] = s0, s1, s2, s3
        total = 0.0
        for c in range(n_chunks):
            total += chunk_sum[c]
        V_out[b] = total / N
        # (5) this step's spikes, in neuron order, delivered for step n + 1
        step = n0 + b
        first = n_spk
        S_E = 0
        S_I = 0
        arr_E = 0
        arr_I = 0
        work = 0
        for c in range(n_chunks):
            for k in range(chunk_nspk[c]):
                i = chunk_spk[c, k]
                spk_neuron[n_spk] = i
                spk_step[n_spk] = step
                n_spk += 1
                work += g_ptr[i + 1] - g_ptr[i]
                if i < n_E:
                    S_E += 1
                    arr_E += out_deg[i]
                else:
                    S_I += 1
                    arr_I += out_deg[i]
        arr_X = 0
        for k in range(ext_ptr[b], ext_ptr[b + 1]):
            s = ext_src[k]
            arr_X += x_deg[s]
            work += x_ptr[s + 1] - x_ptr[s]
        # integer counts: any partition of the targets gives the same result
        parts = n_parts if work > 4096 else 1
        for t in prange(parts):
            lo = (t * N) // parts
            hi = ((t + 1) * N) // parts
            for q in range(first, n_spk):
                i = spk_neuron[q]
                idx = g_idx[g_ptr[i] : g_ptr[i + 1]]
                if i < n_E:
                    _scatter(idx, lo, hi, cnt_E)
                else:
                    _scatter(idx, lo, hi, cnt_I)
            for k in range(ext_ptr[b], ext_ptr[b + 1]):
                s = ext_src[k]
                _scatter(x_idx[x_ptr[s] : x_ptr[s + 1]], lo, hi, cnt_X)
        pending[0] = S_E
        pending[1] = S_I
        phiE_out[b] = arr_E / N
        phiI_out[b] = arr_I / N
        phiX_out[b] = arr_X / N
    return n_spk


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
        Numba threads; results are bitwise independent of it.
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
    if threads is not None:
        numba.set_num_threads(int(threads))
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

    rng_drive = streams["drive"]
    init_seq, kernel_seq = streams["noise"].spawn(2)
    v = np.random.Generator(np.random.PCG64(init_seq)).uniform(neu.v_reset_mV, neu.v_th_mV, size=N)
    rng_state = seed_states(kernel_seq, (N + CHUNK_NEURONS - 1) // CHUNK_NEURONS)
    g_E = np.zeros(N)
    g_I = np.zeros(N)
    g_X = np.zeros(N)
    ref = np.zeros(N, dtype=np.int32)
    spiked = np.zeros(N, dtype=np.bool_)
    cnt_E = np.zeros(N, dtype=np.int64)
    cnt_I = np.zeros(N, dtype=np.int64)
    cnt_X = np.zeros(N, dtype=np.int64)
    pending = np.zeros(2, dtype=np.int64)
    consts = _consts(params)

    V = np.empty(n_steps)
    phi_E = np.empty(n_steps)
    phi_I = np.empty(n_steps)
    phi_X = np.empty(n_steps)
    spk_n_buf = np.empty(BLOCK_STEPS * N, dtype=np.int32)
    spk_s_buf = np.empty(BLOCK_STEPS * N, dtype=np.int32)
    spikes_n, spikes_s = [], []
    ext_rate = net.M * net.nu_ext_Hz * sim.dt_ms * 1e-3 if n_E > 0 else 0.0
    build_s = time.perf_counter() - t_start
    t_loop = time.perf_counter()
    next_report = 0.05
    for start in range(0, n_steps, BLOCK_STEPS):
        nb = min(BLOCK_STEPS, n_steps - start)
        counts = rng_drive.poisson(ext_rate, size=nb) if ext_rate > 0 else np.zeros(nb, int)
        ext_ptr = np.zeros(nb + 1, dtype=np.int64)
        np.cumsum(counts, out=ext_ptr[1:])
        ext_src = rng_drive.integers(0, max(net.M, 1), size=int(ext_ptr[-1]), dtype=np.int64)
        k = _run_block(
            start,
            nb,
            v,
            g_E,
            g_I,
            g_X,
            ref,
            spiked,
            cnt_E,
            cnt_I,
            cnt_X,
            pending,
            rng_state,
            ZIGGURAT,
            ext_ptr,
            ext_src,
            graph.indptr,
            graph.indices,
            graph.complemented,
            external.indptr,
            external.indices,
            out_deg,
            x_deg,
            n_E,
            consts,
            numba.get_num_threads(),
            V[start : start + nb],
            phi_E[start : start + nb],
            phi_I[start : start + nb],
            phi_X[start : start + nb],
            spk_n_buf,
            spk_s_buf,
        )
        spikes_n.append(spk_n_buf[:k].copy())
        spikes_s.append(spk_s_buf[:k].copy())
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
        phi_E=phi_E,
        phi_I=phi_I,
        phi_ext=phi_X,
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
    )
