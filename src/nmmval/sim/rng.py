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

:func:`fill_standard_normal` draws a chunk's normals at once, from
:data:`LANES` streams per chunk (:func:`seed_chunk_lanes`: the chunk's
stream, jumped 2^128 draws ahead per lane) advanced side by side in vector
registers, through a ziggurat of 1024 layers whose fast path is done
:data:`LANES` numbers at a time: about a third of the cost per number
(benchmarks/noise_floor.py).
"""

from __future__ import annotations

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic

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
#: the same with 1024 layers, for :func:`fill_standard_normal`: 0.43 % of the
#: draws fall outside the fast path, against 2.8 % with 128 layers, and each
#: of those costs ~40 ns there. r and v solved as Marsaglia & Tsang solved
#: them for 128 and 256 (tests/test_rng.py checks them). Read as a global:
#: Numba embeds its 24 KB in the compiled code, and caches it with it
ZIGGURAT_1024 = np.stack(_tables(1024, 4.038849846109504, 1.226324646353089e-3))
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


#: xoshiro256**'s jump polynomial: the state 2^128 draws ahead (Blackman & Vigna)
_JUMP = np.array(
    [0x180EC6D33CFD0ABA, 0xD5A61266F0C9392C, 0xA9582618E03FC9AA, 0x39ABDC4529B1661C],
    dtype=np.uint64,
)


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


#: the streams that :func:`fill_standard_normal` serves at once: a vector of
#: 8 float64 (one AVX-512 register, two AVX2 ones)
LANES = 8
_F64 = ir.DoubleType()
_I64 = ir.IntType(64)
_VF64 = ir.VectorType(_F64, LANES)
_VI64 = ir.VectorType(_I64, LANES)
_VPTR = ir.VectorType(_F64.as_pointer(), LANES)
#: a vector of pointers in an intrinsic's name: opaque pointers from LLVM 17
_VPTR_NAME = f"v{LANES}p0" if llvm.llvm_version_info[0] >= 17 else f"v{LANES}p0f64"


def _splat(builder, value, vector_type):
    """``value`` in every lane of a vector of ``vector_type``."""
    i32 = ir.IntType(32)
    undef = ir.Constant(vector_type, ir.Undefined)
    one = builder.insert_element(undef, value, ir.Constant(i32, 0))
    return builder.shuffle_vector(one, undef, ir.Constant(ir.VectorType(i32, LANES), [0] * LANES))


def _gather(builder, table, index):
    """``table[index]`` for a vector of indices (``llvm.masked.gather``).

    Numba's LLVM (22, tuned for this Rocket Lake) does not vectorise a loop
    with table look-ups: it does not gather on its own, so
    :func:`_ziggurat_fast` asks for it. Where the machine has no gather
    instruction, LLVM lowers it to one load per lane."""
    base = _splat(builder, builder.ptrtoint(table, _I64), _VI64)
    ptrs = builder.inttoptr(
        builder.add(base, builder.shl(index, ir.Constant(_VI64, [3] * LANES))), _VPTR
    )
    fnty = ir.FunctionType(
        _VF64, [_VPTR, ir.IntType(32), ir.VectorType(ir.IntType(1), LANES), _VF64]
    )
    fn = cgutils.get_or_insert_function(
        builder.module, fnty, f"llvm.masked.gather.v{LANES}f64.{_VPTR_NAME}"
    )
    every = ir.Constant(ir.VectorType(ir.IntType(1), LANES), [1] * LANES)
    return builder.call(
        fn, [ptrs, ir.Constant(ir.IntType(32), 8), every, ir.Constant(_VF64, ir.Undefined)]
    )


@intrinsic
def _ziggurat_fast(typingctx, raw, out, j, kn, wn, mask):
    """The ziggurat's fast path for :data:`LANES` draws at once.

    Writes ``out[j:j+LANES]`` = x of the 64-bit draws ``raw[j:j+LANES]``
    as :func:`_ziggurat_try` computes it (``mask``: the layer count - 1 of
    the tables ``kn, wn``) and returns the bit mask of the lanes whose draw
    fell outside its layer's rectangle: their ``out`` is not (yet) a normal.
    No bounds check."""
    arrays = (raw, types.uint64), (out, types.float64), (kn, types.float64), (wn, types.float64)
    for a, dtype in arrays:
        if not (
            isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype == dtype
        ):
            return None
    sig = types.uint64(raw, out, types.intp, kn, wn, types.uint64)

    def codegen(context, builder, sig, args):
        raw_p, out_p, kn_p, wn_p = (
            context.make_array(sig.args[k])(context, builder, args[k]).data for k in (0, 1, 3, 4)
        )
        j = args[2]
        u = builder.load(builder.bitcast(builder.gep(raw_p, [j]), _VI64.as_pointer()), align=8)
        iz = builder.and_(u, _splat(builder, args[5], _VI64))
        hz = builder.sitofp(
            builder.sub(
                builder.lshr(u, ir.Constant(_VI64, [32] * LANES)),
                ir.Constant(_VI64, [2**31] * LANES),
            ),
            _VF64,
        )
        fabs = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_VF64, [_VF64]), f"llvm.fabs.v{LANES}f64"
        )
        outside = builder.fcmp_unordered(">=", builder.call(fabs, [hz]), _gather(builder, kn_p, iz))
        x = builder.fmul(hz, _gather(builder, wn_p, iz))
        builder.store(x, builder.bitcast(builder.gep(out_p, [j]), _VF64.as_pointer()), align=8)
        return builder.zext(builder.bitcast(outside, ir.IntType(LANES)), _I64)

    return sig, codegen


@intrinsic
def _cttz(typingctx, x):
    """The number of trailing zero bits of ``x`` (uint64, not 0)."""
    sig = types.intp(types.uint64)

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_I64, [_I64, ir.IntType(1)]), "llvm.cttz.i64"
        )
        return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 1)])

    return sig, codegen


def _rotl_vec(builder, x, k):
    """``x`` rotated left by ``k`` bits in every lane."""
    left = builder.shl(x, ir.Constant(_VI64, [k] * LANES))
    return builder.or_(left, builder.lshr(x, ir.Constant(_VI64, [64 - k] * LANES)))


@intrinsic
def _xoshiro_lanes(typingctx, state, c, raw, n_blocks):
    """``n_blocks`` steps of the :data:`LANES` xoshiro256** streams of chunk
    ``c`` (``state[c]``, 4 × LANES uint64, updated): ``raw[k*LANES + l]`` is
    the k-th draw of stream l. The state stays in registers through the loop,
    which LLVM does not manage with arrays. No bounds check."""
    if not (
        isinstance(state, types.Array)
        and state.ndim == 3
        and state.layout == "C"
        and state.dtype == types.uint64
        and isinstance(raw, types.Array)
        and raw.ndim == 1
        and raw.layout == "C"
        and raw.dtype == types.uint64
    ):
        return None
    sig = types.void(state, types.intp, raw, types.intp)

    def codegen(context, builder, sig, args):
        st = context.make_array(sig.args[0])(context, builder, args[0]).data
        out = context.make_array(sig.args[2])(context, builder, args[2]).data
        base = builder.mul(args[1], ir.Constant(_I64, 4 * LANES))
        words = [
            builder.bitcast(
                builder.gep(st, [builder.add(base, ir.Constant(_I64, w * LANES))]),
                _VI64.as_pointer(),
            )
            for w in range(4)
        ]
        # the state in four allocas, which LLVM keeps in registers
        slots = [cgutils.alloca_once(builder, _VI64) for _ in range(4)]
        for slot, ptr in zip(slots, words, strict=True):
            builder.store(builder.load(ptr, align=8), slot)
        with cgutils.for_range(builder, args[3]) as loop:
            s0, s1, s2, s3 = (builder.load(slot) for slot in slots)
            five = ir.Constant(_VI64, [5] * LANES)
            nine = ir.Constant(_VI64, [9] * LANES)
            u = builder.mul(_rotl_vec(builder, builder.mul(s1, five), 7), nine)
            at = builder.gep(out, [builder.mul(loop.index, ir.Constant(_I64, LANES))])
            builder.store(u, builder.bitcast(at, _VI64.as_pointer()), align=8)
            t = builder.shl(s1, ir.Constant(_VI64, [17] * LANES))
            s2 = builder.xor(s2, s0)
            s3 = builder.xor(s3, s1)
            s1 = builder.xor(s1, s2)
            s0 = builder.xor(s0, s3)
            s2 = builder.xor(s2, t)
            s3 = _rotl_vec(builder, s3, 45)
            for slot, value in zip(slots, (s0, s1, s2, s3), strict=True):
                builder.store(value, slot)
        for slot, ptr in zip(slots, words, strict=True):
            builder.store(builder.load(slot), ptr, align=8)
        return context.get_dummy_value()

    return sig, codegen


@numba.njit
def fill_standard_normal(state, c, m, raw, out):
    """``m`` N(0, 1) numbers from chunk ``c``'s streams into ``out[:m]``.

    Parameters
    ----------
    state : ndarray, uint64, (n_chunks, 4, LANES)
        Each chunk's :data:`LANES` xoshiro256** streams
        (:func:`seed_chunk_lanes`); ``state[c]`` is updated in place.
    c, m : int
        The chunk and the count.
    raw : ndarray, uint64
        Scratch space, at least ``m`` rounded up to a multiple of
        :data:`LANES` long.
    out : ndarray, float64
        The normals, as long as ``raw``; past ``m``, unspecified values.

    Notes
    -----
    Normal j comes from stream ``j % LANES``: its 64-bit draw number
    ``j // LANES`` of the call goes through the ziggurat with the tables
    :data:`ZIGGURAT_1024`; the 0.43 % of draws that fall outside their layer's
    rectangle are finished, in the order of j, with draws that the stream
    makes after those. So every number uses draws of its own, and the
    numbers depend on the chunk's streams, ``m`` and the calls before,
    never on the thread. The work is done in three passes: the draws, all
    streams at once (:func:`_xoshiro_lanes`), the ziggurat's fast path
    :data:`LANES` at a time (:func:`_ziggurat_fast`, table look-ups by
    vector gather), then one number at a time the draws outside their
    rectangle (wedges, tail, new trials).

    Not inlined, and no array goes from it to a function but to the
    intrinsics (the tables are a global): so Numba prunes every reference
    count, and neither it nor its caller updates one per call (an atomic
    update, on a cache line that the threads share).
    """
    n_blocks = (m + LANES - 1) // LANES
    _xoshiro_lanes(state, c, raw, n_blocks)
    kn, wn, fn = ZIGGURAT_1024[0], ZIGGURAT_1024[1], ZIGGURAT_1024[2]
    mask = np.uint64(kn.size - 1)
    # 64 numbers (8 blocks) at a time: the fast path, then the draws outside
    # their rectangle by their bits in ``outside``: no branch per block
    per_word = 64 // LANES
    for k0 in range(0, n_blocks, per_word):
        outside = np.uint64(0)
        for k in range(k0, min(k0 + per_word, n_blocks)):
            fast = _ziggurat_fast(raw, out, k * LANES, kn, wn, mask)
            outside |= fast << np.uint64((k - k0) * LANES)
        if m - k0 * LANES < 64:
            outside &= (np.uint64(1) << np.uint64(m - k0 * LANES)) - np.uint64(1)
        while outside:
            j = k0 * LANES + _cttz(outside)
            outside &= outside - np.uint64(1)
            lane = j % LANES
            s0, s1 = state[c, 0, lane], state[c, 1, lane]
            s2, s3 = state[c, 2, lane], state[c, 3, lane]
            x, accepted, s0, s1, s2, s3 = _ziggurat_try(raw[j], s0, s1, s2, s3, kn, wn, fn)
            if not accepted:
                x, s0, s1, s2, s3 = standard_normal(s0, s1, s2, s3, kn, wn, fn)
            out[j] = x
            state[c, 0, lane], state[c, 1, lane] = s0, s1
            state[c, 2, lane], state[c, 3, lane] = s2, s3


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


@numba.njit(cache=True)
def _jumped(states, lanes):
    """(4, n × lanes) uint64: for each of the n ``states``, itself and its
    ``lanes - 1`` successive jumps (xoshiro256**'s ``jump``)."""
    n_streams = states.shape[0]
    out = np.empty((4, n_streams * lanes), dtype=np.uint64)
    for c in range(n_streams):
        s0, s1, s2, s3 = states[c, 0], states[c, 1], states[c, 2], states[c, 3]
        for k in range(lanes):
            i = c * lanes + k
            out[0, i], out[1, i], out[2, i], out[3, i] = s0, s1, s2, s3
            j0 = j1 = j2 = j3 = np.uint64(0)
            for word in _JUMP:
                for b in range(64):
                    if word & (np.uint64(1) << np.uint64(b)):
                        j0 ^= s0
                        j1 ^= s1
                        j2 ^= s2
                        j3 ^= s3
                    _, s0, s1, s2, s3 = next_u64(s0, s1, s2, s3)
            s0, s1, s2, s3 = j0, j1, j2, j3
    return out


def seed_chunk_lanes(seed_seq: np.random.SeedSequence, n_chunks: int) -> np.ndarray:
    """States of the :data:`LANES` xoshiro256** streams of each of
    ``n_chunks`` chunks for :func:`fill_standard_normal`, shape
    (n_chunks, 4, LANES) uint64.

    Chunk c's first stream is the one :func:`seed_states` gives chunk c;
    each further one is the one before it jumped 2^128 draws ahead
    (xoshiro256**'s ``jump``), so the streams of a chunk never overlap.
    """
    lanes = _jumped(seed_states(seed_seq, n_chunks), LANES)
    return np.ascontiguousarray(lanes.reshape(4, n_chunks, LANES).transpose(1, 0, 2))
