"""The kernel's random numbers: xoshiro256** and the ziggurat normal."""

import numpy as np
from scipy import special, stats

from nmmval.sim.rng import ZIGGURAT, next_u64, normals, seed_states


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
    x = normals(state, 2_000_000)
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


def test_ziggurat_layers_have_equal_areas():
    # layer i (1 ≤ i < n) is x_i wide (wn = x / 2^31) and spans f(x_i) to
    # f(x_{i-1}) (fn = f(x), fn[0] = f(0) = 1): every area is v (the top one
    # to 1.2e-9, as Marsaglia & Tsang's r has 13 digits)
    v = 9.91256303526217e-3
    kn, wn, fn = ZIGGURAT
    x = wn[1:] * 2.0**31
    np.testing.assert_allclose(fn[1:], np.exp(-x * x / 2), rtol=1e-15)
    np.testing.assert_allclose(x * (fn[:-1] - fn[1:]), v, rtol=2e-9)
    # the base layer: the rectangle under f(r) and the tail beyond r
    r = x[-1]
    base = r * fn[-1] + np.sqrt(np.pi / 2) * special.erfc(r / np.sqrt(2))
    np.testing.assert_allclose(base, v, rtol=1e-12)
