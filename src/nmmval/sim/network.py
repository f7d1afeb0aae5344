"""Random graphs of the network (MODEL.md §2, paper Fig. 6).

The internal graph is a directed Erdős–Rényi graph G(N, p) without
self-loops, type-blind: neuron i projects to j with probability p whatever
their types. The external graph is bipartite, G(M, N_E, p_ext): each of M
Poisson trains projects to each excitatory neuron with probability p_ext.

Both are sampled by Batagelj & Brandes (2005) geometric skipping along each
source's row of candidate edges, in O(N + edges), rows in parallel, each
chunk of rows from its own stream (so the graph does not depend on threads). Because all
synapses of a type are equal, a graph is stored by its sparser side: for
p > 1/2 the sampled set is the *missing* edges (each candidate is missing
with probability 1 - p), which makes p = 1 an empty list. Either side can be
turned into the other with :func:`complement`.

Graphs are CSR arrays by source: ``indptr`` (int64, n_sources + 1) and
``indices`` (int32 target ids, sorted within each source).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba import prange

from nmmval.sim.rng import seed_states, uniform_open0

#: source rows per random stream of the graph sampler
ROW_CHUNK = 64
#: a row chunk's sampling segment holds its expected edges plus this many
#: standard deviations (and 16); a chunk that does not fit is sampled again
CAPACITY_SIGMAS = 8.0


@dataclass(frozen=True)
class Graph:
    """A directed graph in CSR form, by source.

    Attributes
    ----------
    indptr : ndarray of int64, shape (n_sources + 1,)
    indices : ndarray of int32
        Targets of source ``s`` are ``indices[indptr[s]:indptr[s+1]]``, sorted.
    n_targets : int
    complemented : bool
        If True the arrays list the *missing* edges (edges absent from the graph).
    self_loops_possible : bool
        False for the internal graph (sources and targets are the same cells).
    """

    indptr: np.ndarray
    indices: np.ndarray
    n_targets: int
    complemented: bool
    self_loops_possible: bool

    @property
    def n_sources(self) -> int:
        """Number of source nodes."""
        return self.indptr.size - 1

    @property
    def n_candidates(self) -> int:
        """Number of possible edges."""
        if self.self_loops_possible:
            return self.n_sources * self.n_targets
        return self.n_sources * (self.n_targets - 1)

    @property
    def n_edges(self) -> int:
        """Number of edges present in the graph."""
        stored = int(self.indices.size)
        return self.n_candidates - stored if self.complemented else stored

    def out_degree(self) -> np.ndarray:
        """Out-degree of every source (edges present), int64."""
        stored = np.diff(self.indptr)
        if not self.complemented:
            return stored
        per_source = self.n_targets - (0 if self.self_loops_possible else 1)
        return per_source - stored

    def in_degree(self) -> np.ndarray:
        """In-degree of every target (edges present), int64."""
        stored = np.bincount(self.indices, minlength=self.n_targets).astype(np.int64)
        if not self.complemented:
            return stored
        per_target = self.n_sources
        if not self.self_loops_possible:
            per_target = per_target - (np.arange(self.n_targets) < self.n_sources)
        return per_target - stored


@numba.njit(parallel=True, cache=True)
def _sample_rows(states, n_src, n_tgt, prob, no_self, counts, indices, seg_start, seg_cap):
    """Batagelj–Brandes skipping along each source row, one stream per row chunk.

    Writes each row's edge count to ``counts[r]``, and the targets of row
    chunk c, row after row, to ``indices[seg_start[c] : seg_start[c] +
    seg_cap[c]]`` as far as they fit. Returns, per chunk, whether they did
    not (its counts are complete all the same).
    """
    width = n_tgt - 1 if no_self else n_tgt
    log_q = np.log1p(-prob)
    n_chunks = states.shape[0]
    overflow = np.zeros(n_chunks, dtype=np.bool_)
    for c in prange(n_chunks):
        s0, s1, s2, s3 = states[c, 0], states[c, 1], states[c, 2], states[c, 3]
        w = seg_start[c]
        end = w + seg_cap[c]
        for r in range(c * ROW_CHUNK, min((c + 1) * ROW_CHUNK, n_src)):
            j = -1
            n = 0
            while True:
                u, s0, s1, s2, s3 = uniform_open0(s0, s1, s2, s3)
                gap = np.floor(np.log(u) / log_q) if prob < 1.0 else 0.0
                if j + 1 + gap >= width:
                    break
                j += 1 + np.int64(gap)
                if w < end:
                    indices[w] = j + 1 if (no_self and j >= r) else j
                w += 1
                n += 1
            counts[r] = n
        overflow[c] = w > end
    return overflow


@numba.njit(cache=True)
def _compact(buf, seg_start, indptr):
    """Move row chunk c's targets from ``buf[seg_start[c]:]`` to its CSR place,
    ``buf[indptr[c * ROW_CHUNK]:]``, in place (every move is to the left, in
    chunk order, so no chunk overwrites one still to be moved)."""
    n_src = indptr.size - 1
    for c in range(seg_start.size):
        a = indptr[c * ROW_CHUNK]
        b = indptr[min((c + 1) * ROW_CHUNK, n_src)]
        src = seg_start[c]
        if src != a:
            for k in range(b - a):
                buf[a + k] = buf[src + k]


def _sample(seq: np.random.SeedSequence, n_src: int, n_tgt: int, prob: float, no_self: bool):
    """CSR of a random graph keeping each candidate edge with probability ``prob``.

    One pass: each row chunk samples into a segment sized for its expected
    edges plus :data:`CAPACITY_SIGMAS` standard deviations, and the segments
    are then moved together. A chunk that does not fit (practically never)
    makes a second pass over the same streams into the exact CSR places.
    """
    indptr = np.zeros(n_src + 1, dtype=np.int64)
    if prob <= 0.0 or n_src == 0 or n_tgt == 0:
        return indptr, np.zeros(0, dtype=np.int32)
    n_chunks = (n_src + ROW_CHUNK - 1) // ROW_CHUNK
    states = seed_states(seq, n_chunks)
    rows = np.minimum(ROW_CHUNK, n_src - ROW_CHUNK * np.arange(n_chunks))
    mean = rows * float(n_tgt - 1 if no_self else n_tgt) * prob
    cap = mean + CAPACITY_SIGMAS * np.sqrt(mean * (1.0 - prob)) + 16.0
    seg_cap = np.maximum(cap, 0.0).astype(np.int64)
    seg_start = np.zeros(n_chunks, dtype=np.int64)
    np.cumsum(seg_cap[:-1], out=seg_start[1:])
    buf = np.empty(int(seg_start[-1] + seg_cap[-1]), dtype=np.int32)
    overflow = _sample_rows(
        states.copy(), n_src, n_tgt, prob, no_self, indptr[1:], buf, seg_start, seg_cap
    )
    np.cumsum(indptr, out=indptr)
    if overflow.any():
        buf = np.empty(indptr[-1], dtype=np.int32)
        exact_start = indptr[ROW_CHUNK * np.arange(n_chunks)]
        exact_cap = np.diff(indptr[np.minimum(ROW_CHUNK * np.arange(n_chunks + 1), n_src)])
        counts = np.empty(n_src, dtype=np.int64)
        _sample_rows(states, n_src, n_tgt, prob, no_self, counts, buf, exact_start, exact_cap)
        return indptr, buf
    _compact(buf, seg_start, indptr)
    return indptr, buf[: indptr[-1]]


def erdos_renyi(n: int, p: float, seq: np.random.SeedSequence) -> Graph:
    """Directed G(n, p) without self-loops, stored by its sparser side.

    Parameters
    ----------
    n : int
        Number of neurons.
    p : float
        Connection probability, in [0, 1]. p = 0 gives no edge, p = 1 the
        complete graph (stored as an empty list of missing edges).
    seq : numpy.random.SeedSequence
        The cell's internal-graph seed sequence.
    """
    complemented = p > 0.5
    prob = 1.0 - p if complemented else p
    indptr, indices = _sample(seq, n, n, prob, no_self=True)
    return Graph(indptr, indices, n, complemented, self_loops_possible=False)


def bipartite(m: int, n_targets: int, p: float, seq: np.random.SeedSequence) -> Graph:
    """Bipartite G(m, n_targets, p) from m external trains to the excitatory cells.

    Always stored direct (p_ext is small); targets are excitatory neuron ids
    0 .. n_targets - 1.
    """
    indptr, indices = _sample(seq, m, n_targets, p, no_self=False)
    return Graph(indptr, indices, n_targets, False, self_loops_possible=True)


@numba.njit(cache=True)
def _complement_csr(indptr, indices, n_targets, self_loops_possible):
    n_src = indptr.size - 1
    per = n_targets if self_loops_possible else n_targets - 1
    new_ptr = np.zeros(n_src + 1, dtype=np.int64)
    for s in range(n_src):
        new_ptr[s + 1] = new_ptr[s] + per - (indptr[s + 1] - indptr[s])
    out = np.empty(new_ptr[n_src], dtype=np.int32)
    for s in range(n_src):
        k = indptr[s]
        w = new_ptr[s]
        for t in range(n_targets):
            if not self_loops_possible and t == s:
                continue
            if k < indptr[s + 1] and indices[k] == t:
                k += 1
            else:
                out[w] = t
                w += 1
    return new_ptr, out


def complement(graph: Graph) -> Graph:
    """The same graph stored by its other side (present edges <-> missing edges)."""
    indptr, indices = _complement_csr(
        graph.indptr, graph.indices, graph.n_targets, graph.self_loops_possible
    )
    return Graph(
        indptr, indices, graph.n_targets, not graph.complemented, graph.self_loops_possible
    )


#: bits per word of :func:`in_edge_bits` (uint8 words)
WORD_BITS = 8


@numba.njit(parallel=True, cache=True)
def _fill_bits(indptr, indices, bits):
    """Set bit b of ``bits[w, j]`` for every stored edge 8·w + b → j; one
    word row per pass of the parallel loop, so no two passes write a word."""
    n_src = indptr.size - 1
    for w in prange(bits.shape[0]):
        for s in range(w * WORD_BITS, min((w + 1) * WORD_BITS, n_src)):
            bit = np.uint8(1 << (s - w * WORD_BITS))
            for k in range(indptr[s], indptr[s + 1]):
                bits[w, indices[k]] |= bit


def in_edge_bits(graph: Graph) -> np.ndarray:
    """The stored edges of ``graph`` as bits, word-major, 8 sources a word.

    Returns ``bits`` (uint8, ``(ceil(n_sources / 8), n_targets)``): bit b of
    ``bits[w, j]`` is set if the graph stores the edge 8·w + b → j (a
    missing edge when it is ``complemented``). Row w is the in-edges from
    sources 8·w .. 8·w + 7 of every target, contiguous in the target, so
    that the targets' arrivals from one word of spiking sources are a
    vectorisable pass over a row (:func:`nmmval.sim.kernel.dense_arrivals`);
    words of 8 keep the rows a step reads few when its spikes are few
    (words of 64 read 8 times as many bytes for a lone spike). N = 10 000
    takes 12.5 MB.
    """
    n_words = (graph.n_sources + WORD_BITS - 1) // WORD_BITS
    bits = np.zeros((n_words, graph.n_targets), dtype=np.uint8)
    _fill_bits(graph.indptr, graph.indices, bits)
    return bits


def cell_streams(base_seed: int, p: float, lam: float, seed: int) -> dict:
    """Independent random streams of one cell <p, λ, seed>.

    One :class:`numpy.random.SeedSequence` per cell, keyed by the base seed and
    the cell's canonical coordinates (p and λ in thousandths), spawned into the
    ``graph`` and ``external`` seed sequences (the samplers seed per-chunk
    streams from them), the ``drive`` generator and the ``noise`` seed sequence
    (the kernel seeds its per-chunk streams from it, see :mod:`nmmval.sim.rng`).
    """
    key = (int(round(p * 1000)), int(round(lam * 1000)), int(seed))
    ss = np.random.SeedSequence(entropy=int(base_seed), spawn_key=key)
    graph, drive, noise, external = ss.spawn(4)
    return {
        "graph": graph,
        "external": external,
        "drive": np.random.Generator(np.random.PCG64(drive)),
        "noise": noise,
    }
