"""The Numba kernel of :func:`nmmval.sim.lif.simulate`: blocks of steps of the network.

:func:`run_block` integrates the model of MODEL.md §2-4 (paper Eqs. 5-12),
in the order within a step that :mod:`nmmval.sim.lif` gives, for a block of
steps. Units: v in mV, g in nS, time in steps of dt. Its arguments, besides
the first step and the step count, are six named bundles
(:class:`typing.NamedTuple`, which Numba compiles, and caches, as tuples):

- :class:`Neurons` and :class:`Chunks`, the state that carries over from one
  step to the next: each neuron's, and each chunk's (random stream, spikes);
- :class:`Drive`, the external trains' events of the call and the noise's tables;
- :class:`Wiring`, the graphs, cut at the parts' neuron boundaries;
- :class:`Consts`, the neuron's and the synapses' constants per step;
- :class:`Output`, what the call records.

A step's spikes reach their targets by one of two routes, chosen per step
and part by a measured cost model (:func:`_deliver`, :data:`DENSE_COST`):
scattered along each spike's target list, one increment per arrival, or,
in synchronous volleys, counted densely, as the popcount of the spiking
sources' bitset AND each target's in-edge bits (:func:`dense_arrivals`),
N²/8 byte operations at most whatever the number of spikes. Both give the
same integer counts.

The neurons are cut into chunks of :data:`CHUNK_NEURONS`, each with a random
stream of its own; the chunks, not the threads, fix every random number and
the order of every floating-point sum, so results do not depend on the
thread count.

Numba (0.68) shapes how the kernels read the bundles, in three ways. In
the parallel loop of :func:`run_block`, writes to an array reached through
a tuple's field are lost (numba/numba issues 5872, 7135, 10338), so
:func:`run_block` takes its arrays out of the bundles before that loop and
hands bundles whole only to calls that are not inlined. A field read in a
loop's own body costs a reference-count update per pass, which keeps LLVM
from vectorising the loop; in an inlined helper (:func:`_direct_arrivals`,
:func:`_complement_arrivals`, :func:`_step_neuron`) it costs nothing. And a
call that is not inlined updates the reference count of every array of
every bundle passed to it (about 15 ns each), so :func:`update_chunk`,
called per chunk and step, is passed :class:`Neurons` (5 arrays) alone.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from numba import prange, types
from numba.extending import intrinsic

from nmmval.sim.barrier import SLOT, arrive_and_wait
from nmmval.sim.network import WORD_BITS, Graph
from nmmval.sim.rng import fill_standard_normal

#: neurons per work chunk: the chunk layout, not the thread count, fixes the
#: order of every floating-point sum, so results do not depend on threads.
CHUNK_NEURONS = 256
#: the cost of one (word, target) pair of the dense count relative to one
#: arrival of the scatter (:attr:`Wiring.dense_cost`), measured by
#: ``benchmarks/delivery.py`` (N = 10 000, one thread)
DENSE_COST = 0.1


class Consts(NamedTuple):
    """The constants of Eqs. 11a-b in the form one Euler-Maruyama step uses.

    All float64 but ``n_ref_steps`` (int64): the kernel has one signature.

    Attributes
    ----------
    dt_over_tau_m : float
        dt/τ_m (dimensionless).
    noise_sigma_mV : float
        sqrt(Q·dt)/τ_m: the standard deviation of a step's noise on v (mV).
    v_rest_mV, v_E_mV, v_I_mV, v_ext_mV : float
        Resting potential ṽ and reversal potentials ṽ_σ (mV).
    inv_g_L_per_nS : float
        1/g_L (nS⁻¹).
    v_th_mV, v_reset_mV : float
        Threshold and reset potential (mV).
    decay_E, decay_I, decay_ext : float
        exp(-dt/τ_σ): a step's factor on g_σ (dimensionless).
    dg_E_nS, dg_I_nS, dg_ext_nS : float
        ĝ_σ/τ_σ: the rise of g_σ per arriving type-σ spike (nS).
    n_ref_steps : int
        round(τ_ref/dt): the steps a cell is held at v_reset after a spike.
    """

    dt_over_tau_m: float
    noise_sigma_mV: float
    v_rest_mV: float
    v_E_mV: float
    v_I_mV: float
    v_ext_mV: float
    inv_g_L_per_nS: float
    v_th_mV: float
    v_reset_mV: float
    decay_E: float
    decay_I: float
    decay_ext: float
    dg_E_nS: float
    dg_I_nS: float
    dg_ext_nS: float
    n_ref_steps: int


class Wiring(NamedTuple):
    """Who projects to whom, cut into the kernel's parts (:func:`wire`).

    Attributes
    ----------
    bounds : ndarray, int64, (n_parts + 1,)
        Part t is neurons ``bounds[t] .. bounds[t + 1] - 1`` (:func:`part_bounds`).
    n_E : int
        Neurons ``0 .. n_E - 1`` are excitatory, the others inhibitory.
    targets : ndarray, int32
        The internal graph's target lists (:class:`nmmval.sim.network.Graph`
        ``indices``): its edges, or with ``complement`` its missing edges.
    split : ndarray, int64, (N, n_parts + 1)
        Source s's targets in part t are ``targets[split[s, t]:split[s, t + 1]]``
        (:func:`part_splits`).
    complement : bool
        ``targets`` lists the missing edges: deliver by the complement.
    ext_targets : ndarray, int32
        The external graph's target lists (its edges).
    ext_split : ndarray, int64, (M, n_parts + 1)
        As ``split``, for the external trains.
    out_deg, ext_out_deg : ndarray, int64, (N,), (M,)
        Each neuron's and each train's out-degree (edges present), for φ.
    out_deg_E : ndarray, int64, (N,)
        Each neuron's edges present onto excitatory cells, for φ_σ^E (the
        external trains project onto excitatory cells only).
    in_bits : ndarray, uint8, (ceil(N / 8), N) or (0, N)
        ``targets`` as bits, word-major (:func:`nmmval.sim.network.in_edge_bits`),
        for :func:`dense_arrivals`; no rows: scatter only.
    dense_cost : float
        The cost of one (word, target) pair of :func:`dense_arrivals` in
        arrivals of the scatter (:func:`_deliver`): a step is counted densely
        when ``dense_cost`` · words · targets is below its arrivals.
    """

    bounds: np.ndarray
    n_E: int
    targets: np.ndarray
    split: np.ndarray
    complement: bool
    ext_targets: np.ndarray
    ext_split: np.ndarray
    out_deg: np.ndarray
    ext_out_deg: np.ndarray
    out_deg_E: np.ndarray
    in_bits: np.ndarray
    dense_cost: float


class Neurons(NamedTuple):
    """Each neuron's state at the start of a step (:func:`new_neurons`).

    Attributes
    ----------
    v_mV : ndarray, float64, (N,)
        Membrane potentials (mV).
    g_nS : ndarray, float64, (3, N)
        Conductances g_E, g_I, g_ext (nS).
    ref_steps : ndarray, int32, (N,)
        Steps each cell is still held at v_reset (0: not refractory).
    spiked : ndarray, bool, (N,)
        Which cells fired in the last step.
    arrivals : ndarray, int32, (3, N)
        E, I and external arrivals counted so far for the next update.
    """

    v_mV: np.ndarray
    g_nS: np.ndarray
    ref_steps: np.ndarray
    spiked: np.ndarray
    arrivals: np.ndarray


class Chunks(NamedTuple):
    """Each chunk's state at the start of a step (:func:`new_chunks`).

    Attributes
    ----------
    spikes : ndarray, int32, (2, n_chunks, CHUNK_NEURONS)
        The spikes of the last two steps, by step parity and chunk, in neuron order.
    n_spikes : ndarray, int64, (2, n_chunks, 2)
        How many of them, and how many excitatory (``n_spikes[parity, c]``).
    rng_state : ndarray, uint64, (n_chunks, 4, LANES)
        Each chunk's :data:`nmmval.sim.rng.LANES` xoshiro256** streams
        (:func:`nmmval.sim.rng.seed_chunk_lanes`).
    """

    spikes: np.ndarray
    n_spikes: np.ndarray
    rng_state: np.ndarray


class Drive(NamedTuple):
    """The drive of one kernel call besides the network: external events and noise.

    Attributes
    ----------
    ext_prev : ndarray, int64
        The trains of the external events of the step before the call's first,
        not yet delivered.
    ext_ptr : ndarray, int64, (n_steps + 1,)
        The call's step b has the events ``ext_src[ext_ptr[b]:ext_ptr[b + 1]]``.
    ext_src : ndarray, int64
        The train of each external event.
    """

    ext_prev: np.ndarray
    ext_ptr: np.ndarray
    ext_src: np.ndarray


class Output(NamedTuple):
    """What one kernel call of ``n_steps`` steps records (:func:`new_output`).

    Attributes
    ----------
    V_mV : ndarray, float64, (≥ n_steps,)
        The mean of v at the start of each step (mV).
    phi : ndarray, float64, (3, ≥ n_steps)
        φ_E, φ_I, φ_ext of each step (arrivals per neuron).
    spike_neuron, spike_step : ndarray, int32, (≥ spikes of the call,)
        Every spike's neuron and global step, by step and neuron.
    sleeps : ndarray, int64, (≥ n_parts,)
        How often each part slept at the step barrier.
    counts : ndarray, int64, (7, ≥ n_steps)
        Per step (MODEL.md §4): the arrivals E→E, E→I, I→E, I→I and ext→E
        (source type → target population, summed over the targets), then the
        spikes of E and of I cells (:data:`COUNT_ROWS`).
    V_half_mV : ndarray, float64, (2, ≥ n_steps)
        The mean of v over the cells of even and of odd index (the split
        halves a, b) at the start of each step (mV).
    closures : ndarray, float64, (16, ≥ n_steps) or (16, 0)
        Per step and population P ∈ {E, I} (rows 8P .. 8P + 7), sums over
        the cells of P at the start of the step of v, v², g_E, g_I, g_ext,
        g_E·v, g_I·v, g_ext·v (:data:`CLOSURE_ROWS`; mV, mV², nS, nS·mV),
        with g_σ the conductance the step integrates with (arrivals of the
        previous step included). Not recorded with 0 columns.
    """

    V_mV: np.ndarray
    phi: np.ndarray
    spike_neuron: np.ndarray
    spike_step: np.ndarray
    sleeps: np.ndarray
    counts: np.ndarray
    V_half_mV: np.ndarray
    closures: np.ndarray


#: the rows of :attr:`Output.counts`
COUNT_ROWS = (
    "arr_E_to_E",
    "arr_E_to_I",
    "arr_I_to_E",
    "arr_I_to_I",
    "arr_ext_to_E",
    "spk_E",
    "spk_I",
)
#: the rows of :attr:`Output.closures` per population (8 each, E first)
CLOSURE_ROWS = ("v", "v2", "g_E", "g_I", "g_ext", "g_E_v", "g_I_v", "g_ext_v")


def chunk_count(N: int) -> int:
    """How many chunks of :data:`CHUNK_NEURONS` neurons (the last may be
    short) cover N neurons: one random stream each."""
    return (N + CHUNK_NEURONS - 1) // CHUNK_NEURONS


def part_bounds(N: int, n_parts: int) -> np.ndarray:
    """Neuron boundaries of the kernel's parts: part t is neurons
    ``bounds[t] .. bounds[t + 1] - 1``, a run of whole chunks."""
    return np.minimum(np.arange(n_parts + 1) * chunk_count(N) // n_parts * CHUNK_NEURONS, N)


@numba.njit(parallel=True, cache=True)
def part_splits(indptr, indices, bounds):
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


def wire(
    graph: Graph,
    external: Graph,
    n_E: int,
    n_parts: int,
    in_bits: np.ndarray | None = None,
    dense_cost: float = DENSE_COST,
) -> Wiring:
    """The :class:`Wiring` of the internal ``graph`` (either side, see
    :func:`nmmval.sim.network.complement`) and the ``external`` one, cut into
    ``n_parts`` parts; with ``in_bits`` (``graph``'s
    :func:`nmmval.sim.network.in_edge_bits`), steps whose dense count costs
    less than their scatter (``dense_cost``, :class:`Wiring`) are counted densely."""
    bounds = part_bounds(graph.n_sources, n_parts)
    if in_bits is None:
        in_bits = np.zeros((0, graph.n_targets), dtype=np.uint8)
    return Wiring(
        bounds=bounds,
        n_E=n_E,
        targets=graph.indices,
        split=part_splits(graph.indptr, graph.indices, bounds),
        complement=graph.complemented,
        ext_targets=external.indices,
        ext_split=part_splits(external.indptr, external.indices, bounds),
        out_deg=graph.out_degree(),
        ext_out_deg=external.out_degree(),
        out_deg_E=out_degree_onto(graph, n_E),
        in_bits=in_bits,
        dense_cost=float(dense_cost),
    )


def out_degree_onto(graph: Graph, n_E: int) -> np.ndarray:
    """Every source's edges present onto the targets ``0 .. n_E - 1`` (int64)."""
    cut = part_splits(graph.indptr, graph.indices, np.array([0, n_E], dtype=np.int64))
    stored = cut[:, 1] - cut[:, 0]
    if not graph.complemented:
        return stored
    self_in = (np.arange(graph.n_sources) < n_E) & (not graph.self_loops_possible)
    return n_E - self_in.astype(np.int64) - stored


