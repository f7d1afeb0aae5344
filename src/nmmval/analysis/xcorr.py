"""Time-domain comparison: lagged correlation, effective sample size, Fisher tests (MODEL.md §6).

Per seed and model, ρ(τ) is the Pearson correlation of the network's V(t)
and the model's V(t + τ) over their overlap, |τ| <= 100 ms; τ_max = argmax ρ.
Because both series are strongly autocorrelated, significance uses an
effective sample size n_eff (Bartlett 1935; Bayley & Hammersley 1946) in the
Fisher z test (one-sided, H0: ρ <= 0); seeds are combined by Stouffer's
method and averaged by ``tanh(mean atanh ρ)``.

A constant series (e.g. a mass model relaxed to rest under a silent network)
gets finite conventions instead of NaN: its correlation with anything is 0
(the covariance is zero), so τ_max = 0 ms (ties go to the smallest |τ|), the
Fisher p-value of ρ = 0 is 0.5, and its autocorrelation is taken as 0 at
every lag k >= 1, so n_eff = n.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
import scipy.stats

#: |ρ| is clipped below 1 by this much before atanh.
RHO_EPS = 1e-15
#: Fraction of the series length up to which autocorrelation products enter n_eff
#: (Pyper & Peterman 1998 truncate the Bartlett sum at lag n/5).
_NEFF_MAX_LAG_FRACTION = 0.2


def _standardise(x: np.ndarray) -> np.ndarray:
    """(x - mean)/std; all zeros for a constant series (no variance to scale)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0 or np.all(x == x[0]):
        return np.zeros(x.size)
    return (x - x.mean()) / x.std()


