"""Power spectra, median frequency and the χ² comparison of spectra (Eq. 25, MODEL.md §6).

Spectra are periodograms of the mean-removed, Hamming-windowed series. Two
spectra P and Q are compared by Eq. 25, ``χ² = Σ_l (P_l - Q_l)²/(P_l + Q_l)``,
over all frequency bins with ``P_l + Q_l > 0``:

- :func:`chi2_statistic`: on spectra normalised to sum 1 (scale-free, 0-2);
- :func:`chi2_pvalue_paper`: the paper's reading (MODEL.md §6.2), spectra
  scaled to counts summing to the number of samples and χ² referred to its
  χ² distribution.

The tests behind the verdicts (paired, on per-seed Welch spectra) are in
:mod:`nmmval.analysis.protocol` (MODEL.md §6.3); the unpaired permutation of
pooled seeds is withdrawn (§6.2). Spectra are stored up to
``analysis.fmax_store_Hz`` with the power above it in one value
(:func:`split_at_fmax`) and compared over the whole band with that value as
one last bin (:func:`join_above`).

Zero spectra (a constant series, e.g. a silent network whose potential has
relaxed to rest) get finite conventions instead of NaN:

- a constant series has the all-zero spectrum, exactly;
- its median frequency is the first bin, 0 Hz (cumulative power reaches
  half of zero there);
- a spectrum is normalised only if its total is positive; a zero spectrum
  stays zero, so χ² = 1 against any non-zero spectrum (all of the other's
  normalised mass, Σ q_l = 1) and χ² = 0 between two zero spectra (every
  bin skipped);
- the p-values follow from these statistics and are finite: 1 when both
  spectra are zero (nothing differs).
"""

from __future__ import annotations

import numpy as np
import scipy.signal
import scipy.stats

#: Relative tolerance that counts a permuted statistic equal to the observed one as a
#: tie although it is summed in a different order.
REL_TIE = 1e-12