def new_neurons(v_mV: np.ndarray) -> Neurons:
    """:class:`Neurons` before the first step: membrane potentials ``v_mV``
    (mV); no conductance, no refractory cell, no spike or arrival pending."""
    N = v_mV.size
    return Neurons(
        v_mV=v_mV,
        g_nS=np.zeros((3, N)),
        ref_steps=np.zeros(N, dtype=np.int32),
        spiked=np.zeros(N, dtype=np.bool_),
        arrivals=np.zeros((3, N), dtype=np.int32),
    )


def new_chunks(rng_state: np.ndarray) -> Chunks:
    """:class:`Chunks` before the first step: noise streams ``rng_state``
    (:data:`nmmval.sim.rng.LANES` per chunk, :func:`nmmval.sim.rng.seed_chunk_lanes`),
    no spikes."""
    n_chunks = rng_state.shape[0]
    return Chunks(
        spikes=np.zeros((2, n_chunks, CHUNK_NEURONS), dtype=np.int32),
        n_spikes=np.zeros((2, n_chunks, 2), dtype=np.int64),
        rng_state=rng_state,
    )


def new_output(n_steps: int, N: int, n_parts: int, closures: bool = False) -> Output:
    """Buffers for kernel calls of up to ``n_steps`` steps of N neurons in
    up to ``n_parts`` parts (every cell may fire in every step); with
    ``closures``, the closure sums are recorded too."""
    return Output(
        V_mV=np.empty(n_steps),
        phi=np.empty((3, n_steps)),
        spike_neuron=np.empty(n_steps * N, dtype=np.int32),
        spike_step=np.empty(n_steps * N, dtype=np.int32),
        sleeps=np.zeros(n_parts, dtype=np.int64),
        counts=np.empty((len(COUNT_ROWS), n_steps), dtype=np.int64),
        V_half_mV=np.empty((2, n_steps)),
        closures=np.empty((2 * len(CLOSURE_ROWS), n_steps if closures else 0)),
    )


