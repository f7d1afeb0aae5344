"""A step barrier for the threads of one Numba parallel region.

:func:`nmmval.sim.kernel.run_block` keeps one parallel region open for a whole
block of steps, one part of the network per thread, and meets at a barrier
after every step instead of opening a region per step (1.5-2.5 µs of fork
and join on a ~30 µs step). Numba has no atomics, so they are written here
as LLVM intrinsics.

Each part has a step counter. A part that has finished step n stores n in
its counter (sequentially consistent) and, if another part sleeps on it,
wakes it. A waiting part reads the others' counters with acquire loads: the
release/acquire pair orders every plain write of a part before the barrier
ahead of every read after it. It spins for :data:`SPIN_CHECKS` checks, then
sleeps in the kernel (Linux ``futex``), as GNU OpenMP's barrier does: on
an oversubscribed node a spinning (or merely yielding) waiter holds a core
that the thread it waits for needs, and each step then costs a scheduler
time slice. The sleeper first registers in the counter's ``sleepers`` word,
then rereads the counter; the arriving part writes its counter, then reads
``sleepers``. Both sequentially consistent, so one of them sees the other,
and a wake-up is never missed. Where there is no futex (not Linux), the
waiter yields its core at every check instead.
"""

from __future__ import annotations

import platform
import sys

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic

#: int32 slots between the parts' counters: 128 bytes, so that no two parts'
#: counters share a cache line or an adjacent-line prefetch pair
SLOT = 32
#: checks of a counter, each after a spin-wait hint, before the waiting part
#: sleeps: ~0.3 ms at 15 ns a check (x86 ``pause``), as ``GOMP_SPINCOUNT=20000``,
#: which nmmval sets for OpenMP's own waits (see ``nmmval/__init__.py``)
SPIN_CHECKS = 20_000

#: the futex system call's number, by machine (Linux only)
_SYS_FUTEX = {"x86_64": 202, "aarch64": 98, "ppc64le": 221, "riscv64": 98}.get(
    platform.machine() if sys.platform.startswith("linux") else "", 0
)
_FUTEX_WAIT_PRIVATE = 128
_FUTEX_WAKE_PRIVATE = 129
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)


def _slot_ptr(context, builder, sig, args):
    ary = context.make_array(sig.args[0])(context, builder, args[0])
    return builder.gep(ary.data, [args[1]])


def _atomic_load(ordering):
    """An intrinsic ``load(arr, idx)``: ``arr[idx]`` (int32), an atomic load
    with the given LLVM memory ordering."""

    @intrinsic
    def load(typingctx, arr, idx):
        sig = types.int32(arr, types.intp)

        def codegen(context, builder, sig, args):
            return builder.load_atomic(_slot_ptr(context, builder, sig, args), ordering, 4)

        return sig, codegen

    return load


_load = _atomic_load("acquire")
_load_seq = _atomic_load("seq_cst")


@intrinsic
def _store_seq(typingctx, arr, idx, val):
    """``arr[idx] = val`` (int32), a sequentially consistent store."""
    sig = types.void(arr, types.intp, types.int32)

    def codegen(context, builder, sig, args):
        builder.store_atomic(args[2], _slot_ptr(context, builder, sig, args), "seq_cst", 4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _add_seq(typingctx, arr, idx, val):
    """``arr[idx] += val`` (int32), atomically, sequentially consistent."""
    sig = types.void(arr, types.intp, types.int32)

    def codegen(context, builder, sig, args):
        builder.atomic_rmw("add", _slot_ptr(context, builder, sig, args), args[2], "seq_cst")
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _futex(typingctx, arr, idx, op, val):
    """``futex(&arr[idx], op, val)`` through libc's ``syscall``; where there
    is no futex, ``sched_yield()`` instead (both only ever retried)."""
    sig = types.void(arr, types.intp, types.int32, types.int32)

    def codegen(context, builder, sig, args):
        if _SYS_FUTEX:
            fnty = ir.FunctionType(_I64, [_I64], var_arg=True)
            fn = cgutils.get_or_insert_function(builder.module, fnty, "syscall")
            ptr = _slot_ptr(context, builder, sig, args)
            null = ir.Constant(ir.IntType(8).as_pointer(), None)
            builder.call(
                fn,
                [
                    ir.Constant(_I64, _SYS_FUTEX),
                    ptr,
                    args[2],
                    args[3],
                    null,
                    null,
                    ir.Constant(_I32, 0),
                ],
            )
        else:
            fnty = ir.FunctionType(_I32, [])
            builder.call(cgutils.get_or_insert_function(builder.module, fnty, "sched_yield"), [])
        return context.get_dummy_value()

    return sig, codegen


#: the spin-wait hint, by machine, as an LLVM intrinsic and its argument: a
#: pause of ~10-140 cycles that frees the core for a sibling hyper-thread and
#: spares the pipeline flush on leaving the loop
_SPIN_HINT = {
    "x86_64": ("llvm.x86.sse2.pause", None),
    "AMD64": ("llvm.x86.sse2.pause", None),
    "aarch64": ("llvm.aarch64.hint", 1),
    "arm64": ("llvm.aarch64.hint", 1),
}.get(platform.machine())


@intrinsic
def _spin_hint(typingctx):
    sig = types.void()

    def codegen(context, builder, sig, args):
        if _SPIN_HINT is not None:
            name, arg = _SPIN_HINT
            argtys = [] if arg is None else [_I32]
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), argtys), name
            )
            builder.call(fn, [] if arg is None else [ir.Constant(_I32, arg)])
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(inline="always")
def arrive_and_wait(counters, part, n_parts, step):
    """Part ``part`` has finished step ``step`` (≥ 1, increasing); return
    when all ``n_parts`` parts have, with the number of times this part
    slept in the kernel while it waited (0 when the others came within the
    spin; :class:`nmmval.sim.threads.Governor` reads oversubscription from it).

    ``counters`` is an int32 array of ``n_parts * SLOT`` zeros at the start
    of the region (slot ``t * SLOT``: part t's counter; the next: how many
    parts sleep on it). Every part must call this once per step, on its own
    thread: a part waiting on a part queued behind it on the same thread
    would wait forever.
    """
    me = part * SLOT
    n = np.int32(step)
    _store_seq(counters, me, n)
    if _load_seq(counters, me + 1) > 0:
        _futex(counters, me, np.int32(_FUTEX_WAKE_PRIVATE), np.int32(2**31 - 1))
    sleeps = 0
    for other in range(n_parts):
        at = other * SLOT
        checks = 0
        while _load(counters, at) < n:
            _spin_hint()
            checks += 1
            if checks > SPIN_CHECKS:
                _add_seq(counters, at + 1, np.int32(1))
                seen = _load_seq(counters, at)
                if seen < n:
                    _futex(counters, at, np.int32(_FUTEX_WAIT_PRIVATE), seen)
                    sleeps += 1
                _add_seq(counters, at + 1, np.int32(-1))
    return sleeps
