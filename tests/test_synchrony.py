"""Spike-contrast against Elephant's reference implementation and known answers."""

import math

import neo
import numba
import numpy as np
import pytest
import quantities as pq
from elephant.spike_train_synchrony import spike_contrast as elephant_spike_contrast

from nmmval.analysis.synchrony import spike_contrast


def _elephant(times_ms, ids, n_neurons, t_start_ms, t_stop_ms, min_bin_ms=10.0):
    lo = min(t_start_ms, float(np.min(times_ms, initial=t_start_ms)))
    hi = max(t_stop_ms, float(np.max(times_ms, initial=t_stop_ms)))
    trains = [
        neo.SpikeTrain(np.sort(times_ms[ids == i]) * pq.ms, t_start=lo * pq.ms, t_stop=hi * pq.ms)
        for i in range(n_neurons)
    ]
    return elephant_spike_contrast(
        trains, t_start=t_start_ms * pq.ms, t_stop=t_stop_ms * pq.ms, min_bin=min_bin_ms * pq.ms
    )


def _poisson(rng, n_neurons, rate_Hz, t_stop_ms):
    n = rng.poisson(n_neurons * rate_Hz * t_stop_ms * 1e-3)
    return rng.uniform(0, t_stop_ms, n), rng.integers(0, n_neurons, n)


def _bursts(rng, n_neurons, burst_times_ms, jitter_ms, p_join):
    times, ids = [], []
    for t in burst_times_ms:
        who = np.flatnonzero(rng.random(n_neurons) < p_join)
        times.append(t + jitter_ms * rng.standard_normal(who.size))
        ids.append(who)
    return np.concatenate(times), np.concatenate(ids)


def _cases():
    rng = np.random.default_rng(2018)
    cases = {}
    cases["independent Poisson"] = (*_poisson(rng, 40, 10.0, 3000.0), 40, 0.0, 3000.0)
    burst_ms = np.arange(50.0, 2000.0, 97.0)
    t, i = _bursts(rng, 25, burst_ms, 0.0, 1.0)
    cases["fully synchronous bursts"] = (t, i, 25, 0.0, 2000.0)
    t1, i1 = _bursts(rng, 30, burst_ms, 3.0, 0.6)
    t2, i2 = _poisson(rng, 30, 5.0, 2000.0)
    cases["partly synchronised"] = (np.r_[t1, t2], np.r_[i1, i2], 30, 0.0, 2000.0)
    cases["very few spikes"] = (
        np.array([120.0, 180.5, 990.0, 400.0]),
        np.array([0, 0, 1, 2]),
        5,
        0.0,
        1000.0,
    )
    t, i = _poisson(rng, 10, 8.0, 2500.0)
    cases["with silent neurons"] = (t, i, 60, 0.0, 2500.0)
    t, i = _poisson(rng, 20, 12.0, 3000.0)
    cases["shifted window"] = (t, i, 20, 700.0, 2300.0)
    t, i = _poisson(rng, 8, 6.0, 1000.0)
    cases["spikes on both window edges"] = (
        np.r_[t, 200.0, 200.0, 900.0, 900.0],
        np.r_[i, 0, 1, 2, 3],
        8,
        200.0,
        900.0,
    )
    t, i = _poisson(rng, 15, 20.0, 1500.0)
    cases["unsorted input"] = (t[::-1].copy(), i[::-1].copy(), 15, 0.0, 1500.0)
    cases["bursts and long gaps on the 0.1 ms grid"] = (*_bursty(rng, 12, 3000.0), 12, 0.0, 3000.0)
    return cases


def _bursty(rng, n_neurons, t_stop_ms):
    """Trains of bursts (2-30 spikes 0.1-2 ms apart) separated by gaps of 1-800 ms, on
    the simulation's 0.1 ms grid, so that many spikes share a half-bin, many lie on an
    edge and gaps longer than every bin size occur."""
    times, ids = [], []
    for n in range(n_neurons):
        t = rng.uniform(0.0, 50.0)
        while t < t_stop_ms:
            burst = t + np.cumsum(rng.uniform(0.1, 2.0, rng.integers(2, 31)))
            times.append(np.round(burst[burst <= t_stop_ms] * 10.0) / 10.0)
            ids.append(np.full(times[-1].size, n))
            t = burst[-1] + rng.choice([1.0, 10.0, 100.0, 800.0]) * rng.uniform(0.5, 1.0)
    return np.concatenate(times), np.concatenate(ids)


