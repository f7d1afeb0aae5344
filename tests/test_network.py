"""Graphs: Erdős–Rényi without self-loops, bipartite external drive, streams."""

import numpy as np
import pytest

from nmmval.sim import network
from nmmval.sim.lif import build_graphs
from nmmval.sim.network import erdos_renyi, in_edge_bits

from conftest import small_params


def _edges(g: network.Graph) -> set[tuple[int, int]]:
    g = network.complement(g) if g.complemented else g
    src = np.repeat(np.arange(g.n_sources), np.diff(g.indptr))
    return set(zip(src.tolist(), g.indices.tolist(), strict=True))


@pytest.mark.parametrize("p", [0.01, 0.1, 0.4, 0.5, 0.7, 0.95])
def test_in_degree_mean_within_4_standard_errors(p):
    n = 2000
    g = network.erdos_renyi(n, p, np.random.SeedSequence(1))
    deg = g.in_degree()
    # in-degrees are Binomial(n-1, p); their mean has SE sqrt(p(1-p)(n-1)/n)
    se = np.sqrt(p * (1 - p) * (n - 1) / n)
    assert abs(deg.mean() - p * (n - 1)) < 4 * se
    assert g.n_edges == deg.sum() == g.out_degree().sum()


@pytest.mark.parametrize("p", [0.05, 0.8])
def test_no_self_loops_and_sorted_targets(p):
    g = network.erdos_renyi(300, p, np.random.SeedSequence(2))
    for side in (g, network.complement(g)):
        for s in range(side.n_sources):
            t = side.indices[side.indptr[s] : side.indptr[s + 1]]
            assert s not in t
            assert np.all(np.diff(t) > 0)


def test_p0_empty_and_p1_complete():
    n = 50
    g0 = network.erdos_renyi(n, 0.0, np.random.SeedSequence(3))
    assert g0.n_edges == 0 and not g0.complemented
    g1 = network.erdos_renyi(n, 1.0, np.random.SeedSequence(3))
    assert g1.complemented and g1.indices.size == 0
    assert g1.n_edges == n * (n - 1)
    assert _edges(g1) == {(i, j) for i in range(n) for j in range(n) if i != j}


def test_complement_is_an_involution():
    g = network.erdos_renyi(200, 0.3, np.random.SeedSequence(4))
    back = network.complement(network.complement(g))
    np.testing.assert_array_equal(back.indptr, g.indptr)
    np.testing.assert_array_equal(back.indices, g.indices)
    assert network.complement(g).n_edges == g.n_edges


def test_external_edges_only_onto_excitatory_cells():
    params = small_params(**{"network.N": 1000, "network.p_ext": 0.01})
    internal, external, n_E, _ = build_graphs(params, 0.1, 0.8, 0)
    assert n_E == 800
    assert external.n_sources == params.network.M
    assert external.indices.max() < n_E
    # each E cell has Binomial(M, p_ext) external inputs
    m, q = params.network.M, params.network.p_ext
    deg = external.in_degree()
    assert deg.size == n_E
    assert abs(deg.mean() - m * q) < 4 * np.sqrt(m * q * (1 - q) / n_E)


def test_same_seed_same_graph_other_seed_other_graph():
    params = small_params()
    a = build_graphs(params, 0.2, 0.8, 3)
    b = build_graphs(params, 0.2, 0.8, 3)
    c = build_graphs(params, 0.2, 0.8, 4)
    for x, y in ((a[0], b[0]), (a[1], b[1])):
        np.testing.assert_array_equal(x.indptr, y.indptr)
        np.testing.assert_array_equal(x.indices, y.indices)
    assert not np.array_equal(a[0].indices, c[0].indices)


def test_cell_streams_are_distinct():
    s = network.cell_streams(1, 0.1, 0.8, 0)
    draws = [s[k].generate_state(4).tolist() for k in ("graph", "external", "noise")]
    draws.append(s["drive"].integers(0, 2**32, 4).tolist())
    assert len({tuple(v) for v in draws}) == 4
    other = network.cell_streams(1, 0.1, 0.9, 0)["noise"].generate_state(4).tolist()
    assert other != draws[2]


def test_graph_independent_of_thread_count():
    import numba

    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = network.erdos_renyi(1000, 0.2, np.random.SeedSequence(9))
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        b = network.erdos_renyi(1000, 0.2, np.random.SeedSequence(9))
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.indptr, b.indptr)


def test_edge_count_is_binomial():
    n, p = 3000, 0.05
    g = network.erdos_renyi(n, p, np.random.SeedSequence(11))
    m = n * (n - 1)
    assert abs(g.n_edges - m * p) < 5 * np.sqrt(m * p * (1 - p))


@pytest.mark.parametrize("sigmas", [0.0, -1e9])
@pytest.mark.parametrize("p", [0.05, 0.3, 0.8])
def test_row_chunks_that_overflow_their_segment_give_the_same_graph(monkeypatch, sigmas, p):
    """The one-pass sampler's fallback: with segments of the mean size about
    half the row chunks overflow, with none at all every one does; the
    second pass over the same streams gives the same CSR, bit for bit."""
    n = 700  # 11 row chunks, the last one short

    def seq():
        return np.random.SeedSequence(21)

    want = network.erdos_renyi(n, p, seq())
    ext_want = network.bipartite(n, 300, p, seq())
    monkeypatch.setattr(network, "CAPACITY_SIGMAS", sigmas)
    got = network.erdos_renyi(n, p, seq())
    ext_got = network.bipartite(n, 300, p, seq())
    for a, b in ((want, got), (ext_want, ext_got)):
        np.testing.assert_array_equal(a.indptr, b.indptr)
        np.testing.assert_array_equal(a.indices, b.indices)


@pytest.mark.parametrize("p", [0.2, 0.9])
def test_in_edge_bits_hold_exactly_the_stored_edges(p):
    """Bit b of word [w, j] is set iff the stored side has 8·w + b → j."""
    n = 150
    graph = erdos_renyi(n, p, np.random.SeedSequence(11))
    bits = in_edge_bits(graph)
    assert bits.shape == (19, n) and bits.dtype == np.uint8
    adjacency = np.unpackbits(bits, axis=0, bitorder="little")[:n].astype(bool)
    stored = np.zeros((n, n), dtype=bool)
    for s in range(n):
        stored[s, graph.indices[graph.indptr[s] : graph.indptr[s + 1]]] = True
    np.testing.assert_array_equal(adjacency, stored)
