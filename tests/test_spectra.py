"""Power spectra, median frequency, χ² of Eq. 25 and the paper's χ² test against known answers."""

import numpy as np
import pytest
import scipy.stats

from nmmval.analysis.spectra import (
    chi2_pvalue_paper,
    chi2_statistic,
    join_above,
    median_frequency,
    power_spectrum,
    split_at_fmax,
)


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


def test_split_at_fmax_and_join_above_keep_the_whole_band():
    """Stored bins up to f_max, the rest summed into one value, rejoined as one last bin."""
    freq = np.arange(6) * 10.0
    power = np.arange(12.0).reshape(2, 6)
    kept_Hz, kept, above = split_at_fmax(freq, power, 20.0)
    np.testing.assert_array_equal(kept_Hz, [0.0, 10.0, 20.0])
    np.testing.assert_array_equal(kept, power[:, :3])
    np.testing.assert_array_equal(above, [3 + 4 + 5, 9 + 10 + 11])
    whole = join_above(kept, above)
    np.testing.assert_array_equal(whole.sum(axis=-1), power.sum(axis=-1))
    assert whole.shape == (2, 4)
    # nothing above: a zero last bin, which Eq. 25 skips
    _, kept, above = split_at_fmax(freq, power, 100.0)
    assert not above.any()
    whole = join_above(kept, above)
    assert chi2_statistic(whole[0], whole[1]) == chi2_statistic(power[0], power[1])