@intrinsic
def popcount(typingctx, x):
    """The number of set bits of an unsigned integer, in its type (LLVM's
    ``ctpop``: vectorised with AVX-512 BITALG/VPOPCNTDQ, a table lookup
    with AVX2)."""
    if not isinstance(x, types.Integer) or x.signed:
        return None
    sig = x(x)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@numba.njit(inline="always")
def _type_mask(w, n_E):
    """The bits of word ``w`` whose sources are excitatory (below ``n_E``)."""
    first = w * WORD_BITS
    if first + WORD_BITS <= n_E:
        return np.uint8(0xFF)
    if first >= n_E:
        return np.uint8(0)
    return np.uint8((1 << (n_E - first)) - 1)


@numba.njit(inline="always")
def spike_rows(spike_words, n_E, rows, vals):
    """List the words of the spiking sources' bitset ``spike_words`` that
    hold a spike, by source type: ``rows[0, :n_E_rows]`` and
    ``vals[0, :n_E_rows]`` the words and their excitatory bits,
    ``rows[1]``, ``vals[1]`` likewise the inhibitory ones (a word across
    ``n_E`` is in both). Returns ``(n_E_rows, n_I_rows)``."""
    n_e = 0
    n_i = 0
    for w in range(spike_words.size):
        word = spike_words[w]
        if word == 0:
            continue
        mask = _type_mask(w, n_E)
        if word & mask:
            rows[0, n_e] = w
            vals[0, n_e] = word & mask
            n_e += 1
        if word & ~mask:
            rows[1, n_i] = w
            vals[1, n_i] = word & ~mask
            n_i += 1
    return n_e, n_i


