"""The kernel's step barrier (nmmval.sim.barrier): no part passes step s before
every part has finished it, and what a part wrote before the barrier is
seen after it, also when the waiting parts have gone to sleep."""

import numba
import numpy as np
import pytest
from numba import prange

from nmmval.sim.barrier import SLOT, arrive_and_wait

#: int64 slots between the parts' step records (128 bytes)
STRIDE = 16


@numba.njit(parallel=True)
def _steps(n_steps, n_parts, hold_every, hold_iters):
    """Each part records its step, meets the others, then checks theirs.

    Part 0 is held (a busy loop of ``hold_iters``) every ``hold_every``
    steps, long enough for the others to stop spinning and sleep. Returns
    per part the count of records seen outside {s, s + 1} after the barrier
    of step s (a part that passed the barrier may be one step ahead, never
    two), and the number of steps each part completed.
    """
    counters = np.zeros(n_parts * SLOT, dtype=np.int32)
    record = np.zeros(n_parts * STRIDE, dtype=np.int64)
    bad = np.zeros(n_parts, dtype=np.int64)
    done = np.zeros(n_parts, dtype=np.int64)
    sink = np.zeros(n_parts * STRIDE)
    for t in prange(n_parts):
        for s in range(1, n_steps + 1):
            if t == 0 and s % hold_every == 0:
                x = 0.0
                for i in range(hold_iters):
                    x += np.sqrt(i + x * 1e-12)
                sink[0] += x
            record[t * STRIDE] = s
            arrive_and_wait(counters, t, n_parts, s)
            for o in range(n_parts):
                r = record[o * STRIDE]
                if r < s or r > s + 1:
                    bad[t] += 1
            done[t] += 1
    return bad, done


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")
def test_no_part_passes_a_step_early_and_sleepers_wake():
    n_parts = numba.get_num_threads()
    # ~1-3 ms of holding every 50th step: well past the ~0.3 ms of spinning
    bad, done = _steps(2000, n_parts, 50, 1_000_000)
    assert done.tolist() == [2000] * n_parts
    assert bad.tolist() == [0] * n_parts
