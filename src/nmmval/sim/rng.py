"""Random numbers inside the Numba kernels: xoshiro256** and a ziggurat normal.

The membrane noise needs N·steps Gaussian numbers (3·10⁹ for one paper
cell). They are drawn inside the kernel, per fixed chunk of neurons, each
chunk from its own xoshiro256** stream (Blackman & Vigna 2018) seeded from
the cell's ``noise`` :class:`numpy.random.SeedSequence`. The chunk layout,
not the thread count, decides which stream serves which neuron, so results
are bitwise independent of the number of threads.

Normals come from the Marsaglia & Tsang (2000) ziggurat with 128 layers;
the layer index and the 32-bit value are taken from disjoint bits of one
64-bit draw (Doornik 2005's remedy for the original's correlation).
"""

from __future__ import annotations

import numba
import numpy as np

_M1 = 2147483648.0


def _tables(n, r, v):
    """Marsaglia & Tsang's tables (kn, wn, fn) of the ziggurat with ``n``
    layers (a power of 2) of area ``v``, the base one ending at ``r``."""
    kn = np.zeros(n)
    wn = np.zeros(n)
    fn = np.zeros(n)
    dn = tn = r
    q = v / np.exp(-0.5 * dn * dn)
    kn[0] = (dn / q) * _M1
    kn[1] = 0.0
    wn[0] = q / _M1
    wn[n - 1] = dn / _M1
    fn[0] = 1.0
    fn[n - 1] = np.exp(-0.5 * dn * dn)
    for i in range(n - 2, 0, -1):
        dn = np.sqrt(-2.0 * np.log(v / dn + np.exp(-0.5 * dn * dn)))
        kn[i + 1] = (dn / tn) * _M1
        tn = dn
        fn[i] = np.exp(-0.5 * dn * dn)
        wn[i] = dn / _M1
    return kn, wn, fn


#: ziggurat tables (kn, wn, fn) of 128 layers (Marsaglia & Tsang's r and v),
#: passed to the kernels as an argument (Numba cannot cache functions that
#: read large global arrays)
ZIGGURAT = np.stack(_tables(128, 3.442619855899, 9.91256303526217e-3))
_U53 = 1.0 / 9007199254740992.0


@numba.njit(inline="always")
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@numba.njit(inline="always")
def next_u64(s0, s1, s2, s3):
    """One xoshiro256** step: returns (value, s0, s1, s2, s3)."""
    result = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    return result, s0, s1, s2, s3


@numba.njit(inline="always")
def uniform_open0(s0, s1, s2, s3):
    """A uniform number in (0, 1] with 53 random bits: returns (u, s0, s1, s2, s3)."""
    u, s0, s1, s2, s3 = next_u64(s0, s1, s2, s3)
    return (np.float64(u >> np.uint64(11)) + 1.0) * _U53, s0, s1, s2, s3


@numba.njit(inline="always")
def _ziggurat_try(u, s0, s1, s2, s3, kn, wn, fn):
    """One ziggurat trial from its 64-bit draw ``u`` (already taken from the
    stream): returns (x, accepted, s0, s1, s2, s3).

    The rare slow part (the wedges and the tail) draws further numbers from
    the stream. A trial that is not accepted is discarded whole: the caller
    starts a new one.
    """
    n_layers = kn.size
    iz = np.int64(u & np.uint64(n_layers - 1))
    hz = np.float64(np.int64(u >> np.uint64(32)) - np.int64(2147483648))
    x = hz * wn[iz]
    if abs(hz) < kn[iz]:
        return x, True, s0, s1, s2, s3
    if iz == 0:
        # the tail beyond r, by Marsaglia's (1964) method
        r = wn[n_layers - 1] * _M1  # exact: wn[-1] is r / 2^31
        while True:
            a, s0, s1, s2, s3 = uniform_open0(s0, s1, s2, s3)
            b, s0, s1, s2, s3 = uniform_open0(s0, s1, s2, s3)
            xt = -np.log(a) / r
            y = -np.log(b)
            if y + y >= xt * xt:
                break
        return (r + xt if hz > 0 else -r - xt), True, s0, s1, s2, s3
    w, s0, s1, s2, s3 = uniform_open0(s0, s1, s2, s3)
    return x, fn[iz] + w * (fn[iz - 1] - fn[iz]) < np.exp(-0.5 * x * x), s0, s1, s2, s3


@numba.njit(inline="always")
def standard_normal(s0, s1, s2, s3, kn, wn, fn):
    """One N(0, 1) number by the ziggurat: returns (x, s0, s1, s2, s3).

    ``kn, wn, fn`` are the rows of :data:`ZIGGURAT`, taken once outside the
    caller's loop. Inlined into the caller at Numba level: a call per number
    (and the row views it made) tripled the cost of a draw.
    """
    while True:
        u, s0, s1, s2, s3 = next_u64(s0, s1, s2, s3)
        x, accepted, s0, s1, s2, s3 = _ziggurat_try(u, s0, s1, s2, s3, kn, wn, fn)
        if accepted:
            return x, s0, s1, s2, s3


def seed_states(seed_seq: np.random.SeedSequence, n_streams: int) -> np.ndarray:
    """States of ``n_streams`` independent xoshiro256** streams, shape (n, 4) uint64.

    Each stream is seeded from its own child of ``seed_seq`` (never all zero).
    """
    states = np.empty((n_streams, 4), dtype=np.uint64)
    for i, child in enumerate(seed_seq.spawn(n_streams)):
        states[i] = child.generate_state(4, dtype=np.uint64)
        if not states[i].any():
            states[i, 0] = 1
    return states


@numba.njit(cache=True)
def _normals(state, n, zig):
    kn, wn, fn = zig[0], zig[1], zig[2]
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    out = np.empty(n)
    for i in range(n):
        out[i], s0, s1, s2, s3 = standard_normal(s0, s1, s2, s3, kn, wn, fn)
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3
    return out


def normals(state: np.ndarray, n: int) -> np.ndarray:
    """Draw ``n`` normals from one stream ``state`` (4 uint64, updated in place)."""
    return _normals(state, n, ZIGGURAT)
