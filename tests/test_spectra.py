"""Power spectra, median frequency and the χ² tests of Eq. 25 against known answers."""

import math

import numpy as np
import pytest
import scipy.signal
import scipy.stats

from nmmval.analysis.spectra import (
    chi2_pvalue_paper,
    chi2_pvalue_permutation,
    chi2_statistic,
    median_frequency,
    power_spectrum,
)

ALPHA = 0.01


def _ou(rng, n_series, n_samples, tau_ms, dt_ms):
    """Stationary Ornstein-Uhlenbeck series (unit variance), exact AR(1) update."""
    a = math.exp(-dt_ms / tau_ms)
    noise = rng.standard_normal((n_series, n_samples)) * math.sqrt(1 - a * a)
    noise[:, 0] = rng.standard_normal(n_series)
    return scipy.signal.lfilter([1.0], [1.0, -a], noise, axis=1)


def _spectra(x, dt_ms):
    return np.array([power_spectrum(row, dt_ms)[1] for row in x])


def test_power_spectrum_definition():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(257) + 3.0
    freq_Hz, power = power_spectrum(x, 0.5)
    w = np.hamming(257)
    expected = np.abs(np.fft.rfft(w * (x - x.mean()))) ** 2
    np.testing.assert_allclose(power, expected, rtol=1e-12)
    np.testing.assert_allclose(freq_Hz, np.arange(129) / (257 * 0.5e-3))


@pytest.mark.parametrize("f0_Hz", [37.0, 37.3, 212.6])
def test_median_frequency_of_a_sine(f0_Hz):
    dt_ms = 0.1
    t_ms = np.arange(10000) * dt_ms
    freq_Hz, power = power_spectrum(np.sin(2 * np.pi * f0_Hz * 1e-3 * t_ms) + 1.0, dt_ms)
    bin_Hz = freq_Hz[1]
    assert abs(median_frequency(freq_Hz, power) - f0_Hz) <= bin_Hz


def test_median_frequency_lowest_bin_reaching_half():
    freq_Hz = np.array([0.0, 1.0, 2.0, 3.0])
    assert median_frequency(freq_Hz, np.array([1.0, 1.0, 1.0, 1.0])) == 1.0
    assert median_frequency(freq_Hz, np.array([0.0, 0.0, 3.0, 1.0])) == 2.0
    assert median_frequency(freq_Hz, np.zeros(4)) == 0.0  # zero spectrum: first bin


def test_chi2_statistic_properties():
    rng = np.random.default_rng(2)
    P, Q = rng.random(50), rng.random(50)
    assert chi2_statistic(P, P) == 0.0
    assert chi2_statistic(P, 7.0 * P) == pytest.approx(0.0, abs=1e-15)
    assert chi2_statistic(P, Q) == pytest.approx(chi2_statistic(Q, P), rel=1e-14)
    assert 0.0 < chi2_statistic(P, Q) < 2.0
    assert chi2_statistic([1.0, 0.0, 0.0], [0.0, 0.0, 5.0]) == pytest.approx(2.0)
    p, q = P / P.sum(), Q / Q.sum()
    assert chi2_statistic(P, Q) == pytest.approx(np.sum((p - q) ** 2 / (p + q)), rel=1e-12)
    assert chi2_statistic(np.zeros(3), [1.0, 2.0, 3.0]) == pytest.approx(1.0)  # zero stays 0


def test_chi2_pvalue_paper_hand_example():
    # counts scaled to 60 each; chi2 = 100/30 + 100/30, one empty bin -> 4 - 1 - 1 = 2 dof
    P = np.array([1.0, 2.0, 0.0, 3.0])
    Q = np.array([4.0, 2.0, 0.0, 6.0])
    assert chi2_pvalue_paper(P, Q, 60) == pytest.approx(scipy.stats.chi2.sf(200 / 30, 2), rel=1e-12)
    assert chi2_pvalue_paper(P, 2 * P, 1000) == pytest.approx(1.0)


def test_permutation_pvalue_range_and_reproducibility():
    rng = np.random.default_rng(3)
    a, b = rng.random((4, 30)), rng.random((5, 30)) + 0.5 * np.arange(30)
    p = chi2_pvalue_permutation(a, b, n_perm=99, rng=11)
    assert p == chi2_pvalue_permutation(a, b, n_perm=99, rng=11)
    assert 1 / 100 <= p <= 1.0
    assert chi2_pvalue_permutation(a, a.copy(), n_perm=99, rng=1) > 0.5


def test_permutation_test_level_under_h0():
    """Same τ in both groups: rejection rate at α = 0.01 (n_perm = 199) at most 3 % of 200."""
    rng = np.random.default_rng(20210201)
    dt_ms, n_trials = 1.0, 200
    rejections = 0
    for _ in range(n_trials):
        x = _ou(rng, 20, 2000, 10.0, dt_ms)
        s = _spectra(x, dt_ms)
        rejections += chi2_pvalue_permutation(s[:10], s[10:], n_perm=199, rng=rng) <= ALPHA
    assert rejections / n_trials <= 0.03


def test_permutation_test_power():
    """τ = 5 ms against τ = 20 ms: rejected at α = 0.01 (n_perm = 199) in at least 90 % of 50."""
    rng = np.random.default_rng(20210202)
    dt_ms, n_trials = 1.0, 50
    rejections = 0
    for _ in range(n_trials):
        a = _spectra(_ou(rng, 10, 2000, 5.0, dt_ms), dt_ms)
        b = _spectra(_ou(rng, 10, 2000, 20.0, dt_ms), dt_ms)
        rejections += chi2_pvalue_permutation(a, b, n_perm=199, rng=rng) <= ALPHA
    assert rejections / n_trials >= 0.9
