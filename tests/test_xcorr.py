"""Lagged correlation, effective sample size and the Fisher / Stouffer tests."""

import math

import numpy as np
import pytest
import scipy.signal
import scipy.stats

from nmmval.analysis.xcorr import (
    best_lag,
    effective_n,
    fisher_pvalue,
    lagged_correlation,
    mean_rho,
    stouffer,
)

ALPHA = 0.01


def _ar1(rng, a, n):
    """Stationary AR(1) series with coefficient a and unit variance (a low-pass process)."""
    noise = rng.standard_normal(n) * math.sqrt(1 - a * a)
    noise[0] = rng.standard_normal()
    return scipy.signal.lfilter([1.0], [1.0, -a], noise)


def _direct(x, y, k):
    """ρ of x(t) and y(t + k) over the overlap, by numpy.corrcoef."""
    n = x.size
    xs, ys = (x[: n - k], y[k:]) if k >= 0 else (x[-k:], y[: n + k])
    return np.corrcoef(xs, ys)[0, 1]


def test_lagged_correlation_equals_direct_loop():
    rng = np.random.default_rng(1)
    x = 50.0 + 1e3 * rng.standard_normal(700)
    y = -3.0 + np.cumsum(rng.standard_normal(700))
    lags_ms, rho = lagged_correlation(x, y, dt_ms=0.5, max_lag_ms=40.0)
    np.testing.assert_allclose(lags_ms, 0.5 * np.arange(-80, 81))
    expected = [_direct(x, y, k) for k in range(-80, 81)]
    np.testing.assert_allclose(rho, expected, rtol=0, atol=1e-10)


def test_lagged_correlation_lag_limited_by_length():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal(10), rng.standard_normal(10)
    lags_ms, rho = lagged_correlation(x, y, dt_ms=1.0, max_lag_ms=100.0)
    assert lags_ms[0] == -8.0 and lags_ms[-1] == 8.0
    np.testing.assert_allclose(rho, [_direct(x, y, k) for k in range(-8, 9)], atol=1e-10)


def test_delayed_copy_peaks_at_its_delay():
    rng = np.random.default_rng(3)
    dt_ms, delay_steps = 0.1, 50
    x = _ar1(rng, 0.98, 30000)
    y = np.roll(x, delay_steps) + 0.5 * rng.standard_normal(x.size)  # y(t) = x(t - 5 ms) + noise
    tau_ms, rho_max = best_lag(*lagged_correlation(x, y, dt_ms, max_lag_ms=100.0))
    assert tau_ms == pytest.approx(5.0, abs=1e-12)
    assert 0.8 < rho_max < 1.0
    tau_ms, _ = best_lag(*lagged_correlation(y, x, dt_ms, max_lag_ms=100.0))
    assert tau_ms == pytest.approx(-5.0, abs=1e-12)


def test_best_lag_all_nan():
    assert all(math.isnan(v) for v in best_lag(np.arange(3.0), np.full(3, np.nan)))


def test_effective_n_white_noise_and_ar1():
    rng = np.random.default_rng(4)
    n = 20000
    assert effective_n(rng.standard_normal(n), rng.standard_normal(n)) == pytest.approx(n, rel=0.05)
    a = 0.9
    theory = n * (1 - a * a) / (1 + a * a)  # Bartlett's sum for two AR(1) of coefficient a
    estimates = [effective_n(_ar1(rng, a, n), _ar1(rng, a, n)) for _ in range(5)]
    assert np.mean(estimates) == pytest.approx(theory, rel=0.1)
    assert effective_n(np.arange(50.0), np.arange(50.0)) >= 3.0


def test_independent_smooth_series_not_significant_with_n_eff():
    """Lag-0 ρ of independent AR(1) series (τ ≈ 100 samples): α = 0.01 rejections <= 3 % of 300."""
    rng = np.random.default_rng(5)
    n, n_trials = 5000, 300
    reject_eff = reject_naive = 0
    for _ in range(n_trials):
        x, y = _ar1(rng, 0.99, n), _ar1(rng, 0.99, n)
        lags_ms, rho = lagged_correlation(x, y, dt_ms=1.0, max_lag_ms=0.0)
        assert lags_ms.tolist() == [0.0]
        reject_eff += fisher_pvalue(rho[0], effective_n(x, y)) <= ALPHA
        reject_naive += fisher_pvalue(rho[0], n) <= ALPHA
    assert reject_eff / n_trials <= 0.03
    assert reject_naive / n_trials > 0.2


def test_fisher_pvalue_known_values():
    assert fisher_pvalue(0.0, 100) == pytest.approx(0.5)
    z = math.atanh(0.3) * math.sqrt(97)
    assert fisher_pvalue(0.3, 100) == pytest.approx(scipy.stats.norm.sf(z), rel=1e-12)
    np.testing.assert_allclose(fisher_pvalue(np.array([0.0, -0.2]), 50)[0], 0.5)
    assert 0.0 <= fisher_pvalue(1.0, 1000) < 1e-100


def test_stouffer_known_values():
    assert stouffer([0.2]) == pytest.approx(0.2, rel=1e-12)
    assert stouffer([0.5, 0.5, 0.5]) == pytest.approx(0.5)
    z = scipy.stats.norm.isf(0.05)
    assert stouffer([0.05, 0.05]) == pytest.approx(scipy.stats.norm.sf(2 * z / math.sqrt(2)))
    assert 0.0 <= stouffer([0.0, 0.3]) < 0.01
    assert math.isnan(stouffer([0.1, np.nan]))


def test_mean_rho():
    assert mean_rho([0.4, 0.4]) == pytest.approx(0.4)
    assert mean_rho([0.5, -0.5]) == pytest.approx(0.0, abs=1e-15)
    assert mean_rho([0.9, 0.1]) == pytest.approx(math.tanh((math.atanh(0.9) + math.atanh(0.1)) / 2))
    assert mean_rho([1.0, 1.0]) == pytest.approx(1.0)
