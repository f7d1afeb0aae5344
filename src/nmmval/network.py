"""Random graphs of the network (MODEL.md §2, paper Fig. 6).

The internal graph is a directed Erdős–Rényi graph G(N, p) without
self-loops, type-blind: neuron i projects to j with probability p whatever
their types. The external graph is bipartite, G(M, N_E, p_ext): each of M
Poisson trains projects to each excitatory neuron with probability p_ext.

Both are sampled by Batagelj & Brandes (2005) geometric skipping over the
list of candidate edges, vectorised in chunks, in O(N + edges). Because all
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

_CHUNK = 1 << 20


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


def _sample_candidates(rng: np.random.Generator, n_candidates: int, prob: float):
    """Yield sorted chunks of candidate indices, each kept with probability ``prob``.

    Batagelj–Brandes geometric skipping: the gap to the next kept candidate is
    geometric with parameter ``prob``.
    """
    if prob <= 0.0 or n_candidates == 0:
        return
    last = -1
    while True:
        gaps = rng.geometric(prob, size=_CHUNK)
        idx = last + np.cumsum(gaps)
        done = idx[-1] >= n_candidates
        if done:
            idx = idx[: np.searchsorted(idx, n_candidates)]
        if idx.size:
            yield idx
            last = int(idx[-1])
        if done:
            return


def _csr_from_chunks(chunks, n_sources: int, n_targets: int, self_loops_possible: bool):
    width = n_targets if self_loops_possible else n_targets - 1
    counts = np.zeros(n_sources, dtype=np.int64)
    parts = []
    for idx in chunks:
        src = idx // width
        tgt = idx - src * width
        if not self_loops_possible:
            tgt = tgt + (tgt >= src)
        counts += np.bincount(src, minlength=n_sources)
        parts.append(tgt.astype(np.int32))
    indptr = np.zeros(n_sources + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    return indptr, indices


def erdos_renyi(n: int, p: float, rng: np.random.Generator) -> Graph:
    """Directed G(n, p) without self-loops, stored by its sparser side.

    Parameters
    ----------
    n : int
        Number of neurons.
    p : float
        Connection probability, in [0, 1]. p = 0 gives no edge, p = 1 the
        complete graph (stored as an empty list of missing edges).
    rng : numpy.random.Generator
        The cell's graph stream.
    """
    complemented = p > 0.5
    prob = 1.0 - p if complemented else p
    chunks = _sample_candidates(rng, n * (n - 1), prob)
    indptr, indices = _csr_from_chunks(chunks, n, n, self_loops_possible=False)
    return Graph(indptr, indices, n, complemented, self_loops_possible=False)


def bipartite(m: int, n_targets: int, p: float, rng: np.random.Generator) -> Graph:
    """Bipartite G(m, n_targets, p) from m external trains to the excitatory cells.

    Always stored direct (p_ext is small); targets are excitatory neuron ids
    0 .. n_targets - 1.
    """
    chunks = _sample_candidates(rng, m * n_targets, p)
    indptr, indices = _csr_from_chunks(chunks, m, n_targets, self_loops_possible=True)
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


def cell_streams(base_seed: int, p: float, lam: float, seed: int) -> dict[str, np.random.Generator]:
    """Independent random streams of one cell <p, λ, seed>.

    One :class:`numpy.random.SeedSequence` per cell, keyed by the base seed and
    the cell's canonical coordinates (p and λ in thousandths), spawned into the
    ``graph``, ``drive`` and ``noise`` streams.
    """
    key = (int(round(p * 1000)), int(round(lam * 1000)), int(seed))
    ss = np.random.SeedSequence(entropy=int(base_seed), spawn_key=key)
    graph, drive, noise = ss.spawn(3)
    return {
        "graph": np.random.Generator(np.random.PCG64(graph)),
        "drive": np.random.Generator(np.random.PCG64(drive)),
        "noise": np.random.Generator(np.random.SFC64(noise)),
    }