@numba.njit(inline="always")
def _count_rows(bits, rows, vals, n, row, lo, hi):
    """``row[u] += Σ_k popcount(bits[rows[k], u] & vals[k])`` over k < n, for
    the targets u in [lo, hi): four words a pass over the targets, so that
    ``row`` is read and written once per four; unsigned indices, so that
    LLVM vectorises the passes (see :func:`run_block`)."""
    k = 0
    while k + 4 <= n:
        c0, c1, c2, c3 = bits[rows[k]], bits[rows[k + 1]], bits[rows[k + 2]], bits[rows[k + 3]]
        s0, s1, s2, s3 = vals[k], vals[k + 1], vals[k + 2], vals[k + 3]
        for u in range(np.uint64(lo), np.uint64(hi)):
            row[u] += np.int32(
                (popcount(c0[u] & s0) + popcount(c1[u] & s1))
                + (popcount(c2[u] & s2) + popcount(c3[u] & s3))
            )
        k += 4
    while k < n:
        col, s0 = bits[rows[k]], vals[k]
        for u in range(np.uint64(lo), np.uint64(hi)):
            row[u] += np.int32(popcount(col[u] & s0))
        k += 1


@numba.njit(inline="always")
def dense_arrivals(bits, rows, vals, n_E_rows, n_I_rows, arr_E, arr_I, lo, hi):
    """Count, at the targets in [lo, hi), the arrivals from the spiking
    sources listed by :func:`spike_rows` through the stored edges ``bits``
    (:func:`nmmval.sim.network.in_edge_bits`): per word of 8 sources with a
    spike, the popcount of (its spiking sources AND the target's in-edges),
    into ``arr_E`` or ``arr_I`` by the sources' type. The same integers as
    :func:`scatter_arrivals`, in N·N/8 byte operations at most whatever the
    number of spikes."""
    _count_rows(bits, rows[0], vals[0], n_E_rows, arr_E, lo, hi)
    _count_rows(bits, rows[1], vals[1], n_I_rows, arr_I, lo, hi)


@numba.njit(inline="always")
def scatter_arrivals(spikes, n_spikes, targets, split, t, n_E, arr_E, arr_I):
    """Count, at the targets in part ``t``, the arrivals of the spikes
    ``spikes[c, :n_spikes[c, 0]]`` of every chunk c: one increment of
    ``arr_E`` or ``arr_I`` (by the source's type) per stored edge into the
    part (``split``, :class:`Wiring`)."""
    for c in range(n_spikes.shape[0]):
        for q in range(n_spikes[c, 0]):
            i = spikes[c, q]
            row = arr_E if i < n_E else arr_I
            for k in range(split[i, t], split[i, t + 1]):
                row[np.uint64(targets[k])] += 1


