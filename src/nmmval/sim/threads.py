"""How many threads the simulation kernel may use, and when to use fewer.

The kernel's parts meet at a barrier after every step (:mod:`nmmval.sim.barrier`),
so a step lasts as long as its slowest part. When another process holds one
of the cores, the part on that core runs only in its time slices and every
step waits for one: two threads then run many times slower than one
(benchmarks/README.md, "Busy machine"). Two defences:

- :func:`available_cpus`: the default thread count is what the process may
  really use (its CPU affinity mask, a cgroup CPU quota, Slurm's
  ``SLURM_CPUS_PER_TASK``), not the machine's core count.
- :class:`Governor`: between blocks of steps, the kernel's measured barrier
  sleeps say whether the cores are oversubscribed; it then runs on fewer
  threads and probes more again later, with an exponential back-off.
  Results are the same bits for any thread count (:mod:`nmmval.sim.lif`), so
  this changes only the speed.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

#: a kernel call counts as oversubscribed when its parts slept (futex) at
#: the barriers more than this many times per step; idle, they sleep at none
#: or a few of a block's steps
SLEEP_FRACTION = 0.05
#: steps of a probe of more threads, and of the first call on them: on a busy
#: machine each step costs a scheduler time slice, so few, and enough for the
#: barrier sleeps and the time per step to tell
PROBE_STEPS = 20
#: steps run on more threads, in calls of :data:`PROBE_STEPS`, before a
#: return to them (or the run's start on them) counts as confirmed
CONFIRM_STEPS = 10 * PROBE_STEPS
#: kernel calls on fewer threads before the first probe of more; doubled
#: after each failed probe or return, up to :data:`MAX_BACKOFF_CALLS`, and
#: reset by a confirmed return
FIRST_BACKOFF_CALLS = 4
MAX_BACKOFF_CALLS = 256


def _cgroup_v2_quota(root: Path, rel: str) -> float:
    """The smallest ``cpu.max`` quota (CPUs) on the path from ``rel`` up to ``root``."""
    best = math.inf
    path = root / rel.lstrip("/")
    while True:
        try:
            quota, period = (path / "cpu.max").read_text().split()[:2]
            if quota != "max":
                best = min(best, int(quota) / int(period))
        except (OSError, ValueError):
            pass
        if path == root or root not in path.parents:
            return best
        path = path.parent


def _cgroup_v1_quota(root: Path, rel: str) -> float:
    """``cpu.cfs_quota_us / cpu.cfs_period_us`` of the process's cpu cgroup (v1)."""
    for base in (root / "cpu" / rel.lstrip("/"), root / "cpu,cpuacct" / rel.lstrip("/")):
        try:
            quota = int((base / "cpu.cfs_quota_us").read_text())
            period = int((base / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        if quota > 0 and period > 0:
            return quota / period
    return math.inf


def cgroup_cpu_quota(
    proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")
) -> float:
    """The CPU quota of this process's cgroup, in CPUs (``inf`` if none).

    Reads cgroup v2's ``cpu.max`` along the cgroup's path (a parent's quota
    binds too) or cgroup v1's CFS quota and period.
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return math.inf
    best = math.inf
    for line in lines:
        hier, controllers, rel = line.split(":", 2)
        if hier == "0" and controllers == "":
            best = min(best, _cgroup_v2_quota(root, rel))
        elif "cpu" in controllers.split(","):
            best = min(best, _cgroup_v1_quota(root, rel))
    return best


def available_cpus(environ: dict | None = None) -> int:
    """CPUs this process may use: the fewest of its affinity mask, its
    cgroup's CPU quota (rounded up) and ``SLURM_CPUS_PER_TASK`` where set;
    at least 1."""
    env = os.environ if environ is None else environ
    limits = [
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    ]
    quota = cgroup_cpu_quota()
    if math.isfinite(quota):
        limits.append(math.ceil(quota))
    slurm = env.get("SLURM_CPUS_PER_TASK", "")
    if slurm.strip().isdigit() and int(slurm) > 0:
        limits.append(int(slurm))
    return max(1, min(limits))


@dataclass
class Governor:
    """Chooses the kernel's thread count call by call (at most ``n_max``).

    On n > 1 threads, calls are short (:data:`PROBE_STEPS` steps) until
    :data:`CONFIRM_STEPS` steps have run without the parts oversleeping at
    the barriers, then whole blocks. A call whose parts slept more than
    :data:`SLEEP_FRACTION` times per step says the cores are
    oversubscribed: the next calls run on n // 2 threads. There,
    after ``backoff`` calls, a probe of :data:`PROBE_STEPS` steps tries one
    thread more; it is taken if its parts did not oversleep and its time per
    step was no worse. A failed probe, or a drop before the return has run
    :data:`CONFIRM_STEPS` steps, doubles the back-off; a confirmed return
    resets it. So a wrong guess costs a few short calls, and a busy machine
    a few probes per run. The first drop and the first confirmed return are
    printed once to ``log``, after ``prefix`` (like the progress lines, so
    that they do not read as errors); ``steps_by_threads`` counts the steps run on
    each thread count.
    """

    n_max: int
    log: TextIO | None = sys.stderr
    prefix: str = "nmmval"
    n: int = 0
    unconfirmed_steps: int = CONFIRM_STEPS
    confirmed: bool = False
    backoff: int = FIRST_BACKOFF_CALLS
    wait: int = FIRST_BACKOFF_CALLS
    s_per_step: dict = field(default_factory=dict)
    steps_by_threads: dict = field(default_factory=dict)
    _said: set = field(default_factory=set)

    def __post_init__(self):
        self.n = self.n_max

    def _say(self, kind: str, text: str) -> None:
        if kind not in self._said and self.log is not None:
            self._said.add(kind)
            print(f"{self.prefix}: {text}", file=self.log, flush=True)

    def _back_off(self) -> None:
        self.backoff = min(2 * self.backoff, MAX_BACKOFF_CALLS)
        self.wait = self.backoff

    def next_segment(self, remaining: int) -> tuple[int, int]:
        """The thread count and the number of steps (at most ``remaining``)
        of the next kernel call."""
        if self.n < self.n_max and self.wait <= 0:
            return self.n + 1, min(PROBE_STEPS, remaining)
        if self.n == 1 or self.confirmed:
            return self.n, remaining
        return self.n, min(PROBE_STEPS, remaining)

    def done(self, n: int, n_steps: int, seconds: float, sleeps: int) -> None:
        """Account a kernel call of ``n_steps`` steps run on ``n`` threads in
        ``seconds``, whose parts slept ``sleeps`` times in all at the barriers."""
        self.steps_by_threads[n] = self.steps_by_threads.get(n, 0) + n_steps
        per_step = seconds / max(n_steps, 1)
        crowded = n > 1 and sleeps > SLEEP_FRACTION * n_steps
        if n > self.n:  # a probe
            if not crowded and per_step <= self.s_per_step.get(self.n, math.inf):
                self.n, self.confirmed = n, False
                self.unconfirmed_steps = CONFIRM_STEPS - n_steps
            else:
                self._back_off()
        elif crowded:
            self.n = max(1, n // 2)
            if self.confirmed:
                self.wait = self.backoff
            else:  # the run's first steps, or a return, failed
                self._back_off()
            self.confirmed, self.unconfirmed_steps = False, CONFIRM_STEPS
            self._say(
                "down",
                f"cores oversubscribed (the kernel's threads slept {sleeps} times in "
                f"{n_steps} steps): running on {self.n} of {self.n_max} threads "
                "while they are (same results)",
            )
        else:
            if n > 1 and not self.confirmed:
                self.unconfirmed_steps -= n_steps
                if self.unconfirmed_steps <= 0:
                    self.confirmed, self.backoff = True, FIRST_BACKOFF_CALLS
                    if "down" in self._said and n == self.n_max:
                        self._say("up", f"cores free again: back to {n} threads")
            if self.n < self.n_max:
                self.wait -= 1
        old = self.s_per_step.get(n)
        self.s_per_step[n] = per_step if old is None else 0.5 * (old + per_step)