def lagged_correlation(
    x: np.ndarray, y: np.ndarray, dt_ms: float, max_lag_ms: float = 100.0
) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of x(t) and y(t + τ) over their overlap, for every |τ| <= max_lag.

    For lag k steps (τ = k·dt) the pairs are ``x[t], y[t + k]`` for all t
    where both exist (n - |k| pairs), and ρ uses the means and standard
    deviations of these overlapping parts, exactly as ``numpy.corrcoef`` of
    the two slices would. Cross sums come from one zero-padded FFT, overlap
    sums from the totals minus the (at most max_lag) excluded end samples.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Series on the same grid (any units).
    dt_ms : float
        Sampling step (ms).
    max_lag_ms : float, optional
        Largest |τ| (ms); lags up to ``floor(max_lag/dt)`` steps, at most n - 2.

    Returns
    -------
    lags_ms : numpy.ndarray, shape (2K + 1,)
        τ = k·dt for k = -K..K (ms); positive τ: y lags x.
    rho : numpy.ndarray, shape (2K + 1,)
        ρ(τ) (dimensionless), in [-1, 1]; 0 where either overlap is
        constant (zero covariance; the convention that keeps a silent
        network's comparison finite).
    """
    x = _standardise(x)
    y = _standardise(y)
    n = x.size
    if y.size != n:
        raise ValueError(f"x and y differ in length ({n} != {y.size})")
    K = min(int(np.floor(max_lag_ms / dt_ms + 1e-9)), n - 2)
    k = np.arange(-K, K + 1)
    m = n - np.abs(k)

    nfft = scipy.fft.next_fast_len(2 * n - 1, real=True)
    c = scipy.fft.irfft(np.conj(scipy.fft.rfft(x, nfft)) * scipy.fft.rfft(y, nfft), nfft)
    s_xy = np.concatenate([c[nfft - K :], c[: K + 1]])

    def overlap_sums(z, drop_tail):
        """Σ z over the overlap: total minus the |k| samples cut at the head or tail."""
        head = np.concatenate([[0.0], np.cumsum(z[:K])])
        tail = np.concatenate([[0.0], np.cumsum(z[::-1][:K])])
        cut = np.where(drop_tail, tail[np.abs(k)], head[np.abs(k)])
        return z.sum() - cut

    # lag k >= 0 uses x[:n-k] (tail of x cut) and y[k:] (head of y cut); k < 0 the reverse
    s_x = overlap_sums(x, k >= 0)
    s_y = overlap_sums(y, k < 0)
    s_xx = overlap_sums(x * x, k >= 0)
    s_yy = overlap_sums(y * y, k < 0)
    mean_x, mean_y = s_x / m, s_y / m
    cov = s_xy / m - mean_x * mean_y
    var_x = s_xx / m - mean_x**2
    var_y = s_yy / m - mean_y**2
    denominator = var_x * var_y
    defined = denominator > 0
    rho = np.divide(cov, np.sqrt(np.where(defined, denominator, 1.0)))
    rho = np.clip(np.where(defined, rho, 0.0), -1.0, 1.0)
    return k * dt_ms, rho


def best_lag(lags_ms: np.ndarray, rho: np.ndarray) -> tuple[float, float]:
    """Lag of the largest correlation.

    Parameters
    ----------
    lags_ms, rho : array_like
        Output of :func:`lagged_correlation`.

    Returns
    -------
    tau_max_ms : float
        τ_max = argmax ρ (ms), NaN entries ignored. On ties the lag of
        smallest |τ| (and of ±τ the negative one), so an all-zero ρ (a
        constant series) gives τ_max = 0 ms. NaN if ρ is NaN everywhere.
    rho_max : float
        ρ(τ_max) (dimensionless).
    """
    rho = np.asarray(rho, dtype=np.float64)
    lags_ms = np.asarray(lags_ms, dtype=np.float64)
    if np.all(np.isnan(rho)):
        return float("nan"), float("nan")
    ties = np.flatnonzero(rho == np.nanmax(rho))
    # smallest |τ| first, then the smaller τ
    i = int(ties[np.lexsort((lags_ms[ties], np.abs(lags_ms[ties])))[0]])
    return float(lags_ms[i]), float(rho[i])


def _autocorrelation(z: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelation r(k) = Σ_t z_t z_{t+k} / Σ_t z_t², k = 0..max_lag (z standardised).

    For an all-zero z (a constant series) r(0) = 1 and r(k) = 0 for k >= 1.
    """
    n = z.size
    if not np.any(z):
        r = np.zeros(max_lag + 1)
        r[0] = 1.0
        return r
    nfft = scipy.fft.next_fast_len(2 * n - 1, real=True)
    f = scipy.fft.rfft(z, nfft)
    acov = scipy.fft.irfft(f * np.conj(f), nfft)[: max_lag + 1]
    return acov / acov[0]


def effective_n(x: np.ndarray, y: np.ndarray) -> float:
    """Effective sample size of the correlation of two autocorrelated series.

    Bartlett (1935) / Bayley & Hammersley (1946):
    ``n_eff = n / (1 + 2 Σ_{k=1}^{K} (1 - k/n) r_xx(k) r_yy(k))`` with the
    sample autocorrelations r (means removed). The sum is truncated at
    ``K = floor(n/5)`` (Pyper & Peterman 1998): unlike truncation at the first
    zero crossing, this keeps the positive products of two oscillating
    autocorrelations of similar frequency (population rhythms), and the
    estimation noise of the products, ~ τ_c^1.5/sqrt(5n) for a correlation
    time τ_c, stays small against the sum itself (~ τ_c).

    Parameters
    ----------
    x, y : array_like, shape (n,)
        The two series (any units).

    Returns
    -------
    float
        n_eff (dimensionless, a number of samples) clipped to ``[3, n]``;
        always finite. A constant series has no autocorrelation beyond lag 0
        (taken as 0), so with it n_eff = n.
    """
    x = _standardise(x)
    y = _standardise(y)
    n = x.size
    if y.size != n:
        raise ValueError(f"x and y differ in length ({n} != {y.size})")
    K = max(int(n * _NEFF_MAX_LAG_FRACTION), 1)
    r_xx = _autocorrelation(x, K)[1:]
    r_yy = _autocorrelation(y, K)[1:]
    k = np.arange(1, K + 1)
    denominator = 1.0 + 2.0 * np.sum((1.0 - k / n) * r_xx * r_yy)
    # a denominator below 1 (n_eff > n) is clipped to n, as is a non-positive one
    return float(np.clip(n / max(denominator, 1.0), 3.0, n))


def fisher_pvalue(rho, n_eff):
    """One-sided Fisher z test of H0: ρ <= 0.

    ``z = atanh(ρ)·sqrt(n_eff - 3)``, ``p = norm.sf(z)``; ρ is clipped to
    (-1, 1) by 1e-15.

    Parameters
    ----------
    rho : float or array_like
        Sample correlation(s).
    n_eff : float or array_like
        Effective sample size(s), > 3 (see :func:`effective_n`).

    Returns
    -------
    float or numpy.ndarray
        p-value(s); 0.5 for ρ = 0 (e.g. a constant series, see module notes).
    """
    rho = np.clip(np.asarray(rho, dtype=np.float64), -1 + RHO_EPS, 1 - RHO_EPS)
    z = np.arctanh(rho) * np.sqrt(np.asarray(n_eff, dtype=np.float64) - 3.0)
    p = scipy.stats.norm.sf(z)
    return float(p) if np.ndim(p) == 0 else p


def stouffer(pvalues) -> float:
    """Stouffer's combination of one-sided p-values.

    ``p = norm.sf(Σ_k norm.isf(p_k) / sqrt(k))``; each p_k is clipped to
    ``[1e-300, 1 - 1e-16]`` so that a 0 or 1 cannot give ±inf.

    Parameters
    ----------
    pvalues : array_like, shape (k,)
        One-sided p-values of independent tests (e.g. one per seed).

    Returns
    -------
    float
        Combined one-sided p-value (NaN if any p_k is NaN).
    """
    p = np.clip(np.asarray(pvalues, dtype=np.float64).ravel(), 1e-300, 1 - 1e-16)
    z = scipy.stats.norm.isf(p)
    return float(scipy.stats.norm.sf(np.sum(z) / np.sqrt(p.size)))


def mean_rho(rhos, axis: int | None = None):
    """Average of correlations through Fisher's z: ``tanh(mean atanh ρ_k)``.

    Parameters
    ----------
    rhos : array_like
        Correlations, clipped to (-1, 1) by 1e-15.
    axis : int, optional
        Axis to average over (e.g. the seeds of per-seed ρ(τ)); all values if None.

    Returns
    -------
    float or numpy.ndarray
        The mean correlation (a float if ``axis`` is None).
    """
    rhos = np.clip(np.asarray(rhos, dtype=np.float64), -1 + RHO_EPS, 1 - RHO_EPS)
    mean = np.tanh(np.mean(np.arctanh(rhos), axis=axis))
    return float(mean) if axis is None else mean
