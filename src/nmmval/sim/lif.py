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
as ``count · ĝ/τ``: delivery by the graph or by its complement, scattered
along target lists or counted densely from bitsets (per step, whichever is
cheaper), and any thread count, give the same bits.

This module builds a cell's graphs and runs the Numba kernel
(:mod:`nmmval.sim.kernel`) on them, :data:`BLOCK_STEPS` steps a call, on as many
threads as :class:`nmmval.sim.threads.Governor` allows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numba
import numpy as np

from nmmval.config import Params
from nmmval.progress import Progress
from nmmval.sim.kernel import (
    CHUNK_NEURONS,
    CLOSURE_ROWS,
    COUNT_ROWS,
    DENSE_COST,
    Consts,
    Drive,
    Neurons,
    chunk_count,
    new_chunks,
    new_neurons,
    new_output,
    run_block,
    wire,
)
from nmmval.sim.network import (
    WORD_BITS,
    Graph,
    bipartite,
    cell_streams,
    complement,
    erdos_renyi,
    in_edge_bits,
)
from nmmval.sim.rng import seed_chunk_lanes
from nmmval.sim.threads import Governor, available_cpus

__all__ = [
    "BLOCK_STEPS",
    "CHUNK_NEURONS",
    "DENSE_MAX_BYTES",
    "Recording",
    "build_graphs",
    "chunk_count",
    "initial_state",
    "simulate",
]

