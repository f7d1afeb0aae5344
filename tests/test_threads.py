"""The kernel's thread count: what the process may use, and fewer while the
cores are oversubscribed, with the same bits (nmmval.sim.threads)."""

import io
import math

import numba
import numpy as np
import pytest

from nmmval.sim import lif, threads
from nmmval.sim.threads import PROBE_STEPS, SLEEP_FRACTION, Governor, available_cpus

from conftest import small_params


# ------------------------------------------------------------ available CPUs
def _cgroup_tree(tmp_path, lines, files):
    tmp_path.mkdir(parents=True, exist_ok=True)
    proc = tmp_path / "cgroup"
    proc.write_text("\n".join(lines) + "\n")
    root = tmp_path / "sys"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return proc, root


def test_cgroup_v2_quota_binds_along_the_path(tmp_path):
    proc, root = _cgroup_tree(
        tmp_path,
        ["0::/job/step"],
        {"job/cpu.max": "150000 100000\n", "job/step/cpu.max": "max 100000\n"},
    )
    assert threads.cgroup_cpu_quota(proc, root) == 1.5


def test_cgroup_v1_quota_and_no_quota(tmp_path):
    proc, root = _cgroup_tree(
        tmp_path,
        ["4:cpu,cpuacct:/slurm/job1", "3:memory:/slurm/job1"],
        {
            "cpu,cpuacct/slurm/job1/cpu.cfs_quota_us": "300000\n",
            "cpu,cpuacct/slurm/job1/cpu.cfs_period_us": "100000\n",
        },
    )
    assert threads.cgroup_cpu_quota(proc, root) == 3.0
    proc, root = _cgroup_tree(tmp_path / "none", ["0::/"], {"cpu.max": "max 100000\n"})
    assert threads.cgroup_cpu_quota(proc, root) == math.inf
    assert threads.cgroup_cpu_quota(tmp_path / "missing", root) == math.inf


