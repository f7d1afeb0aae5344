"""Power spectra, median frequency and the χ² comparison of spectra (Eq. 25, MODEL.md §6).

Spectra are periodograms of the mean-removed, Hamming-windowed series. Two
spectra P and Q are compared by Eq. 25, ``χ² = Σ_l (P_l - Q_l)²/(P_l + Q_l)``,
over all frequency bins with ``P_l + Q_l > 0``:

- :func:`chi2_statistic`: on spectra normalised to sum 1 (scale-free, 0-2);
- :func:`chi2_pvalue_paper`: the paper's reading, spectra scaled to counts
  summing to the number of samples and χ² referred to its χ² distribution;
- :func:`chi2_pvalue_permutation`: the same statistic against random
  relabellings of the per-seed spectra (exchangeability of seeds under H0).

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

#: Permutations evaluated together in :func:`chi2_pvalue_permutation` (bounds memory).
_PERM_CHUNK = 64
#: Relative tolerance that counts a relabelling equal to the observed one as a tie
#: although its statistic is summed in a different order.
_REL_TIE = 1e-12


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


def _normalise(P: np.ndarray, total: float | np.ndarray = 1.0) -> np.ndarray:
    """Rows of P scaled to sum ``total``; a row with zero sum stays zero."""
    s = P.sum(axis=-1, keepdims=True)
    return np.divide(P * total, s, out=np.zeros_like(P), where=s > 0)


def _chi2_rows(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Eq. 25 along the last axis, bins with P + Q = 0 skipped."""
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
    return float(_chi2_rows(_normalise(P), _normalise(Q)))


def chi2_pvalue_paper(P: np.ndarray, Q: np.ndarray, n_samples: int) -> float:
    """Paper-style p-value of Eq. 25: spectra as histograms of ``n_samples`` counts.

    Both spectra are scaled to sum ``n_samples`` (the samples in the analysis
    window), χ² of these counts is computed by Eq. 25 and referred to
    ``scipy.stats.chi2`` with ``L - 1 - (empty bins)`` degrees of freedom
    (Press et al. 1989, two binned data sets with equal totals). This treats
    spectral power as counts, which it is not; the p-value is therefore only
    the paper's reading, see :func:`chi2_pvalue_permutation`.

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
    chi2_counts = float(_chi2_rows(_normalise(P, n_samples), _normalise(Q, n_samples)))
    n_empty = int(np.count_nonzero((P + Q) == 0))
    dof = P.size - 1 - n_empty
    if dof < 1:
        return 1.0 if chi2_counts == 0 else 0.0
    return float(scipy.stats.chi2.sf(chi2_counts, dof))


def chi2_pvalue_permutation(
    spectra_a: np.ndarray,
    spectra_b: np.ndarray,
    n_perm: int = 999,
    rng: np.random.Generator | int | None = None,
) -> float:
    """Permutation p-value of the χ² distance (Eq. 25) between two groups of spectra.

    The statistic is :func:`chi2_statistic` of the two group means. Under H0
    the per-seed spectra of both groups are exchangeable, so the null
    distribution comes from ``n_perm`` random relabellings of the pooled rows
    into groups of the original sizes; ``p = (1 + #{null >= observed}) /
    (n_perm + 1)``, ties within a relative 1e-12 counted. The smallest
    attainable p is ``1/(n_perm + 1)``, so α = 0.01 needs ``n_perm >= 99``
    (and p <= α needs at most ``α(n_perm + 1) - 1`` exceedances); with few
    seeds the number of distinct relabellings, ``C(k_a + k_b, k_a)``, bounds
    the resolution too. The statistic itself is
    ``chi2_statistic(spectra_a.mean(0), spectra_b.mean(0))``.

    Parameters
    ----------
    spectra_a : array_like, shape (k_a, L)
        One spectrum per seed of the first group (e.g. LIF).
    spectra_b : array_like, shape (k_b, L)
        One spectrum per seed of the second group (e.g. CFM).
    n_perm : int, optional
        Number of random relabellings.
    rng : numpy.random.Generator or int or None, optional
        Random generator or seed for :func:`numpy.random.default_rng`.

    Returns
    -------
    float
        Permutation p-value in ``[1/(n_perm + 1), 1]``, always finite. Group
        means with zero total power follow :func:`chi2_statistic` (a zero
        spectrum stays zero), so two all-zero groups give p = 1.
    """
    a = np.atleast_2d(np.asarray(spectra_a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(spectra_b, dtype=np.float64))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"spectra_a and spectra_b differ in bins ({a.shape[1]} != {b.shape[1]})")
    if n_perm < 1:
        raise ValueError(f"n_perm: {n_perm!r} must be at least 1")
    rng = np.random.default_rng(rng)
    observed = chi2_statistic(a.mean(axis=0), b.mean(axis=0))
    pooled = np.vstack([a, b])
    k_a, k = a.shape[0], pooled.shape[0]
    sum_all = pooled.sum(axis=0)
    n_ge = 0
    for start in range(0, n_perm, _PERM_CHUNK):
        n_chunk = min(_PERM_CHUNK, n_perm - start)
        in_a = np.zeros((n_chunk, k))
        ranks = rng.permuted(np.tile(np.arange(k), (n_chunk, 1)), axis=1)
        in_a[ranks < k_a] = 1.0
        # einsum, not BLAS: tiny products, where threaded BLAS only adds overhead
        sum_a = np.einsum("pk,kl->pl", in_a, pooled)
        mean_a = sum_a / k_a
        mean_b = (sum_all - sum_a) / (k - k_a)
        null = _chi2_rows(_normalise(mean_a), _normalise(mean_b))
        n_ge += int(np.count_nonzero(null >= observed * (1 - _REL_TIE)))
    return (1 + n_ge) / (n_perm + 1)