def power_spectrum(x: np.ndarray, dt_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """Periodogram of a series: mean removed, symmetric Hamming window, ``|rfft|²``.

    Parameters
    ----------
    x : array_like, shape (n,)
        Time series sampled every ``dt_ms`` (any unit u, e.g. mV).
    dt_ms : float
        Sampling step (ms).

    Returns
    -------
    freq_Hz : numpy.ndarray, shape (n // 2 + 1,)
        Frequencies of the rfft bins (Hz).
    power : numpy.ndarray, shape (n // 2 + 1,)
        ``|rfft(w·(x - mean x))|²`` (u²), unnormalised; w is
        ``scipy.signal.windows.hamming(n, sym=True)``. Exactly zero for a
        constant series (its floating-point mean may differ from the constant
        by rounding; that residue is not power).
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    window = scipy.signal.windows.hamming(n, sym=True)
    if n == 0 or np.all(x == x[0]):
        centred = np.zeros(n)
    else:
        centred = x - x.mean()
    power = np.abs(np.fft.rfft(window * centred)) ** 2
    freq_Hz = np.fft.rfftfreq(n, d=dt_ms * 1e-3)
    return freq_Hz, power


def median_frequency(freq_Hz: np.ndarray, power: np.ndarray) -> float:
    """Median frequency ϖ: the lowest frequency where cumulative power reaches half the total.

    Parameters
    ----------
    freq_Hz : array_like, shape (L,)
        Increasing frequencies (Hz).
    power : array_like, shape (L,)
        Non-negative power in each bin.

    Returns
    -------
    float
        ϖ (Hz). For a zero spectrum (a constant series) ``freq_Hz[0]``, 0 Hz
        for rfft bins: read literally, the cumulative power reaches half of
        the total, zero, at the first bin.
    """
    power = np.asarray(power, dtype=np.float64)
    cumulative = np.cumsum(power)
    total = cumulative[-1]
    return float(np.asarray(freq_Hz)[np.argmax(cumulative >= 0.5 * total)])


def split_at_fmax(
    freq_Hz: np.ndarray, power: np.ndarray, f_max_Hz: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spectra as stored: the bins up to ``f_max_Hz`` and the power above it in one value.

    Parameters
    ----------
    freq_Hz : array_like, shape (L,)
        Bin frequencies (Hz).
    power : array_like, shape (..., L)
        Spectra on these bins (any unit).
    f_max_Hz : float
        ``analysis.fmax_store_Hz``.

    Returns
    -------
    freq_Hz : numpy.ndarray, shape (L_kept,)
        The bins with f <= f_max (Hz).
    power : numpy.ndarray, shape (..., L_kept)
        The spectra on those bins.
    power_above : numpy.ndarray, shape (...)
        The summed power of the bins above f_max (0 if there are none).
    """
    freq_Hz = np.asarray(freq_Hz)
    power = np.asarray(power)
    keep = freq_Hz <= f_max_Hz
    return freq_Hz[keep], power[..., keep], power[..., ~keep].sum(axis=-1)


def join_above(power: np.ndarray, power_above: np.ndarray) -> np.ndarray:
    """Stored spectra over the whole band: the power above ``fmax_store_Hz`` as one last bin.

    Parameters
    ----------
    power : array_like, shape (..., L)
        Spectra up to ``fmax_store_Hz`` (:func:`split_at_fmax`).
    power_above : array_like, shape (...)
        Their summed power above it.

    Returns
    -------
    numpy.ndarray, shape (..., L + 1)
    """
    return np.concatenate([power, np.asarray(power_above)[..., None]], axis=-1)


def normalise(P: np.ndarray, total: float | np.ndarray = 1.0) -> np.ndarray:
    """Rows of P scaled to sum ``total`` along the last axis; a row with zero sum stays zero."""
    s = P.sum(axis=-1, keepdims=True)
    return np.divide(P * total, s, out=np.zeros_like(P), where=s > 0)


def chi2_rows(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Eq. 25 along the last axis of P and Q as given (not normalised), P + Q = 0 skipped."""
    s = P + Q
    d2 = (P - Q) ** 2
    return np.sum(np.divide(d2, s, out=np.zeros_like(s), where=s > 0), axis=-1)


def chi2_statistic(P: np.ndarray, Q: np.ndarray) -> float:
    """Scale-free χ² distance (Eq. 25) of two spectra, each normalised to sum 1.

    Parameters
    ----------
    P, Q : array_like, shape (L,)
        Non-negative spectra on the same frequency bins (any unit u²).

    Returns
    -------
    float
        ``Σ_l (p_l - q_l)²/(p_l + q_l)`` (dimensionless) with ``p = P/ΣP``,
        ``q = Q/ΣQ``, bins with ``p_l + q_l = 0`` skipped; 0 for equal
        shapes, 2 for disjoint support. A zero spectrum is not normalised
        and stays zero: χ² = 1 against a non-zero spectrum, 0 between two
        zero spectra.
    """
    P = np.asarray(P, dtype=np.float64)
    Q = np.asarray(Q, dtype=np.float64)
    if P.shape != Q.shape:
        raise ValueError(f"P and Q differ in shape ({P.shape} != {Q.shape})")
    return float(chi2_rows(normalise(P), normalise(Q)))


def chi2_pvalue_paper(P: np.ndarray, Q: np.ndarray, n_samples: int) -> float:
    """Paper-style p-value of Eq. 25: spectra as histograms of ``n_samples`` counts.

    Both spectra are scaled to sum ``n_samples`` (the samples in the analysis
    window), χ² of these counts is computed by Eq. 25 and referred to
    ``scipy.stats.chi2`` with ``L - 1 - (empty bins)`` degrees of freedom
    (Press et al. 1989, two binned data sets with equal totals). This treats
    spectral power as counts, which it is not; the p-value is therefore only
    the paper's reading (MODEL.md §6.2), kept labelled "paper"; the verdicts
    use the paired tests of :mod:`nmmval.analysis.protocol`.

    Parameters
    ----------
    P, Q : array_like, shape (L,)
        Non-negative spectra on the same frequency bins.
    n_samples : int
        Samples in the analysis window (the count total).

    Returns
    -------
    float
        p-value, always finite. A zero spectrum stays zero counts (as in
        :func:`chi2_statistic`). With no degree of freedom left (at most one
        non-empty bin, e.g. both spectra zero) the χ² distribution is the
        point mass at 0: p = 1 if χ²_counts = 0, else 0.
    """
    P = np.asarray(P, dtype=np.float64)
    Q = np.asarray(Q, dtype=np.float64)
    if P.shape != Q.shape:
        raise ValueError(f"P and Q differ in shape ({P.shape} != {Q.shape})")
    chi2_counts = float(chi2_rows(normalise(P, n_samples), normalise(Q, n_samples)))
    n_empty = int(np.count_nonzero((P + Q) == 0))
    dof = P.size - 1 - n_empty
    if dof < 1:
        return 1.0 if chi2_counts == 0 else 0.0
    return float(scipy.stats.chi2.sf(chi2_counts, dof))