CASES = _cases()


@pytest.mark.parametrize("name", list(CASES))
def test_equals_elephant(name):
    times_ms, ids, n_neurons, t_start_ms, t_stop_ms = CASES[name]
    ours = spike_contrast(times_ms, ids, n_neurons, t_start_ms, t_stop_ms)
    reference = _elephant(times_ms, ids, n_neurons, t_start_ms, t_stop_ms)
    assert ours == pytest.approx(reference, rel=0, abs=1e-12)


def test_equals_elephant_with_other_min_bin_and_shrink():
    times_ms, ids, n_neurons, t_start_ms, t_stop_ms = CASES["partly synchronised"]
    ours = spike_contrast(times_ms, ids, n_neurons, t_start_ms, t_stop_ms, 25.0, 0.8)
    trains = [
        neo.SpikeTrain(
            np.sort(times_ms[ids == i]) * pq.ms, t_start=-20 * pq.ms, t_stop=2020 * pq.ms
        )
        for i in range(n_neurons)
    ]
    reference = elephant_spike_contrast(
        trains, t_start=0 * pq.ms, t_stop=2000 * pq.ms, min_bin=25 * pq.ms, bin_shrink_factor=0.8
    )
    assert ours == pytest.approx(reference, rel=0, abs=1e-12)


def test_perfect_synchrony_gives_one():
    times_ms, ids, n_neurons, t_start_ms, t_stop_ms = CASES["fully synchronous bursts"]
    assert spike_contrast(times_ms, ids, n_neurons, t_start_ms, t_stop_ms) == pytest.approx(
        1.0, abs=1e-12
    )


def test_nan_when_no_train_has_two_spikes():
    times_ms = np.array([100.0, 200.0, 300.0, 1500.0])
    ids = np.array([0, 1, 2, 0])  # train 0's second spike lies outside the window
    assert math.isnan(spike_contrast(times_ms, ids, 4, 0.0, 1000.0))
    assert math.isnan(spike_contrast(np.zeros(0), np.zeros(0, dtype=int), 4, 0.0, 1000.0))
    with pytest.raises(ValueError):
        _elephant(times_ms, ids, 4, 0.0, 1000.0)


def test_invalid_arguments():
    t, i = np.array([1.0, 2.0]), np.array([0, 0])
    with pytest.raises(ValueError, match="n_neurons"):
        spike_contrast(t, i, 1, 0.0, 100.0)
    with pytest.raises(ValueError, match="shrink"):
        spike_contrast(t, i, 2, 0.0, 100.0, shrink=1.0)
    with pytest.raises(ValueError, match="neuron_ids"):
        spike_contrast(t, np.array([0, 5]), 2, 0.0, 100.0)


def test_same_value_at_any_thread_count():
    """Trains run in blocks, one per thread; the counts are integers, so the value is the
    same bits for one thread and for every thread Numba has."""
    times_ms, ids, n_neurons, t_start_ms, t_stop_ms = CASES[
        "bursts and long gaps on the 0.1 ms grid"
    ]
    values = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        numba.set_num_threads(threads)
        try:
            values.append(spike_contrast(times_ms, ids, n_neurons, t_start_ms, t_stop_ms, 1.0))
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert values[0] == values[1]


def test_network_scale_completes():
    """3·10⁶ spikes of 10 000 neurons over a 27 s window."""
    rng = np.random.default_rng(5)
    n = 3_000_000
    times_ms = np.sort(rng.uniform(3000.0, 30000.0, n))
    ids = rng.integers(0, 10_000, n)
    value = spike_contrast(times_ms, ids, 10_000, 3000.0, 30000.0)
    assert 0.0 < value < 1.0
