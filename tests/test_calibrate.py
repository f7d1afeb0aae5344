"""Calibration measures and criteria on synthetic, known answers."""

import numpy as np

from nmmval.calibration.calibrate import Regime, population_count, score, spectral_peak


def test_population_measures_of_poisson_and_periodic_bursts():
    rng = np.random.default_rng(0)
    dt, n_steps = 0.1, 50_000  # 5 s
    poisson = np.sort(rng.integers(0, n_steps, size=20_000))
    counts = population_count(poisson, 0, n_steps, dt)
    assert counts.size == 5000 and counts.sum() == poisson.size
    assert abs(counts.var() / counts.mean() - 1) < 0.1  # Poisson: Fano 1
    _, ratio = spectral_peak(counts)
    assert ratio < 20
    # 10 Hz population bursts of 200 spikes, Gaussian in time (sd 10 ms)
    starts = np.arange(500, n_steps - 500, 1000)
    bursts = np.concatenate([s + rng.normal(0, 100, size=200).astype(int) for s in starts])
    counts = population_count(np.sort(bursts), 0, n_steps, dt)
    peak, ratio = spectral_peak(counts)
    assert peak == 10.0 and ratio > 100
    assert counts.var() / counts.mean() > 3  # the synchrony criterion's Fano threshold


def _r(p, lam, rate, sync, fano, peak, ratio=1.0):
    return Regime(p, lam, 0, rate, rate / 2, sync, fano, peak, ratio)


def test_score_all_criteria():
    regimes = [
        _r(0.0, 0.8, 0.3, 0.02, 1.0, 400.0),
        _r(0.2, 0.8, 1.5, 0.05, 1.1, 5.0),
        _r(0.4, 0.8, 5.0, 0.7, 900.0, 6.0, 50.0),
        _r(1.0, 0.8, 9.0, 0.95, 5000.0, 9.0, 30.0),
        _r(1.0, 0.9, 150.0, 0.2, 7000.0, 150.0, 3000.0),
        _r(1.0, 1.0, 180.0, 0.2, 7000.0, 180.0, 3000.0),
    ]
    res = score(regimes)
    assert res["passed"] == 4 and res["onset_p"] == 0.4
    # a network that fires at p = 0 and synchronises at once fails three criteria
    regimes[0] = _r(0.0, 0.8, 2.0, 0.02, 1.0, 400.0)
    regimes[1] = _r(0.2, 0.8, 6.0, 0.6, 500.0, 50.0, 100.0)
    res = score(regimes)
    assert not res["silent_at_p0"] and not res["asynchronous_band"]
    assert not res["low_frequency_onset"] and res["onset_p"] == 0.2