def test_available_cpus_is_the_fewest_of_mask_quota_and_slurm(monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(threads, "cgroup_cpu_quota", lambda: math.inf)
    assert available_cpus({}) == 4
    assert available_cpus({"SLURM_CPUS_PER_TASK": "2"}) == 2
    assert available_cpus({"SLURM_CPUS_PER_TASK": "8"}) == 4
    assert available_cpus({"SLURM_CPUS_PER_TASK": "junk"}) == 4
    monkeypatch.setattr(threads, "cgroup_cpu_quota", lambda: 2.5)
    assert available_cpus({}) == 3
    monkeypatch.setattr(threads, "cgroup_cpu_quota", lambda: 0.2)
    assert available_cpus({}) == 1


def test_simulate_defaults_to_the_available_cpus(monkeypatch):
    monkeypatch.setattr(lif, "available_cpus", lambda: 1)
    rec = lif.simulate(small_params(), 0.1, 0.8, 0)
    assert set(rec.steps_by_threads) == {1}


# ------------------------------------------------------------------ governor
def _drive(gov, crowded_calls, n_calls, steps=200):
    """Feed ``gov`` ``n_calls`` kernel calls; a call on > 1 threads is crowded
    when its index is in ``crowded_calls``. Returns the (threads, steps) asked."""
    asked = []
    for i in range(n_calls):
        n, m = gov.next_segment(steps)
        asked.append((n, m))
        sleeps = m if (n > 1 and i in crowded_calls) else 0
        gov.done(n, m, 1e-5 * m / n if not sleeps else 1e-3 * m, sleeps)
    return asked


def test_governor_keeps_all_threads_on_a_free_machine():
    gov = Governor(2, log=None)
    asked = _drive(gov, set(), 50)
    # short first calls, then whole blocks
    k = threads.CONFIRM_STEPS // PROBE_STEPS
    assert [m for _, m in asked[: k + 2]] == [PROBE_STEPS] * k + [200, 200]
    assert all(n == 2 for n, _ in asked) and gov.confirmed


def test_governor_one_thread_asks_for_whole_blocks():
    gov = Governor(1, log=None)
    assert _drive(gov, set(), 3) == [(1, 200)] * 3


def test_a_wrong_return_costs_short_calls_and_doubles_the_backoff():
    gov = Governor(2, log=None)
    gov.done(2, PROBE_STEPS, 1e-2, PROBE_STEPS)  # crowded at once
    assert gov.n == 1 and gov.backoff == 2 * threads.FIRST_BACKOFF_CALLS
    for _ in range(gov.wait):
        n, m = gov.next_segment(200)
        assert n == 1
        gov.done(n, m, 1e-3, 0)
    n, m = gov.next_segment(200)
    assert (n, m) == (2, PROBE_STEPS)
    gov.done(n, m, 1e-5, 0)  # a lucky probe: taken
    n, m = gov.next_segment(200)
    assert (n, m) == (2, PROBE_STEPS)  # short calls while the return is unconfirmed
    gov.done(n, m, 1e-2, m)  # crowded again
    assert gov.n == 1 and gov.backoff == 4 * threads.FIRST_BACKOFF_CALLS


def test_governor_drops_at_once_probes_with_backoff_and_returns():
    log = io.StringIO()
    gov = Governor(2, log=log)
    busy = set(range(0, 200))  # the cores are busy for the first 200 calls
    asked = _drive(gov, busy, 400)
    assert asked[0] == (2, PROBE_STEPS) and asked[1][0] == 1
    probes = [i for i, (n, m) in enumerate(asked[1:200], 1) if n == 2]
    assert all(asked[i][1] == PROBE_STEPS for i in probes)
    gaps = np.diff(probes)
    assert len(probes) <= 8 and np.all(np.diff(gaps) >= 0), probes  # back-off grows
    assert asked[-1][0] == 2  # back on two threads once the cores are free
    text = log.getvalue().splitlines()
    assert len(text) == 2 and "oversubscribed" in text[0] and "back to 2" in text[1]


def test_governor_threshold_tolerates_a_stray_sleep():
    gov = Governor(2, log=None)
    gov.done(2, 200, 1e-3, int(SLEEP_FRACTION * 200))
    assert gov.next_segment(200)[0] == 2
    gov.done(2, 200, 1e-3, int(SLEEP_FRACTION * 200) + 1)
    assert gov.next_segment(200)[0] == 1


def test_governor_keeps_fewer_threads_when_more_are_slower():
    gov = Governor(2, log=None)
    gov.done(2, PROBE_STEPS, 1e-4, PROBE_STEPS)  # crowded: down to 1
    for _ in range(10):
        n, m = gov.next_segment(200)
        gov.done(n, m, 1e-6 * m if n == 1 else 1e-5 * m, 0)  # 2 threads, no sleeps, slower
    assert gov.n == 1 and gov.backoff > threads.FIRST_BACKOFF_CALLS


# ------------------------------------------------------- same bits, any switch
class _Scripted(Governor):
    """Switches between 1 and 2 threads on a fixed schedule of odd lengths."""

    schedule = [(2, 7), (1, 150), (2, 43), (2, 200), (1, 1), (2, 199), (1, 60)]

    def next_segment(self, remaining):
        k = getattr(self, "_k", 0)
        self._k = k + 1
        n, m = self.schedule[k % len(self.schedule)]
        return n, min(m, remaining)


def _bits(rec):
    return [
        rec.V_mV.tobytes(),
        rec.phi_E.tobytes(),
        rec.phi_I.tobytes(),
        rec.phi_ext.tobytes(),
        rec.spike_neuron.tobytes(),
        rec.spike_step.tobytes(),
    ]


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")
@pytest.mark.parametrize("p, lam", [(0.1, 0.8), (0.7, 0.9), (1.0, 1.0)])
def test_switching_threads_between_calls_gives_the_same_bits(monkeypatch, p, lam):
    params = small_params(**{"network.N": 1500})
    fixed = lif.simulate(params, p, lam, 3, threads=1)
    monkeypatch.setattr(lif, "Governor", _Scripted)
    switched = lif.simulate(params, p, lam, 3, threads=2)
    assert set(switched.steps_by_threads) == {1, 2}
    assert fixed.spike_neuron.size > 0
    assert _bits(switched) == _bits(fixed)