#: steps per call of the kernel (external events are drawn per block)
BLOCK_STEPS = 200
#: the most memory the in-edge bits of the dense count may take (bytes):
#: N²/8 bytes, so dense counting stops at N ≈ 46 000
DENSE_MAX_BYTES = 2**28


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
        Thread count -> steps run on it (:class:`nmmval.sim.threads.Governor`).
    arrivals_pop : ndarray, int64, (3, 2, n_steps)
        Type-σ (E, I, ext) spike arrivals on the cells of population P (E,
        I) added in each step; φ_σ^P = count / N_P (:meth:`phi_pop`,
        MODEL.md §4). ``arrivals_pop[:, :, n].sum(1) / N`` is φ_σ[n].
    spikes_pop : ndarray, int64, (2, n_steps)
        Spikes of the E and of the I cells in each step (A_P = n_P/(N_P·dt)).
    V_half_mV : ndarray, float64, (2, n_steps)
        V over the cells of even index (half a) and of odd index (half b),
        every second cell of each population (MODEL.md §4).
    closures : dict of str to ndarray, or None
        With ``simulation.record_closures``, per population and step over
        the cells of P at the start of the step: ``v_pop`` ⟨v⟩ (2, n_steps,
        mV), ``var_v_pop`` var(v) (mV²), ``g_pop`` ⟨g_σ⟩ (3, 2, n_steps,
        nS) and ``cov_gv_pop`` ⟨g_σ v⟩ − ⟨g_σ⟩⟨v⟩ (nS·mV), g_σ as the step
        integrates with it; NaN for an empty population. None otherwise.
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
    arrivals_pop: np.ndarray
    spikes_pop: np.ndarray
    V_half_mV: np.ndarray
    closures: dict | None

    def phi_pop(self) -> np.ndarray:
        """φ_σ^P, (3, 2, n_steps): :attr:`arrivals_pop` per cell of P (NaN for an empty P)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.arrivals_pop / np.array([self.n_E, self.n_I], dtype=np.float64)[:, None]


def build_graphs(params: Params, p: float, lam: float, seed: int):
    """Internal and external graphs of a cell, and its random streams."""
    net = params.network
    streams = cell_streams(params.seed, p, lam, seed)
    n_E = int(round(lam * net.N))
    internal = erdos_renyi(net.N, p, streams["graph"])
    external = bipartite(net.M, n_E, net.p_ext, streams["external"])
    return internal, external, n_E, streams


def initial_state(params: Params, seq: np.random.SeedSequence) -> Neurons:
    """The neurons before the first step (:func:`nmmval.sim.kernel.new_neurons`).

    Membrane potentials (mV) uniform on [v_reset, v_th) (MODEL.md §2) or,
    with ``simulation.v_init_mean_mV``, normal with ``v_init_sd_mV``; then
    g_E and g_I (nS) normal with ``simulation.g_init_{E,I}_{mean,sd}_nS``
    (0 by default; negative draws kept), g_ext 0; nobody refractory. All
    from one PCG64 stream of ``seq``, v first: v does not depend on the
    conductance keys.
    """
    sim, neu, N = params.simulation, params.neuron, params.network.N
    rng = np.random.Generator(np.random.PCG64(seq))
    if sim.v_init_mean_mV is None:
        v = rng.uniform(neu.v_reset_mV, neu.v_th_mV, size=N)
    else:
        v = sim.v_init_mean_mV + sim.v_init_sd_mV * rng.standard_normal(N)
    neurons = new_neurons(v)
    neurons.g_nS[0] = sim.g_init_E_mean_nS + sim.g_init_E_sd_nS * rng.standard_normal(N)
    neurons.g_nS[1] = sim.g_init_I_mean_nS + sim.g_init_I_sd_nS * rng.standard_normal(N)
    return neurons


def _consts(params: Params) -> Consts:
    """The kernel's :class:`nmmval.sim.kernel.Consts` of ``params`` (MODEL.md §2)."""
    net, neu, sim = params.network, params.neuron, params.simulation
    dt = sim.dt_ms
    tau_m = neu.tau_m_ms
    return Consts(
        dt_over_tau_m=float(dt / tau_m),
        noise_sigma_mV=float(np.sqrt(neu.noise_Q_mV2ms * dt) / tau_m),
        v_rest_mV=float(neu.v_rest_mV),
        v_E_mV=float(net.v_E_mV),
        v_I_mV=float(net.v_I_mV),
        v_ext_mV=float(net.v_ext_mV),
        inv_g_L_per_nS=float(1.0 / neu.g_L_nS),
        v_th_mV=float(neu.v_th_mV),
        v_reset_mV=float(neu.v_reset_mV),
        decay_E=float(np.exp(-dt / net.tau_E_ms)),
        decay_I=float(np.exp(-dt / net.tau_I_ms)),
        decay_ext=float(np.exp(-dt / net.tau_ext_ms)),
        dg_E_nS=float(net.g_hat_E_nSms / net.tau_E_ms),
        dg_I_nS=float(net.g_hat_I_nSms / net.tau_I_ms),
        dg_ext_nS=float(net.g_hat_ext_nSms / net.tau_ext_ms),
        n_ref_steps=int(round(neu.tau_ref_ms / dt)),
    )