@numba.njit(cache=True)
def _deliver(t, par, src, e0, e1, neurons, chunks, wiring, spike_words, rows, vals):
    """Count, at the targets in part ``t``, the arrivals of the spikes of
    step parity ``par`` (``chunks.spikes``) and of the external events of the
    trains ``src[e0:e1]``, in ``neurons.arrivals``. Not inlined into the
    parallel region (see the module docstring).

    The spikes are scattered along their target lists
    (:func:`scatter_arrivals`), or, when that costs more, counted densely
    (:func:`dense_arrivals`; ``spike_words``, ``rows`` and ``vals`` are the
    part's own scratch for the spiking sources' bitset and its words,
    :func:`spike_rows`): when :attr:`Wiring.dense_cost` times the words with
    a spike times the part's targets is below the part's arrivals. Both give
    the same integer counts, so the choice changes no bit of the result.
    """
    spikes, n_spikes, n_E = chunks.spikes[par], chunks.n_spikes[par], wiring.n_E
    arr_E, arr_I, arr_X = neurons.arrivals[0], neurons.arrivals[1], neurons.arrivals[2]
    targets, split = wiring.targets, wiring.split
    ext_targets, ext_split = wiring.ext_targets, wiring.ext_split
    lo, hi = wiring.bounds[t], wiring.bounds[t + 1]
    bits = wiring.in_bits
    dense = bits.shape[0] > 0  # without the bits, scatter: no cost to weigh
    if dense:
        n_spk = 0
        load = 0
        for c in range(n_spikes.shape[0]):
            n_spk += n_spikes[c, 0]
            for q in range(n_spikes[c, 0]):
                i = spikes[c, q]
                load += split[i, t + 1] - split[i, t]
        weight = wiring.dense_cost * (hi - lo)
        # fewest words n_spk spikes can occupy: if even those cost more, scatter
        dense = weight * ((n_spk + WORD_BITS - 1) // WORD_BITS) < load
    if dense:
        spike_words[:] = 0
        for c in range(n_spikes.shape[0]):
            for q in range(n_spikes[c, 0]):
                i = spikes[c, q]
                spike_words[i // WORD_BITS] |= np.uint8(1 << (i % WORD_BITS))
        n_E_rows, n_I_rows = spike_rows(spike_words, n_E, rows, vals)
        dense = weight * (n_E_rows + n_I_rows) < load
    if dense:
        dense_arrivals(bits, rows, vals, n_E_rows, n_I_rows, arr_E, arr_I, lo, hi)
    else:
        scatter_arrivals(spikes, n_spikes, targets, split, t, n_E, arr_E, arr_I)
    for k in range(e0, e1):
        s = src[k]
        for kk in range(ext_split[s, t], ext_split[s, t + 1]):
            arr_X[np.uint64(ext_targets[kk])] += 1


@numba.njit(inline="always")
def _chunk_sum(v, lo, m):
    """Sum of ``v[lo:lo + m]`` in a fixed order, and of its even and odd
    neurons (``lo`` is even: a multiple of :data:`CHUNK_NEURONS`).

    8 interleaved lanes (lane j collects neurons lo + j, lo + j + 8, ...),
    added pairwise, then the ``m % 8`` last neurons in order. Independent
    lanes let LLVM add them as vectors, where one running sum would be a
    chain of dependent adds. The even lanes are the even neurons, so the
    split halves (MODEL.md §4) cost a few adds per chunk.
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
    even = (a0 + a2) + (a4 + a6)
    odd = (a1 + a3) + (a5 + a7)
    for jj in range(m8, m):
        x = v[np.uint64(lo + jj)]
        acc += x
        if jj % 2 == 0:
            even += x
        else:
            odd += x
    return acc, even, odd


@numba.njit(inline="always")
def _direct_arrivals(u, neurons):
    """Neuron ``u``'s E and I arrivals of the previous step, delivered
    through the graph's edges: the counts."""
    return np.float64(neurons.arrivals[0, u]), np.float64(neurons.arrivals[1, u])


@numba.njit(inline="always")
def _complement_arrivals(u, is_E, S_E, S_I, neurons):
    """Neuron ``u``'s E and I arrivals of the previous step, delivered
    through the graph's missing edges: all ``S_E``, ``S_I`` spikes of the
    type, minus those counted (missing edges), minus its own spike.

    Integer counts held exactly in float64 (< 2**53): the same numbers as
    integer arithmetic, and cheaper to vectorise.
    """
    sp = np.float64(neurons.spiked[u])
    self_E = sp if is_E else 0.0
    a_E = S_E - self_E - np.float64(neurons.arrivals[0, u])
    a_I = S_I - (sp - self_E) - np.float64(neurons.arrivals[1, u])
    return a_E, a_I


@numba.njit(inline="always")
def _step_neuron(u, a_E, a_I, x, neurons, k):
    """Neuron ``u``'s step (MODEL.md §2 steps 2-4, 6), without branches.

    ``a_E``, ``a_I``: its E and I arrivals of the previous step; ``x``: its
    noise (standard normal); ``k``: the :class:`Consts`. Returns 1 if it
    fires, else 0.
    """
    v, g, ref, arrivals = neurons.v_mV, neurons.g_nS, neurons.ref_steps, neurons.arrivals
    gE = g[0, u] + a_E * k.dg_E_nS
    gI = g[1, u] + a_I * k.dg_I_nS
    gX = g[2, u] + np.float64(arrivals[2, u]) * k.dg_ext_nS
    vi = v[u]
    r = ref[u]
    drive = -(vi - k.v_rest_mV) - k.inv_g_L_per_nS * (
        gE * (vi - k.v_E_mV) + gI * (vi - k.v_I_mV) + gX * (vi - k.v_ext_mV)
    )
    vn = vi + k.dt_over_tau_m * drive + k.noise_sigma_mV * x
    active = r <= 0
    fire = active & (vn >= k.v_th_mV)
    v[u] = k.v_reset_mV if fire else (vn if active else vi)
    ref[u] = np.int32(k.n_ref_steps) if fire else (r - np.int32(1) if r > 0 else r)
    neurons.spiked[u] = fire
    g[0, u] = gE * k.decay_E
    g[1, u] = gI * k.decay_I
    g[2, u] = gX * k.decay_ext
    arrivals[0, u] = 0
    arrivals[1, u] = 0
    arrivals[2, u] = 0
    return np.int64(fire)


@numba.njit(cache=True)
def update_chunk(lo, m, xb, S_E_prev, S_I_prev, compl, n_E, neurons, consts):
    """One step of neurons lo .. lo + m - 1 (:func:`_step_neuron`); returns how many fire.

    ``xb[j]`` is the noise of neuron lo + j (unused if it is refractory). The E
    and I arrivals are the counts of the previous step
    (:func:`_direct_arrivals`) or, with ``compl``, derived from the previous
    step's ``S_E_prev`` and ``S_I_prev`` spikes (:func:`_complement_arrivals`);
    neurons below ``n_E`` are excitatory. Two loops, so that direct delivery
    reads neither the spike flags nor the totals. A call of its own, not
    inlined into the parallel region: there LLVM cannot bound the arrays and
    does not vectorise the loops; here it does (with runtime alias checks),
    and the result is the scalar one, bit for bit.
    """
    n_fire = 0
    if compl:
        S_E_f = np.float64(S_E_prev)
        S_I_f = np.float64(S_I_prev)
        for jj in range(m):
            u = np.uint64(lo + jj)
            a_E, a_I = _complement_arrivals(u, lo + jj < n_E, S_E_f, S_I_f, neurons)
            n_fire += _step_neuron(u, a_E, a_I, xb[np.uint64(jj)], neurons, consts)
    else:
        for jj in range(m):
            u = np.uint64(lo + jj)
            a_E, a_I = _direct_arrivals(u, neurons)
            n_fire += _step_neuron(u, a_E, a_I, xb[np.uint64(jj)], neurons, consts)
    return n_fire


@numba.njit(inline="always")
def _closure_segment(a, b, is_E, S_E, S_I, compl, neurons, consts, acc, o):
    """Add the closure sums of neurons a .. b - 1, all of one population, to
    ``acc[o:o + 8]`` (:func:`closure_sums`); local sums, one loop per delivery."""
    v, g, arrivals = neurons.v_mV, neurons.g_nS, neurons.arrivals
    s_v = s_vv = s_gE = s_gI = s_gX = s_gEv = s_gIv = s_gXv = 0.0
    for i in range(a, b):
        u = np.uint64(i)
        if compl:
            a_E, a_I = _complement_arrivals(u, is_E, S_E, S_I, neurons)
        else:
            a_E, a_I = _direct_arrivals(u, neurons)
        gE = g[0, u] + a_E * consts.dg_E_nS
        gI = g[1, u] + a_I * consts.dg_I_nS
        gX = g[2, u] + np.float64(arrivals[2, u]) * consts.dg_ext_nS
        vi = v[u]
        s_v += vi
        s_vv += vi * vi
        s_gE += gE
        s_gI += gI
        s_gX += gX
        s_gEv += gE * vi
        s_gIv += gI * vi
        s_gXv += gX * vi
    acc[o] += s_v
    acc[o + 1] += s_vv
    acc[o + 2] += s_gE
    acc[o + 3] += s_gI
    acc[o + 4] += s_gX
    acc[o + 5] += s_gEv
    acc[o + 6] += s_gIv
    acc[o + 7] += s_gXv


@numba.njit(cache=True, fastmath={"reassoc", "nsz", "arcp", "contract"})
def closure_sums(lo, m, S_E_prev, S_I_prev, compl, n_E, neurons, consts, acc):
    """Add the closure sums of neurons lo .. lo + m - 1 to ``acc`` (16,).

    At the start of the step (before :func:`update_chunk`): per population
    P (E: ``acc[0:8]``, I: ``acc[8:16]``) the sums of v, v², g_E, g_I,
    g_ext, g_E·v, g_I·v, g_ext·v (:data:`CLOSURE_ROWS`), with g_σ the
    conductance the step integrates with, as :func:`_step_neuron` forms it
    (the previous step's arrivals added). Called only when the closures are
    recorded (MODEL.md §4, ``simulation.record_closures``).

    Compiled with reassociation allowed, so that LLVM sums in SIMD lanes:
    then the closures cost the loop about a tenth instead of a half. The
    sums are diagnostics that feed nothing back, and each chunk's is still
    computed by the same code whatever the thread count, so they too are
    the same bits at any thread count (not necessarily on another CPU).
    """
    S_E = np.float64(S_E_prev)
    S_I = np.float64(S_I_prev)
    cut = min(max(n_E, lo), lo + m)
    if compl:
        _closure_segment(lo, cut, True, S_E, S_I, True, neurons, consts, acc, 0)
        _closure_segment(cut, lo + m, False, S_E, S_I, True, neurons, consts, acc, 8)
    else:
        _closure_segment(lo, cut, True, S_E, S_I, False, neurons, consts, acc, 0)
        _closure_segment(cut, lo + m, False, S_E, S_I, False, neurons, consts, acc, 8)


@numba.njit(parallel=True, cache=True)
def run_block(n0, n_steps, neurons, chunks, drive, wiring, consts, out):
    """Integrate ``n_steps`` steps starting at global step ``n0``.

    Advances ``neurons`` (:class:`Neurons`) and ``chunks`` (:class:`Chunks`)
    in place under ``drive`` (:class:`Drive`) through ``wiring``
    (:class:`Wiring`) with the constants ``consts`` (:class:`Consts`);
    writes ``out`` (:class:`Output`) and returns the number of spikes
    written to its ``spike_*``.

    One parallel region for the block, one part of ``wiring.bounds`` per
    thread, each a fixed run of whole chunks of :data:`CHUNK_NEURONS`
    neurons; the parts meet at a barrier after every step
    (:func:`nmmval.sim.barrier.arrive_and_wait`). The caller makes the part
    count ``numba.get_num_threads()``: with more parts than threads, a part
    would wait for one queued behind it on its own thread.

    In a step, a part first counts, for its own neurons, the arrivals from
    the previous step's spikes and external events (integer counts: any
    partition of the targets gives the same counts, and no part writes to
    another's neurons); ``wiring.split`` and ``wiring.ext_split`` give each
    source's targets in each part, so that no part searches a target list.
    Then chunk c of the part (a) sums v for V and its split halves
    (:func:`_chunk_sum`), with ``out.closures`` columns the closure sums
    (:func:`closure_sums`), and draws the noise of its neurons, one normal
    per neuron (refractory cells ignore theirs), from the streams
    ``chunks.rng_state[c]`` (:func:`nmmval.sim.rng.fill_standard_normal`;
    none without noise, Q = 0); (b)
    updates every neuron without branches (:func:`update_chunk`, SIMD;
    refractory cells keep v); (c) lists its spikes. After the barrier, the
    last part (at N = 10 000 on 2 threads the smaller one) records the step,
    V, φ, the counts per population, the split halves, the closure sums and
    the spikes in neuron order, while the others go on: the spike lists and
    chunk sums are kept by step parity, so the next step's writes do not
    touch what is being recorded.

    The chunk layout, not the parts, fixes every random stream and the
    order of every floating-point sum, so results do not depend on the
    thread count. Indices are unsigned where it matters, so that Numba
    emits no negative-index wraparound, which keeps LLVM from vectorising.
    """
    # no array through a bundle's field inside the prange loop: Numba drops
    # the writes (see the module docstring)
    v, spiked = neurons.v_mV, neurons.spiked
    spikes, n_spikes, rng_state = chunks.spikes, chunks.n_spikes, chunks.rng_state
    ext_prev, ext_ptr, ext_src = drive.ext_prev, drive.ext_ptr, drive.ext_src
    bounds, out_deg, ext_out_deg = wiring.bounds, wiring.out_deg, wiring.ext_out_deg
    out_deg_E = wiring.out_deg_E
    V_out, phi_out, sleeps = out.V_mV, out.phi, out.sleeps
    spike_neuron, spike_step = out.spike_neuron, out.spike_step
    counts_out, V_half_out, closures_out = out.counts, out.V_half_mV, out.closures
    record_closures = closures_out.shape[1] > 0
    # without membrane noise (Q = 0) no normal is drawn: xbuf stays 0
    noisy = consts.noise_sigma_mV != 0.0
    N = v.size
    n_E = wiring.n_E
    n_parts = bounds.size - 1
    compl = np.int64(1 if wiring.complement else 0)
    n_chunks = n_spikes.shape[1]
    chunk_sum = np.zeros((2, n_chunks))
    half_sum = np.zeros((2, n_chunks, 2))
    n_rows = closures_out.shape[0]
    closure_sum = np.zeros((2, n_chunks, n_rows))
    xbuf = np.zeros((n_chunks, CHUNK_NEURONS))
    counters = np.zeros(n_parts * SLOT, dtype=np.int32)
    # each part's scratch for the dense count (_deliver)
    n_words = wiring.in_bits.shape[0]
    spike_words = np.zeros((n_parts, n_words), dtype=np.uint8)
    word_rows = np.zeros((n_parts, 2, n_words), dtype=np.int64)
    word_vals = np.zeros((n_parts, 2, n_words), dtype=np.uint8)
    n_recorded = np.zeros(1, dtype=np.int64)
    for t in prange(n_parts):
        raw = np.empty(CHUNK_NEURONS, dtype=np.uint64)  # the part's scratch for the draws
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
                S_prev += n_spikes[prv, c, 0]
                S_E_prev += n_spikes[prv, c, 1]
            S_I_prev = S_prev - S_E_prev
            if b == 0:
                src_ext, e0, e1 = ext_prev, 0, ext_prev.size
            else:
                src_ext, e0, e1 = ext_src, ext_ptr[b - 1], ext_ptr[b]
            _deliver(
                t,
                prv,
                src_ext,
                e0,
                e1,
                neurons,
                chunks,
                wiring,
                spike_words[t],
                word_rows[t],
                word_vals[t],
            )
            for c in range(c_lo, c_hi):
                lo = c * CHUNK_NEURONS
                m = min(CHUNK_NEURONS, N - lo)
                xb = xbuf[c]
                # (a) V's chunk sum (and the halves'), the closure sums; the
                # noise, the chunk's normals at once
                total, even, odd = _chunk_sum(v, lo, m)
                chunk_sum[par, c] = total
                half_sum[par, c, 0] = even
                half_sum[par, c, 1] = odd
                if record_closures:
                    acc = closure_sum[par, c]
                    acc[:] = 0.0
                    closure_sums(lo, m, S_E_prev, S_I_prev, compl, n_E, neurons, consts, acc)
                if noisy:
                    fill_standard_normal(rng_state, c, m, raw, xb)
                # (b) integrate, decay, threshold, reset: branch-free
                n_fire = update_chunk(lo, m, xb, S_E_prev, S_I_prev, compl, n_E, neurons, consts)
                # (c) this chunk's spikes, in neuron order
                k = 0
                k_E = 0
                if n_fire > 0:
                    for jj in range(m):
                        if spiked[np.uint64(lo + jj)]:
                            spikes[par, c, k] = lo + jj
                            k += 1
                            k_E += 1 if lo + jj < n_E else 0
                n_spikes[par, c, 0] = k
                n_spikes[par, c, 1] = k_E
            n_sleep += arrive_and_wait(counters, t, n_parts, b + 1)
            if t == n_parts - 1:
                # record the step: V and its halves, its spikes in neuron
                # order, φ, the counts per population, the closure sums
                total = 0.0
                even = 0.0
                odd = 0.0
                for c in range(n_chunks):
                    total += chunk_sum[par, c]
                    even += half_sum[par, c, 0]
                    odd += half_sum[par, c, 1]
                V_out[b] = total / N
                V_half_out[0, b] = even / ((N + 1) // 2)
                V_half_out[1, b] = odd / max(N // 2, 1)
                arr_E = 0
                arr_I = 0
                arr_EE = 0
                arr_IE = 0
                spk_E = 0
                spk = 0
                for c in range(n_chunks):
                    spk_E += n_spikes[par, c, 1]
                    spk += n_spikes[par, c, 0]
                    for q in range(n_spikes[par, c, 0]):
                        i = spikes[par, c, q]
                        spike_neuron[n_spk] = i
                        spike_step[n_spk] = n0 + b
                        n_spk += 1
                        if i < n_E:
                            arr_E += out_deg[i]
                            arr_EE += out_deg_E[i]
                        else:
                            arr_I += out_deg[i]
                            arr_IE += out_deg_E[i]
                arr_X = 0
                for k in range(ext_ptr[b], ext_ptr[b + 1]):
                    arr_X += ext_out_deg[ext_src[k]]
                phi_out[0, b] = arr_E / N
                phi_out[1, b] = arr_I / N
                phi_out[2, b] = arr_X / N
                counts_out[0, b] = arr_EE
                counts_out[1, b] = arr_E - arr_EE
                counts_out[2, b] = arr_IE
                counts_out[3, b] = arr_I - arr_IE
                counts_out[4, b] = arr_X
                counts_out[5, b] = spk_E
                counts_out[6, b] = spk - spk_E
                if record_closures:
                    for q in range(n_rows):
                        tot = 0.0
                        for c in range(n_chunks):
                            tot += closure_sum[par, c, q]
                        closures_out[q, b] = tot
        sleeps[t] = n_sleep
        if t == n_parts - 1:
            n_recorded[0] = n_spk
    return n_recorded[0]
