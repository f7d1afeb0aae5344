"""The kernel's random numbers: xoshiro256** and the ziggurat normal, one
stream per chunk (:func:`normals`) and LANES streams per chunk
(:func:`fill_standard_normal`)."""

import numba
import numpy as np
import pytest
from scipy import special, stats

from nmmval.sim.kernel import CHUNK_NEURONS
from nmmval.sim.rng import (
    LANES,
    ZIGGURAT,
    ZIGGURAT_1024,
    _jumped,
    _ziggurat_try,
    fill_standard_normal,
    next_u64,
    normals,
    seed_chunk_lanes,
    seed_states,
    standard_normal,
)


def test_xoshiro256starstar_reference_values():
    # Blackman & Vigna's reference implementation, state {1, 2, 3, 4}
    s = tuple(np.uint64(x) for x in (1, 2, 3, 4))
    out = []
    for _ in range(3):
        r, *s = next_u64(*s)
        out.append(int(r))
    assert out == [11520, 0, 1509978240]


def test_ziggurat_is_standard_normal():
    state = seed_states(np.random.SeedSequence(42), 1)[0]
    _assert_standard_normal(normals(state, 2_000_000))


def _assert_standard_normal(x):
    n = x.size
    # moments within 5 standard errors
    assert abs(x.mean()) < 5 / np.sqrt(n)
    assert abs(x.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs(stats.skew(x)) < 5 * np.sqrt(6 / n)
    assert abs(stats.kurtosis(x)) < 5 * np.sqrt(24 / n)
    # the whole distribution, tails included
    assert stats.kstest(x, "norm").pvalue > 1e-3
    tail = np.mean(np.abs(x) > 3.442619855899)  # beyond the ziggurat's base strip
    assert abs(tail - 2 * stats.norm.sf(3.442619855899)) < 5 * np.sqrt(tail / n)


def test_streams_are_independent_and_reproducible():
    a = seed_states(np.random.SeedSequence(7), 2)
    b = seed_states(np.random.SeedSequence(7), 2)
    np.testing.assert_array_equal(a, b)
    x, y = normals(a[0], 100_000), normals(a[1], 100_000)
    assert abs(np.corrcoef(x, y)[0, 1]) < 5 / np.sqrt(x.size)
    np.testing.assert_array_equal(x, normals(b[0], 100_000))


# -- fill_standard_normal: LANES streams per chunk ------------------------------------


@numba.njit(cache=True)
def _fill_reference(state, c, m):
    """What :func:`fill_standard_normal` promises, one number at a time: number j
    from stream j % LANES, its draw j // LANES of the call, then the draws that
    fell outside their rectangle finished in the order of j (standard_normal's
    own steps)."""
    kn, wn, fn = ZIGGURAT_1024[0], ZIGGURAT_1024[1], ZIGGURAT_1024[2]
    n_blocks = (m + LANES - 1) // LANES
    raw = np.empty(n_blocks * LANES, dtype=np.uint64)
    for lane in range(LANES):
        s0, s1, s2, s3 = state[c, 0, lane], state[c, 1, lane], state[c, 2, lane], state[c, 3, lane]
        for k in range(n_blocks):
            raw[k * LANES + lane], s0, s1, s2, s3 = next_u64(s0, s1, s2, s3)
        state[c, 0, lane], state[c, 1, lane], state[c, 2, lane], state[c, 3, lane] = s0, s1, s2, s3
    out = np.empty(m)
    for j in range(m):
        lane = j % LANES
        s0, s1, s2, s3 = state[c, 0, lane], state[c, 1, lane], state[c, 2, lane], state[c, 3, lane]
        x, accepted, s0, s1, s2, s3 = _ziggurat_try(raw[j], s0, s1, s2, s3, kn, wn, fn)
        if not accepted:
            x, s0, s1, s2, s3 = standard_normal(s0, s1, s2, s3, kn, wn, fn)
        out[j] = x
        state[c, 0, lane], state[c, 1, lane], state[c, 2, lane], state[c, 3, lane] = s0, s1, s2, s3
    return out


@numba.njit(cache=True)
def _fill_steps(state, N, n_steps):
    """``n_steps`` × ``N`` normals as the kernel would draw them: chunks of
    CHUNK_NEURONS neurons, each from its own streams."""
    raw = np.empty(CHUNK_NEURONS, dtype=np.uint64)
    xb = np.empty(CHUNK_NEURONS)
    out = np.empty((n_steps, N))
    for b in range(n_steps):
        for c in range(state.shape[0]):
            lo = c * CHUNK_NEURONS
            m = min(CHUNK_NEURONS, N - lo)
            fill_standard_normal(state, c, m, raw, xb)
            out[b, lo : lo + m] = xb[:m]
    return out


def _lane_normals(seed, N, n_steps, n_batches=1):
    """``n_batches`` arrays of ``n_steps`` × ``N`` normals (:func:`_fill_steps`),
    each batch going on where the one before stopped."""
    state = seed_chunk_lanes(np.random.SeedSequence(seed), -(-N // CHUNK_NEURONS))
    for _ in range(n_batches):
        yield _fill_steps(state, N, n_steps)


@pytest.mark.parametrize(
    ("tables", "v"), [(ZIGGURAT, 9.91256303526217e-3), (ZIGGURAT_1024, 1.226324646353089e-3)]
)
def test_ziggurat_layers_have_equal_areas(tables, v):
    # layer i (1 ≤ i < n) is x_i wide (wn = x / 2^31) and spans f(x_i) to
    # f(x_{i-1}) (fn = f(x), fn[0] = f(0) = 1): every area is v (the top one
    # to 1.2e-9 with 128 layers, whose published r has 13 digits)
    kn, wn, fn = tables
    x = wn[1:] * 2.0**31
    np.testing.assert_allclose(fn[1:], np.exp(-x * x / 2), rtol=1e-15)
    np.testing.assert_allclose(x * (fn[:-1] - fn[1:]), v, rtol=2e-9)
    # the base layer: the rectangle under f(r) and the tail beyond r
    r = x[-1]
    base = r * fn[-1] + np.sqrt(np.pi / 2) * special.erfc(r / np.sqrt(2))
    np.testing.assert_allclose(base, v, rtol=1e-12)


def test_jump_reference_values():
    # xoshiro256's jump from the state {0, 0, 0, 1}: published test data of
    # xoshiro-fortran (github.com/DSCF-1224/xoshiro-fortran, test/README.md;
    # the jump acts on the state, which xoshiro256++ and ** share)
    state = np.array([[0, 0, 0, 1]], dtype=np.uint64)
    jumped = _jumped(state, 2)[:, 1]
    assert [int(w) for w in jumped] == [
        0x934D05E8B2076310,
        0xEABDD0BF76A1BE51,
        0x75DD6A992ACCB1E8,
        0xC660C602A7330187,
    ]


def test_seed_chunk_lanes():
    a = seed_chunk_lanes(np.random.SeedSequence(7), 3)
    assert a.shape == (3, 4, LANES) and a.dtype == np.uint64 and a.flags.c_contiguous
    # a chunk's first stream is seed_states' stream of the chunk, the others its jumps
    chunks = seed_states(np.random.SeedSequence(7), 3)
    np.testing.assert_array_equal(a[:, :, 0], chunks)
    np.testing.assert_array_equal(a[1].T, _jumped(chunks[1:2], LANES).T)
    np.testing.assert_array_equal(a, seed_chunk_lanes(np.random.SeedSequence(7), 3))


def test_fill_keeps_its_promise():
    # full chunks, a count that is not a multiple of LANES, one below LANES;
    # 2000 calls each, so that every path (wedges, tail, new trials) is taken
    state = seed_chunk_lanes(np.random.SeedSequence(11), 3)
    expected_state = state.copy()
    raw = np.empty(CHUNK_NEURONS, dtype=np.uint64)
    out = np.empty(CHUNK_NEURONS)
    for _ in range(2000):
        for c, m in ((0, CHUNK_NEURONS), (1, 44), (2, 3)):
            fill_standard_normal(state, c, m, raw, out)
            np.testing.assert_array_equal(out[:m], _fill_reference(expected_state, c, m))
    np.testing.assert_array_equal(state, expected_state)


def test_fill_is_standard_normal_and_independent():
    (x,) = _lane_normals(3, 1000, 2000)  # 4 chunks, the last of 232 neurons
    _assert_standard_normal(x.ravel())
    n = x.shape[0]

    def mean_corr(a, b):
        return np.mean([np.corrcoef(a[:, k], b[:, k])[0, 1] for k in range(a.shape[1])])

    # neighbours (two streams of a chunk), LANES apart (one stream, two draws
    # in a row), across a chunk's edge, and one step apart
    for r, pairs in (
        (mean_corr(x[:, :-1], x[:, 1:]), 999),
        (mean_corr(x[:, :-LANES], x[:, LANES:]), 1000 - LANES),
        (mean_corr(x[:, 255:256], x[:, 256:257]), 1),
        (mean_corr(x[:-1], x[1:]), 1000),
    ):
        assert abs(r) < 5 / np.sqrt(n * pairs)


# -- goodness of fit on 10⁸ draws -----------------------------------------------------

#: bins of the goodness-of-fit test: width 1/GRID on [-X_MAX, X_MAX), beyond
#: it one bin each side; then neighbours merged until each expects ≥ MIN_EXPECTED
GRID = 256
X_MAX = 8.0
MIN_EXPECTED = 20.0
#: the test fails if either p-value (χ², KS) is below ALPHA / 2 (at most
#: ALPHA of sound generators fail it). On NumPy's normals (PCG64, 100 seeds,
#: ``benchmarks/noise_floor.py gof``) it never failed; χ² rejected 4 % at 0.05
#: and 1 % at 0.01, as it should; KS, on bin edges, 3 % and 0 %
ALPHA = 1e-3


@numba.njit(cache=True)
def _bin(x, counts):
    last = counts.size - 1
    for v in x:
        k = np.int64(np.floor((v + X_MAX) * GRID)) + 1
        counts[min(max(k, 0), last)] += 1


def normal_gof(batches):
    """χ² and Kolmogorov-Smirnov p-values of the draws in ``batches`` (an
    iterable of float64 arrays) against N(0, 1).

    χ² on 4096 bins of width 1/256 (merged in the tails until each expects
    ≥ 20 draws): sensitive to a local defect such as one wrong ziggurat
    layer. KS on the same bin edges (a lower bound of the KS distance, so
    the p-value is conservative): sensitive to a broad one.
    Returns (p_chi2, p_ks, n).
    """
    n_edges = int(2 * X_MAX * GRID) + 1
    counts = np.zeros(n_edges + 1, dtype=np.int64)
    for x in batches:
        _bin(np.ravel(x), counts)
    n = int(counts.sum())
    edges = -X_MAX + np.arange(n_edges) / GRID
    below = special.ndtr(edges)  # P(X < e), accurate left of 0
    above = special.ndtr(-edges)  # P(X > e), accurate right of 0
    p = np.empty(n_edges + 1)
    p[0], p[-1] = below[0], above[-1]
    p[1:-1] = np.where(edges[1:] <= 0, below[1:] - below[:-1], above[:-1] - above[1:])
    # merge neighbours, left to right, until each group expects ≥ MIN_EXPECTED
    group = np.empty(p.size, dtype=np.int64)
    g, acc = 0, 0.0
    for k, e in enumerate(p * n):
        group[k] = g
        acc += e
        if acc >= MIN_EXPECTED:
            g, acc = g + 1, 0.0
    if acc > 0.0:  # the last group is short: into the one before it
        group[group == g] = g - 1
    obs = np.bincount(group, counts)
    exp = np.bincount(group, p) * n
    p_chi2 = stats.chi2.sf(np.sum((obs - exp) ** 2 / exp), obs.size - 1)
    d = np.max(np.abs(np.cumsum(counts[:-1]) / n - below))
    p_ks = stats.kstwobign.sf(d * np.sqrt(n))
    return float(p_chi2), float(p_ks), n


def test_fill_fits_standard_normal_on_1e8_draws():
    p_chi2, p_ks, n = normal_gof(_lane_normals(5, 10_000, 500, 20))
    assert n == 10**8
    assert min(p_chi2, p_ks) > ALPHA / 2