def simulate(
    params: Params,
    p: float,
    lam: float,
    seed: int,
    threads: int | None = None,
    delivery: str = "auto",
    dense: str = "auto",
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
        Most Numba threads to use (default: :func:`nmmval.sim.threads.available_cpus`,
        capped by Numba's ``NUMBA_NUM_THREADS``). Between blocks of steps the
        kernel runs on fewer while the cores are oversubscribed
        (:class:`nmmval.sim.threads.Governor`); results are bitwise independent
        of the thread count. The caller's Numba thread count is restored.
    delivery : {"auto", "direct", "complement"}
        Deliver spikes through the present edges or through the missing ones
        (inputs = all spikes of the type minus the missing edges). "auto"
        uses the side the graph was sampled by (complement for p > 1/2). The
        model, and the result, are the same.
    dense : {"auto", "never", "always"}
        Count the arrivals of a step densely, as popcounts of the spiking
        sources' bitset against each target's in-edges, when that is cheaper
        than scattering them (:func:`nmmval.sim.kernel._deliver`); "auto"
        keeps the bits (:func:`nmmval.sim.network.in_edge_bits`) when a
        step can ever be cheaper so and they take at most
        :data:`DENSE_MAX_BYTES`. "never" and "always" force one way (for
        tests and benchmarks). The counts, and the result, are the same.
    progress : bool
        Show the progress on stderr (:class:`nmmval.progress.Progress`: a bar
        with rate and time left on a terminal, a line every 10 % otherwise),
        and the thread governor's changes (:class:`nmmval.sim.threads.Governor`).
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
    net, sim = params.network, params.simulation
    internal, external, n_E, streams = build_graphs(params, p, lam, seed)
    want_compl = internal.complemented if delivery == "auto" else delivery == "complement"
    if delivery not in ("auto", "direct", "complement"):
        raise ValueError(f"delivery: {delivery!r} is not one of auto, direct, complement")
    graph: Graph = internal if want_compl == internal.complemented else complement(internal)
    in_bits, dense_cost = _dense_layout(graph, dense)
    N = net.N
    n_steps = sim.n_steps
    n0 = sim.n0_steps
    layouts = {}  # thread count -> the graphs cut into that many parts

    def layout(n):
        if n not in layouts:
            layouts[n] = wire(graph, external, n_E, n, in_bits, dense_cost)
        return layouts[n]

    layout(n_max)
    if numba.threading_layer() == "tbb":  # a TBB task may run two parts on one thread
        raise RuntimeError(
            "nmmval.sim.lif: the Numba threading layer is tbb; set NUMBA_THREADING_LAYER=omp "
            "(or workqueue): the kernel's parts wait for each other, one per thread"
        )

    rng_drive = streams["drive"]
    init_seq, kernel_seq = streams["noise"].spawn(2)
    neurons = initial_state(params, init_seq)
    chunks = new_chunks(seed_chunk_lanes(kernel_seq, chunk_count(N)))
    # the last step's external events: a block's last step is delivered in
    # the next block
    prev_ext = np.zeros(0, dtype=np.int64)
    consts = _consts(params)

    V = np.empty(n_steps)
    phi = np.empty((3, n_steps))
    # the kernel fills a whole (3, BLOCK_STEPS) φ block: a slice phi[:, a:b]
    # would be C-contiguous or not by its length and give the kernel two
    # signatures (two compilations, two cache loads per process); V it
    # writes in place
    pop_counts = np.empty((len(COUNT_ROWS), n_steps), dtype=np.int64)
    V_half = np.empty((2, n_steps))
    closures = np.empty((2 * len(CLOSURE_ROWS), n_steps if sim.record_closures else 0))
    buf = new_output(BLOCK_STEPS, N, n_max, closures=sim.record_closures)
    spikes_n, spikes_s = [], []
    label = f"nmmval simulate p={p:g} lam={lam:g} seed={seed}"  # of every line printed
    caller_threads = numba.get_num_threads()
    ext_rate = net.M * net.nu_ext_Hz * sim.dt_ms * 1e-3 if n_E > 0 else 0.0
    build_s = time.perf_counter() - t_start
    t_loop = time.perf_counter()
    bar = Progress(n_steps, label) if progress else None
    governor = Governor(n_max, log=None if bar is None else bar.log, prefix=label)
    try:
        for start in range(0, n_steps, BLOCK_STEPS):
            nb = min(BLOCK_STEPS, n_steps - start)
            counts = rng_drive.poisson(ext_rate, size=nb) if ext_rate > 0 else np.zeros(nb, int)
            ext_ptr = np.zeros(nb + 1, dtype=np.int64)
            np.cumsum(counts, out=ext_ptr[1:])
            ext_src = rng_drive.integers(0, max(net.M, 1), size=int(ext_ptr[-1]), dtype=np.int64)
            # the block's steps in the kernel calls the governor asks for (one,
            # or short ones while it probes or confirms more threads): a call
            # may start anywhere, the state between steps does not depend on
            # the thread count
            a = 0
            while a < nb:
                n_threads, m = governor.next_segment(nb - a)
                wiring = layout(n_threads)
                drive = Drive(
                    ext_prev=prev_ext if a == 0 else ext_src[ext_ptr[a - 1] : ext_ptr[a]],
                    ext_ptr=ext_ptr[a : a + m + 1],
                    ext_src=ext_src,
                )
                out = buf._replace(V_mV=V[start + a : start + a + m])
                numba.set_num_threads(n_threads)  # one part per thread (see run_block)
                t_seg = time.perf_counter()
                k = run_block(start + a, m, neurons, chunks, drive, wiring, consts, out)
                governor.done(
                    n_threads, m, time.perf_counter() - t_seg, int(buf.sleeps[:n_threads].sum())
                )
                phi[:, start + a : start + a + m] = buf.phi[:, :m]
                pop_counts[:, start + a : start + a + m] = buf.counts[:, :m]
                V_half[:, start + a : start + a + m] = buf.V_half_mV[:, :m]
                closures[:, start + a : start + a + m] = buf.closures[:, :m]
                spikes_n.append(buf.spike_neuron[:k].copy())
                spikes_s.append(buf.spike_step[:k].copy())
                a += m
            prev_ext = ext_src[ext_ptr[nb - 1] :]
            if on_block is not None:
                on_block(start + nb, neurons.v_mV, neurons.ref_steps)
            if bar is not None:
                bar.update(start + nb)
    finally:
        numba.set_num_threads(caller_threads)
        if bar is not None:
            bar.close()
    loop_s = time.perf_counter() - t_loop
    spike_neuron = np.concatenate(spikes_n)
    spike_step = np.concatenate(spikes_s)
    in_window = spike_step >= n0
    window_s = (n_steps - n0) * sim.dt_ms * 1e-3
    n_I = N - n_E
    # COUNT_ROWS' arrivals E→E, E→I, I→E, I→I, ext→E are (σ, P) in C order; ext→I is 0
    arrivals_pop = np.zeros((3, 2, n_steps), dtype=np.int64)
    arrivals_pop.reshape(6, n_steps)[:5] = pop_counts[:5]
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
        arrivals_pop=arrivals_pop,
        spikes_pop=pop_counts[5:7],
        V_half_mV=V_half,
        closures=_closure_means(closures, n_E, n_I) if sim.record_closures else None,
    )


def _dense_layout(graph: Graph, dense: str) -> tuple[np.ndarray | None, float]:
    """The in-edge bits and the dense count's cost for :func:`simulate`'s
    ``dense`` choice: no bits where a full word of 8 spiking sources would
    still be cheaper to scatter (stored out-degree below N·DENSE_COST/8), or
    where they would take more than :data:`DENSE_MAX_BYTES`."""
    if dense not in ("auto", "never", "always"):
        raise ValueError(f"dense: {dense!r} is not one of auto, never, always")
    n_words = (graph.n_sources + WORD_BITS - 1) // WORD_BITS
    if dense == "always":
        return in_edge_bits(graph), 0.0
    mean_degree = graph.indices.size / max(graph.n_sources, 1)
    pays = WORD_BITS * mean_degree > DENSE_COST * graph.n_targets
    if dense == "never" or not pays or n_words * graph.n_targets > DENSE_MAX_BYTES:
        return None, DENSE_COST
    return in_edge_bits(graph), DENSE_COST


def _closure_means(sums: np.ndarray, n_E: int, n_I: int) -> dict:
    """The closure diagnostics of :class:`Recording` from the kernel's sums
    (:data:`nmmval.sim.kernel.CLOSURE_ROWS` per population, E then I)."""
    q = len(CLOSURE_ROWS)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.stack([sums[:q] / n_E, sums[q:] / n_I])  # (P, row, step)
    v = mean[:, 0]
    g = mean[:, 2:5]  # (P, σ, step)
    return {
        "v_pop": v,
        "var_v_pop": mean[:, 1] - v * v,
        "g_pop": g.transpose(1, 0, 2),
        "cov_gv_pop": (mean[:, 5:8] - g * v[:, None]).transpose(1, 0, 2),
    }
