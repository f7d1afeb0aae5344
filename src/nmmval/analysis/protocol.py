"""The validation protocol (MODEL.md §6.3): per cell and model, a verdict and its numbers.

Pure functions on arrays, in two steps: the per-seed pieces (Welch
spectra, the observed and surrogate lag-searched correlations, the
split-half correlation) are computed where one seed's traces are at hand
(the compare stage, measure ``protocol`` of :mod:`nmmval.analysis.measures`);
:func:`combine_cell` turns one cell's stacked pieces into the verdict of a
model (the cube). :func:`validate` runs both steps on the traces.

Per cell and model, with k seeds:

- spectra: per-seed Welch spectra (:func:`welch_spectra`), normalised to sum
  1 (:func:`normalised_spectra`), compared by Eq. 25 seed by seed
  (:func:`chi2_per_seed`, the semantics of :func:`nmmval.analysis.spectra.chi2_statistic`);
- seed null and margin: the network against itself, χ²_ij(LIF_i, LIF_j) for
  i < j (:func:`seed_null`), m = factor × their mean (:func:`equivalence_margin`);
- difference test: paired sign-flip permutation (:func:`difference_test`);
- equivalence test: one-sided upper 95 % bound of mean χ²_k below m
  (:func:`equivalence_bound`);
- time domain: ρ(τ_max) against phase-randomised surrogates of the model
  (:func:`seed_rho_surrogates`, :func:`surrogate_pvalue`), its seed-level
  95 % bounds (:func:`rho_bounds`) against the split-half noise ceiling
  (:func:`split_half_r`, :func:`noise_ceiling_from_r`, :func:`noise_ceiling`);
  the floor of χ² (:func:`chi2_floor`); the network's numbers of a cell
  together: :func:`network_reference`;
- the verdict (:func:`decide`, :func:`combine_cell`, :func:`validate`,
  :class:`Verdict`), stored as the integer codes :data:`VERDICT_FLAG_VALUES` /
  :data:`VERDICT_FLAG_MEANINGS` and its reasons as the bits
  :data:`REASON_FLAG_MASKS` / :data:`REASON_FLAG_MEANINGS`.

The paper's own readings (§6.2) are elsewhere
(:func:`nmmval.analysis.spectra.chi2_pvalue_paper`; :func:`nmmval.analysis.xcorr.fisher_pvalue`
with :func:`nmmval.analysis.xcorr.stouffer`); :func:`paper_chi2_cut` documents the
cut the paper's χ² test amounts to.

Choices the text of §6.3 leaves open, as implemented here:

- Welch segments are Hamming-windowed with the symmetric window of §6.1,
  overlap 50 %, each segment's mean removed (``detrend="constant"``); a
  constant trace has the all-zero spectrum, exactly, as in
  :func:`nmmval.analysis.spectra.power_spectrum`. The spectra cover the
  whole band: bins up to ``analysis.fmax_store_Hz`` and the power above it
  as one last bin (:func:`nmmval.analysis.spectra.join_above`), as the
  periodograms of §6.1.
- The difference test's statistic is Eq. 25 between the seed means of the
  *normalised* per-seed spectra: every seed weighs the same, and the test,
  like χ² itself, is about the spectral shape, not the power.
- Seed-level bounds use Student's t with k − 1 degrees of freedom (on
  atanh ρ for correlations); with k < 2 they are NaN, so neither
  equivalence nor ρ adequacy can be shown.
- ρ "not above its surrogate null" means surrogate p > α (the same α as the
  difference test, default 0.01).
- When "adequate" and "inadequate" conditions hold at once (possible only
  when ρ meets its adequacy level but is not above its surrogate null, i.e.
  when the ceiling, and with it the level, is so low that a lag-searched ρ
  of an unrelated trace reaches it) the verdict is inadequate: adequacy
  needs evidence of correlation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.fft
import scipy.signal
import scipy.stats

from nmmval.analysis.spectra import REL_TIE, chi2_rows, join_above, normalise, split_at_fmax
from nmmval.analysis.xcorr import RHO_EPS, mean_rho

#: Verdict codes as stored (CF ``flag_values`` / ``flag_meanings``).
ADEQUATE, UNDECIDED, INADEQUATE = 1, 0, -1
VERDICT_FLAG_VALUES = (INADEQUATE, UNDECIDED, ADEQUATE)
VERDICT_FLAG_MEANINGS = "inadequate undecided adequate"
_LABELS = {ADEQUATE: "adequate", UNDECIDED: "undecided", INADEQUATE: "inadequate"}
#: Verdict reasons as stored: one bit each (CF ``flag_masks`` / ``flag_meanings``).
REASON_FLAG_MEANINGS = "diverged spectra_differ rho_below_level rho_not_above_null"
REASON_FLAG_MASKS = (1, 2, 4, 8)

#: Largest number of seeds for which the difference test enumerates all 2^k sign patterns.
EXACT_MAX_K = 14
#: Random sign patterns of the difference test beyond EXACT_MAX_K seeds (the observed one added).
N_RANDOM_PATTERNS = 9999
#: Real-valued elements per FFT batch of the lagged correlation: small batches stay in
#: cache (one surrogate of the paper's 270 000-sample window per call is the fastest,
#: benchmarks/surrogates.py).
_BATCH_ELEMENTS = 2**18


def _segment_samples(n_samples: int, dt_ms: float, segment_ms: float) -> int:
    """Samples per Welch segment: ``segment_ms`` at ``dt_ms``, at most the whole series."""
    return max(1, min(int(round(segment_ms / dt_ms)), n_samples))


def welch_frequencies(n_samples: int, dt_ms: float, segment_ms: float = 2000.0) -> np.ndarray:
    """The bins of :func:`welch_spectra` for a series of ``n_samples`` (Hz, spacing 1/segment).

    Parameters
    ----------
    n_samples : int
        Samples of each series (the analysis window [T0, T)).
    dt_ms : float
        Sampling step (ms).
    segment_ms : float, optional
        ``analysis.welch_segment_ms``.

    Returns
    -------
    numpy.ndarray
        ``rfftfreq`` of one segment (Hz), up to Nyquist.
    """
    n_seg = _segment_samples(n_samples, dt_ms, segment_ms)
    return np.fft.rfftfreq(n_seg, d=dt_ms * 1e-3)


def welch_spectra(
    x: np.ndarray, dt_ms: float, segment_ms: float = 2000.0, f_max_Hz: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed Welch spectra (MODEL.md §6.3): Hamming segments, 50 % overlap, mean removed.

    Parameters
    ----------
    x : array_like, shape (k, n) or (n,)
        One trace per row (e.g. V of each seed in mV) sampled every ``dt_ms``.
    dt_ms : float
        Sampling step (ms).
    segment_ms : float, optional
        Segment length (ms), ``analysis.welch_segment_ms``; a series shorter
        than one segment is a single segment.
    f_max_Hz : float or None, optional
        Keep the bins with f <= f_max (Hz); all bins up to Nyquist if None.

    Returns
    -------
    freq_Hz : numpy.ndarray, shape (L,)
        Bin frequencies (Hz), spacing 1/segment.
    power : numpy.ndarray, shape (k, L)
        Power spectral density (u²/Hz for traces in u), the average of the
        segments' ``|rfft(w·(x_seg − mean x_seg))|²`` with w the symmetric
        Hamming window (``scipy.signal.welch``). All zero for a constant
        row; NaN for a row with a non-finite value.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    n_seg = _segment_samples(x.shape[-1], dt_ms, segment_ms)
    window = scipy.signal.windows.hamming(n_seg, sym=True)
    freq_Hz, power = scipy.signal.welch(
        x, fs=1e3 / dt_ms, window=window, noverlap=n_seg // 2, detrend="constant", axis=-1
    )
    # a constant row leaves a rounding residue after the mean is removed: that is not power
    power[np.all(x == x[:, :1], axis=-1)] = 0.0
    keep = slice(None) if f_max_Hz is None else freq_Hz <= f_max_Hz
    return freq_Hz[keep], power[:, keep]


def normalised_spectra(power: np.ndarray) -> np.ndarray:
    """Spectra scaled to sum 1 along the last axis (MODEL.md §6.1, §6.3).

    Parameters
    ----------
    power : array_like, shape (..., L)
        Non-negative spectra (any unit).

    Returns
    -------
    numpy.ndarray, shape (..., L)
        Each spectrum divided by its sum (dimensionless); a zero spectrum
        stays zero, as in :func:`nmmval.analysis.spectra.chi2_statistic`.
    """
    return normalise(np.asarray(power, dtype=np.float64))


def chi2_per_seed(power_lif: np.ndarray, power_model: np.ndarray) -> np.ndarray:
    """χ²_k(LIF_k, model_k): Eq. 25 on each seed's normalised spectra (MODEL.md §6.3).

    Parameters
    ----------
    power_lif, power_model : array_like, shape (k, L)
        Per-seed spectra of the network and of the model on the same bins.

    Returns
    -------
    numpy.ndarray, shape (k,)
        ``chi2_statistic(power_lif[i], power_model[i])`` for every seed
        (dimensionless, 0-2): spectra normalised to sum 1, bins with
        P + Q = 0 skipped, a zero spectrum kept zero.
    """
    a = np.atleast_2d(np.asarray(power_lif, dtype=np.float64))
    b = np.atleast_2d(np.asarray(power_model, dtype=np.float64))
    if a.shape != b.shape:
        raise ValueError(f"power_lif and power_model differ in shape ({a.shape} != {b.shape})")
    return chi2_rows(normalise(a), normalise(b))


def seed_null(power_lif: np.ndarray) -> np.ndarray:
    """The network's distance from itself: χ²_ij(LIF_i, LIF_j) for all seeds i < j (§6.3).

    Parameters
    ----------
    power_lif : array_like, shape (k, L)
        Per-seed spectra of the network of one cell.

    Returns
    -------
    numpy.ndarray, shape (k(k − 1)/2,)
        Eq. 25 on normalised spectra for each pair, in the order of
        ``numpy.triu_indices(k, 1)`` (dimensionless).
    """
    p = normalise(np.atleast_2d(np.asarray(power_lif, dtype=np.float64)))
    i, j = np.triu_indices(p.shape[0], 1)
    return chi2_rows(p[i], p[j])


def equivalence_margin(chi2_null: np.ndarray, factor: float = 2.0) -> float:
    """Margin m of the equivalence test: ``factor`` × the mean seed-null χ² (§6.3).

    Parameters
    ----------
    chi2_null : array_like
        χ²_ij of :func:`seed_null`.
    factor : float, optional
        ``analysis.equivalence_factor``: a model passes if it is no farther
        from its network than ``factor`` times the distance between two
        runs of the network.

    Returns
    -------
    float
        m (dimensionless); NaN with fewer than two seeds (no pair).
    """
    chi2_null = np.asarray(chi2_null, dtype=np.float64)
    return float(factor * chi2_null.mean()) if chi2_null.size else float("nan")


def sign_patterns(k: int) -> np.ndarray:
    """All 2^k sign patterns ε ∈ {+1, −1}^k; row 0 is the identity (no seed swapped).

    Row i has ε_j = −1 where bit j of i is set, so row ``2^k − 1 − i`` is
    row i's mirror −ε.

    Returns
    -------
    numpy.ndarray, shape (2^k, k)
        Entries ±1.0.
    """
    bits = (np.arange(2**k)[:, None] >> np.arange(k)) & 1
    return 1.0 - 2.0 * bits


def difference_test(
    power_lif: np.ndarray,
    power_model: np.ndarray,
    n_random: int = N_RANDOM_PATTERNS,
    exact_max_k: int = EXACT_MAX_K,
    rng: np.random.Generator | int | None = None,
) -> tuple[float, float]:
    """Paired sign-flip permutation test of H0: model and network spectra equal (§6.3).

    Each seed's pair (LIF_k, model_k) shares one input, so under H0 the two
    labels of a seed are exchangeable, seed by seed. A pattern ε flips the
    labels of the seeds with ε_k = −1; the statistic is Eq. 25 between the
    seed means of the normalised spectra p_k (LIF) and q_k (model),
    ``χ²(ε) = Σ_l (Σ_k ε_k d_kl / k)² / (p̄_l + q̄_l)`` with
    ``d_k = p_k − q_k``: a flip leaves p̄ + q̄ unchanged, so every pattern is
    one quadratic form ``ε G εᵀ / k²`` with ``G = d diag(1/(p̄ + q̄)) dᵀ``
    (bins with p̄_l + q̄_l = 0 skipped), all patterns in one matrix product.
    When no seed's spectrum is zero, p̄ and q̄ sum to 1 and χ²(+1) is
    ``chi2_statistic`` of the two seed means; a zero spectrum (a constant
    trace) stays zero and the means are not rescaled.

    Counting: for k <= ``exact_max_k`` all 2^k patterns are evaluated,
    the identity included, and ``p = #{ε: χ²(ε) >= χ²_obs} / 2^k`` (ties
    within a relative 1e-12 counted). The identity and its mirror −ε (all
    seeds swapped) give the same statistic, so ``p >= 2^(1−k)``: α = 0.01
    needs k >= 8. Beyond, ``n_random`` patterns are drawn uniformly and
    ``p = (1 + #{χ²(ε) >= χ²_obs}) / (n_random + 1)``.

    Parameters
    ----------
    power_lif, power_model : array_like, shape (k, L)
        Per-seed spectra (e.g. :func:`welch_spectra`) of network and model.
    n_random : int, optional
        Random patterns when k > ``exact_max_k``.
    exact_max_k : int, optional
        Largest k enumerated exactly (2^k patterns).
    rng : numpy.random.Generator or int or None, optional
        Generator or seed, used only for random patterns.

    Returns
    -------
    statistic : float
        χ²_obs, Eq. 25 of the two seed means (dimensionless, 0-2).
    pvalue : float
        Permutation p-value in (0, 1].
    """
    p = normalise(np.atleast_2d(np.asarray(power_lif, dtype=np.float64)))
    q = normalise(np.atleast_2d(np.asarray(power_model, dtype=np.float64)))
    if p.shape != q.shape:
        raise ValueError(f"power_lif and power_model differ in shape ({p.shape} != {q.shape})")
    k = p.shape[0]
    d = p - q
    total = p.mean(axis=0) + q.mean(axis=0)
    weight = np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)
    gram = (d * weight) @ d.T / k**2

    def statistics(eps):
        return np.einsum("pi,ij,pj->p", eps, gram, eps)

    observed = float(statistics(np.ones((1, k)))[0])
    threshold = observed * (1 - REL_TIE)
    if k <= exact_max_k:
        n_ge = np.count_nonzero(statistics(sign_patterns(k)) >= threshold)
        return observed, n_ge / 2**k
    eps = np.random.default_rng(rng).choice([-1.0, 1.0], size=(n_random, k))
    n_ge = np.count_nonzero(statistics(eps) >= threshold)
    return observed, (1 + n_ge) / (n_random + 1)


def _t_quantile(confidence: float, k: int) -> float:
    """Student-t quantile with k − 1 degrees of freedom; NaN for k < 2."""
    return float(scipy.stats.t.ppf(confidence, k - 1)) if k >= 2 else float("nan")


def equivalence_bound(chi2_k: np.ndarray, confidence: float = 0.95) -> float:
    """One-sided upper bound of mean χ²_k (the equivalence test, H0: mean χ²_k >= m; §6.3).

    ``mean + t_{confidence, k−1} · sd / sqrt(k)`` (sd with ddof 1);
    equivalence is shown at level 1 − confidence when the bound is below m.
    Student's t rather than a bootstrap: with k = 10 seeds the percentile
    bootstrap bound is too close to the mean (its spread uses the plug-in
    sd, divisor k, and the normal rather than the t quantile: ~85 % of the
    t half-width at k = 10, the small-sample narrowness described by Efron
    & Tibshirani 1993) and would add resampling noise to a verdict; the t
    bound is exact for normal χ²_k and deterministic. The χ²_k are right-skewed, which
    makes any upper bound from k = 10 values somewhat lenient; the margin
    (twice the network's own spread) is the safeguard.

    Parameters
    ----------
    chi2_k : array_like, shape (k,)
        Per-seed χ² (:func:`chi2_per_seed`).
    confidence : float, optional
        One-sided confidence level.

    Returns
    -------
    float
        The bound (dimensionless); NaN for k < 2 or a non-finite χ²_k.
    """
    chi2_k = np.asarray(chi2_k, dtype=np.float64).ravel()
    k = chi2_k.size
    if k < 2:
        return float("nan")
    return float(chi2_k.mean() + _t_quantile(confidence, k) * chi2_k.std(ddof=1) / np.sqrt(k))


def _atanh(rho):
    """atanh of correlations clipped to (−1, 1) by 1e-15 (as in :mod:`nmmval.analysis.xcorr`)."""
    return np.arctanh(np.clip(np.asarray(rho, dtype=np.float64), -1 + RHO_EPS, 1 - RHO_EPS))


def rho_bounds(rho_k: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Seed-level one-sided bounds of ρ(τ_max) (MODEL.md §6.3).

    On z_k = atanh ρ_k (which makes the seed values near-normal with a
    variance independent of ρ, and matches the §6.1 seed average
    ``tanh(mean z)``): ``tanh(z̄ ∓ t_{confidence, k−1} · sd_z / sqrt(k))``.

    Parameters
    ----------
    rho_k : array_like, shape (k,)
        ρ(τ_max) per seed.
    confidence : float, optional
        One-sided confidence level of each bound.

    Returns
    -------
    lower, upper : float
        The lower and the upper bound (dimensionless); NaN for k < 2.
    """
    z = _atanh(rho_k).ravel()
    k = z.size
    if k < 2:
        return float("nan"), float("nan")
    half = _t_quantile(confidence, k) * z.std(ddof=1) / np.sqrt(k)
    return float(np.tanh(z.mean() - half)), float(np.tanh(z.mean() + half))


def _standardise_rows(z: np.ndarray) -> np.ndarray:
    """Rows (z − mean)/std; all zeros for a constant row (as ``xcorr._standardise``)."""
    const = np.all(z == z[..., :1], axis=-1, keepdims=True)
    sd = np.where(const, 1.0, z.std(axis=-1, keepdims=True))
    return np.where(const, 0.0, (z - z.mean(axis=-1, keepdims=True)) / sd)


def _overlap_sums(z: np.ndarray, K: int, cut_tail: np.ndarray) -> np.ndarray:
    """Σ z over the overlap of each lag k = −K..K: the row total minus |k| samples.

    ``cut_tail`` (shape (2K + 1,)) says, lag by lag, whether the |k| samples
    are cut at the tail of the row (else at its head); shape (..., 2K + 1).
    """
    a = np.abs(np.arange(-K, K + 1))
    pad = np.zeros(z.shape[:-1] + (1,))
    head = np.concatenate([pad, np.cumsum(z[..., :K], axis=-1)], axis=-1)
    tail = np.concatenate([pad, np.cumsum(z[..., ::-1][..., :K], axis=-1)], axis=-1)
    return z.sum(axis=-1, keepdims=True) - np.where(cut_tail, tail[..., a], head[..., a])


def max_lagged_correlation(
    x: np.ndarray, y: np.ndarray, dt_ms: float, max_lag_ms: float = 100.0
) -> tuple[np.ndarray, np.ndarray]:
    """Lag-searched maximum of ρ(τ) between one trace and many, by batched FFTs (§6.1, §6.3).

    Row by row the same quantity as :func:`nmmval.analysis.xcorr.lagged_correlation`
    followed by :func:`nmmval.analysis.xcorr.best_lag`: ρ(τ) is the Pearson
    correlation of x(t) and y(t + τ) over their overlap, |τ| <= max_lag
    (at most n − 2 steps), 0 where an overlap is constant; τ_max = argmax
    ρ, ties to the smallest |τ| and then the negative τ. The rows of y go
    through one rfft/irfft, zero-padded to n + K samples, per batch of at
    most ~2^18 samples.

    Parameters
    ----------
    x : array_like, shape (n,)
        Reference trace (the network's V).
    y : array_like, shape (..., n)
        Traces to correlate with x (a model's V and/or its surrogates);
        finite values.
    dt_ms : float
        Sampling step (ms).
    max_lag_ms : float, optional
        Largest |τ| (ms), ``analysis.max_lag_ms``.

    Returns
    -------
    rho_max : numpy.ndarray, shape (...)
        ρ(τ_max) (dimensionless).
    tau_max_ms : numpy.ndarray, shape (...)
        τ_max (ms); positive τ: y lags x.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if y.shape[-1] != x.size:
        raise ValueError(f"x and y differ in length ({x.size} != {y.shape[-1]})")
    rho, lag = _max_lagged_rows(
        _standardise_rows(x), _standardise_rows(y.reshape(-1, x.size)), dt_ms, max_lag_ms
    )
    return rho.reshape(y.shape[:-1]), lag.reshape(y.shape[:-1])


def _lag_steps(n: int, dt_ms: float, max_lag_ms: float) -> int:
    """K, the lag search's reach in steps: ``max_lag_ms / dt_ms``, at most n − 2."""
    return min(int(np.floor(max_lag_ms / dt_ms + 1e-9)), n - 2)


@dataclass(frozen=True)
class _Lags:
    """The reference trace's side of the lag search, shared by all its rows.

    ``k``: lags −K..K (steps); ``m``: overlap lengths; ``mean_x``, ``var_x``:
    x over each overlap; ``order``: the tie order of argmax (smallest |τ|,
    then the negative one).
    """

    K: int
    k: np.ndarray
    m: np.ndarray
    mean_x: np.ndarray
    var_x: np.ndarray
    order: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray, K: int) -> _Lags:
        """The lags of the standardised trace ``x`` up to ±K steps."""
        k = np.arange(-K, K + 1)
        m = x.size - np.abs(k)
        # lag k >= 0 pairs x[:n-k] with y[k:] (tail of x cut, head of y cut); k < 0 the reverse
        mean_x = _overlap_sums(x, K, k >= 0) / m
        var_x = _overlap_sums(x * x, K, k >= 0) / m - mean_x**2
        return cls(K, k, m, mean_x, var_x, np.lexsort((k, np.abs(k))))

    def best(self, s_xy: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ρ(τ_max) and τ_max (steps) of the rows z, given their lagged sums Σ x·z.

        ``s_xy`` (r, 2K + 1): Σ x(t) z(t + k) over each overlap, lags −K..K.
        """
        K, k, m = self.K, self.k, self.m
        mean_y = _overlap_sums(z, K, k < 0) / m
        cov = s_xy / m - self.mean_x * mean_y
        denominator = self.var_x * (_overlap_sums(z * z, K, k < 0) / m - mean_y**2)
        defined = denominator > 0
        rho = np.divide(cov, np.sqrt(np.where(defined, denominator, 1.0)))
        rho = np.clip(np.where(defined, rho, 0.0), -1.0, 1.0)[:, self.order]
        i = np.argmax(rho, axis=-1)
        return rho[np.arange(rho.shape[0]), i], k[self.order][i]


def _max_lagged_rows(
    x: np.ndarray, y: np.ndarray, dt_ms: float, max_lag_ms: float
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`max_lagged_correlation` of x (n,) and the rows of y (r, n), both standardised.

    Standardising only conditions the sums (ρ over each overlap is
    invariant to it), so rows with the mean and variance of a standardised
    trace, such as its phase-randomised surrogates, need no further pass.
    """
    rho_max, lag = _padded_maxima(x, y, _Lags.of(x, _lag_steps(x.size, dt_ms, max_lag_ms)))
    return rho_max, lag * dt_ms


def _padded_maxima(x: np.ndarray, y: np.ndarray, lags: _Lags) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_max_lagged_rows` on the lags of x: ρ(τ_max) and τ_max (steps) of the rows y."""
    n, K = x.size, lags.K
    # zero padding to n + K keeps lags |k| <= K free of wrap-around
    nfft = scipy.fft.next_fast_len(n + K, real=True)
    x_f = np.conj(scipy.fft.rfft(x, nfft))
    rho_max = np.empty(y.shape[0])
    lag = np.empty(y.shape[0], dtype=np.int64)
    rows = max(1, _BATCH_ELEMENTS // nfft)
    for start in range(0, y.shape[0], rows):
        z = y[start : start + rows]
        c = scipy.fft.irfft(x_f * scipy.fft.rfft(z, nfft, axis=-1), nfft, axis=-1)
        s_xy = np.concatenate([c[:, nfft - K :], c[:, : K + 1]], axis=-1)
        rho_max[start : start + rows], lag[start : start + rows] = lags.best(s_xy, z)
    return rho_max, lag


def phase_randomised(
    y: np.ndarray, n_surrogates: int, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Phase-randomised surrogates of a trace (Theiler et al. 1992).

    Every rfft bin but the mean (and, for even n, the Nyquist bin, which
    must stay real) gets an independent uniform phase (drawn in single
    precision); the amplitudes stay, to a relative 1e-7.
    A surrogate therefore has the trace's mean, variance and periodogram,
    hence its (circular) autocorrelation, which is what inflates the
    lag-searched maximum of a correlation, and is independent of anything
    else. Phase randomisation rather than IAAFT: the Pearson correlation
    needs only the second-order structure, which phase randomisation keeps
    exactly, whereas IAAFT trades exactness of the spectrum for the
    amplitude distribution and costs an iteration per surrogate.

    Parameters
    ----------
    y : array_like, shape (n,)
        The trace (a model's V, any unit).
    n_surrogates : int
        Number of surrogates S.
    rng : numpy.random.Generator or int or None, optional
        Generator or seed.

    Returns
    -------
    numpy.ndarray, shape (S, n)
        The surrogates (unit of y).
    """
    y = np.asarray(y, dtype=np.float64)
    spectrum = scipy.fft.rfft(y)
    rotation = _rotations(y.size, n_surrogates, np.random.default_rng(rng))
    return scipy.fft.irfft(spectrum * rotation, y.size, axis=-1)


def _rotations(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` rows of e^{iφ} for the rfft bins of n samples (:func:`phase_randomised`).

    φ uniform on [0, 2π), drawn in single precision; 0 for the mean bin and,
    for even n, the Nyquist bin.
    """
    # single precision: vectorised sines, 40x faster; |e^{iφ}| = 1 within 1e-7
    phases = rng.random((count, n // 2 + 1), dtype=np.float32)
    phases *= np.float32(2.0 * np.pi)
    phases[:, 0] = 0.0
    if n % 2 == 0:
        phases[:, -1] = 0.0
    return np.cos(phases) + 1j * np.sin(phases)


def _wrapped_sums(
    z: np.ndarray, K: int, n_small: int, x_tail: np.ndarray, x_head: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The terms a circular correlation of x and the rows z wraps (:func:`_surrogate_maxima`).

    ``x_tail``: rfft of x's last K samples, ``x_head``: the conjugate rfft of
    its first K, both padded to ``n_small`` >= 2K. Returns ``wrap_pos[:, d]``
    = Σ_i z[i] x[n − K + i + d], wrapped into lag K − d, and ``wrap_neg[:, d]``
    = Σ_i x[i] z[n − K + i + d], wrapped into lag d − K (d = 0..K − 1).
    """
    if K == 0:
        empty = np.zeros((z.shape[0], 0))
        return empty, empty
    z_head = scipy.fft.rfft(z[:, :K], n_small, axis=-1)
    wrap_pos = scipy.fft.irfft(np.conj(z_head) * x_tail, n_small, axis=-1)[:, :K]
    z_tail = scipy.fft.rfft(z[:, z.shape[1] - K :], n_small, axis=-1)
    wrap_neg = scipy.fft.irfft(x_head * z_tail, n_small, axis=-1)[:, :K]
    return wrap_pos, wrap_neg


def _surrogate_maxima(
    x: np.ndarray, y: np.ndarray, lags: _Lags, count: int, rng: np.random.Generator
) -> np.ndarray:
    """ρ(τ_max) of ``count`` phase-randomised surrogates of y against x, both standardised.

    The same surrogates as :func:`phase_randomised` (the same draws of
    ``rng``) and the same maxima as :func:`_max_lagged_rows` of them (to
    rounding), one FFT fewer per surrogate: with Z = Y·e^{iφ} the
    surrogate's spectrum, the lagged sums Σ x(t) z(t + k) are the circular
    correlation irfft(X̄·Z) (length n, no zero padding) minus the terms it
    wraps around, for lag k > 0 the k products of x's last and z's first
    samples, for k < 0 those of x's first and z's last: two correlations of
    K samples, by FFTs of ~2K. So a surrogate costs two inverse FFTs of n
    (itself and its correlation) instead of three of n + K.
    """
    n, K = x.size, lags.K
    spectrum = scipy.fft.rfft(y)
    cross = np.conj(scipy.fft.rfft(x)) * spectrum
    n_small = scipy.fft.next_fast_len(max(2 * K, 1), real=True)
    x_tail = scipy.fft.rfft(x[n - K :], n_small) if K else None
    x_head = np.conj(scipy.fft.rfft(x[:K], n_small)) if K else None
    rho_max = np.empty(count)
    rows = max(1, _BATCH_ELEMENTS // n)
    for start in range(0, count, rows):
        rotation = _rotations(n, min(rows, count - start), rng)
        z = scipy.fft.irfft(spectrum * rotation, n, axis=-1)
        circular = scipy.fft.irfft(cross * rotation, n, axis=-1)
        wrap_pos, wrap_neg = _wrapped_sums(z, K, n_small, x_tail, x_head)
        s_xy = np.concatenate(
            [
                circular[:, n - K :] - wrap_neg,
                circular[:, :1],
                circular[:, 1 : K + 1] - wrap_pos[:, ::-1],
            ],
            axis=-1,
        )
        rho_max[start : start + z.shape[0]] = lags.best(s_xy, z)[0]
    return rho_max


def seed_rho_surrogates(
    lif: np.ndarray,
    model: np.ndarray,
    dt_ms: float,
    max_lag_ms: float = 100.0,
    n_surrogates: int = 99,
    rng: np.random.Generator | int | None = None,
) -> tuple[float, float, np.ndarray]:
    """One seed's lag-searched ρ(τ_max) and its surrogate null (MODEL.md §6.3).

    Parameters
    ----------
    lif, model : array_like, shape (n,)
        The network's and the model's V of one seed (mV), finite.
    dt_ms : float
        Sampling step (ms).
    max_lag_ms : float, optional
        Largest |τ| of the lag search (ms).
    n_surrogates : int, optional
        S >= 99 phase-randomised surrogates of the model (:func:`phase_randomised`),
        made and correlated in batches of at most ~2^18 samples
        (:func:`_surrogate_maxima`).
    rng : numpy.random.Generator or int or None, optional
        Generator or seed of the surrogates.

    Returns
    -------
    rho_max : float
        ρ(τ_max) of the model, equal to the maximum of
        :func:`nmmval.analysis.xcorr.lagged_correlation` (dimensionless).
    tau_max_ms : float
        τ_max (ms), as :func:`nmmval.analysis.xcorr.best_lag`.
    rho_surrogates : numpy.ndarray, shape (S,)
        The same lag-searched maximum for each surrogate.
    """
    if n_surrogates < 99:
        raise ValueError(f"n_surrogates: {n_surrogates!r} must be at least 99 (α = 0.01)")
    lif = _standardise_rows(np.asarray(lif, dtype=np.float64))
    model = _standardise_rows(np.asarray(model, dtype=np.float64))
    if model.size != lif.size:
        raise ValueError(f"lif and model differ in length ({lif.size} != {model.size})")
    lags = _Lags.of(lif, _lag_steps(lif.size, dt_ms, max_lag_ms))
    rho, lag = _padded_maxima(lif, model[None], lags)
    rho_surrogates = _surrogate_maxima(
        lif, model, lags, n_surrogates, np.random.default_rng(rng)
    )  # fmt: skip
    return float(rho[0]), float(lag[0] * dt_ms), rho_surrogates


def surrogate_pvalue(rho_k: np.ndarray, rho_surrogates: np.ndarray) -> float:
    """Seeds combined: is mean atanh ρ(τ_max) above its surrogate null? (MODEL.md §6.3).

    The observed statistic is the mean over seeds of atanh ρ_k(τ_max); the
    null sample s is the mean over seeds of atanh of the seeds' s-th
    surrogates (independent across seeds, so any pairing is valid);
    ``p = (1 + #{null_s >= observed}) / (S + 1)``, one-sided.

    Parameters
    ----------
    rho_k : array_like, shape (k,)
        ρ(τ_max) per seed (:func:`seed_rho_surrogates`).
    rho_surrogates : array_like, shape (k, S)
        The surrogates' lag-searched maxima per seed.

    Returns
    -------
    float
        p in [1/(S + 1), 1].
    """
    observed = _atanh(rho_k).mean()
    null = _atanh(np.atleast_2d(rho_surrogates)).mean(axis=0)
    return float((1 + np.count_nonzero(null >= observed)) / (null.size + 1))


def split_half_r(v_a: np.ndarray, v_b: np.ndarray) -> np.ndarray:
    """Split-half correlation r_k = corr(V_a, V_b) of each seed (MODEL.md §4, §6.3).

    Parameters
    ----------
    v_a, v_b : array_like, shape (k, n) or (n,)
        Split-half means of each seed (mV).

    Returns
    -------
    numpy.ndarray, shape (k,)
        Pearson r per seed (dimensionless; 0 if a half is constant).
    """
    a = _standardise_rows(np.atleast_2d(np.asarray(v_a, dtype=np.float64)))
    b = _standardise_rows(np.atleast_2d(np.asarray(v_b, dtype=np.float64)))
    return np.clip((a * b).mean(axis=-1), -1.0, 1.0)


def noise_ceiling_from_r(r_k: np.ndarray) -> float:
    """A cell's noise ceiling of ρ from its seeds' split-half correlations (MODEL.md §6.3).

    With V = (V_a + V_b)/2 the mean of two halves of the cells, each half
    its common part plus independent finite-N noise, the split-half
    correlation r is the reliability of one half and ``R = 2r/(1 + r)``
    that of V (Spearman–Brown), so a deterministic model of V correlates
    with V at most ``ρ_ceiling = sqrt(R)``. Seeds are combined through
    ``r̄ = tanh(mean atanh r_k)`` (§6.1's average of correlations), and the
    cell's ceiling is ``sqrt(2r̄/(1 + r̄))``; for r̄ <= 0 (no common part
    found) it is 0. Input the halves receive separately but a model is fed
    in total (the external trains) counts as noise here, so a model driven
    by the recorded input may exceed it.

    Parameters
    ----------
    r_k : array_like, shape (k,)
        Split-half correlation per seed (:func:`split_half_r`).

    Returns
    -------
    float
        ρ_ceiling (dimensionless, in [0, 1]).
    """
    r = mean_rho(r_k)
    return float(np.sqrt(max(2.0 * r / (1.0 + r), 0.0)))


def noise_ceiling(v_a: np.ndarray, v_b: np.ndarray) -> tuple[np.ndarray, float]:
    """Split-half noise ceiling of ρ (Spearman–Brown, MODEL.md §6.3) from the halves' traces.

    :func:`split_half_r` per seed, then :func:`noise_ceiling_from_r`.

    Parameters
    ----------
    v_a, v_b : array_like, shape (k, n) or (n,)
        Split-half means of each seed (mV).

    Returns
    -------
    r_k : numpy.ndarray, shape (k,)
        Split-half correlation per seed (0 if a half is constant).
    rho_ceiling : float
        The cell's ceiling (dimensionless, in [0, 1]).
    """
    r_k = split_half_r(v_a, v_b)
    return r_k, noise_ceiling_from_r(r_k)


def chi2_floor(power_a: np.ndarray, power_b: np.ndarray) -> float:
    """The floor of χ²: mean over seeds of χ² between the two halves' spectra (MODEL.md §6.3).

    Each half has about twice the finite-N fluctuation of V, so this floor
    is on the high side of what separates V from a perfect model of its
    common part.

    Parameters
    ----------
    power_a, power_b : array_like, shape (k, L)
        Per-seed spectra (:func:`welch_spectra`) of the split-half means V_a, V_b.

    Returns
    -------
    float
        Mean of :func:`chi2_per_seed` (dimensionless).
    """
    return float(chi2_per_seed(power_a, power_b).mean())


@dataclass(frozen=True, eq=False)
class Verdict:
    """The verdict of one model in one cell and every number behind it (MODEL.md §6.3).

    Attributes
    ----------
    code : int
        ADEQUATE (1), UNDECIDED (0) or INADEQUATE (−1).
    reasons : tuple of str
        The inadequacy conditions met (empty unless inadequate):
        ``"diverged"``, ``"spectra_differ"`` (equivalence not shown and the
        difference test rejects), ``"rho_below_level"`` (upper bound of ρ
        below the adequacy level), ``"rho_not_above_null"`` (surrogate p > α).
    chi2_k : numpy.ndarray, shape (k,)
        Per-seed χ² of network and model (dimensionless).
    chi2_null_mean : float
        Mean of the seed-null χ²_ij.
    margin : float
        Equivalence margin m.
    equivalence_bound : float
        Upper 95 % bound of mean χ²_k; equivalence shown if below m.
    difference_statistic, difference_p : float
        χ² of the seed means and its paired permutation p.
    chi2_floor : float
        Mean over seeds of χ² between the two halves' spectra (the floor of χ²).
    rho_k, tau_max_ms_k : numpy.ndarray, shape (k,)
        ρ(τ_max) (dimensionless) and τ_max (ms) per seed.
    rho_mean : float
        ``tanh(mean atanh ρ_k)``.
    rho_lower, rho_upper : float
        Seed-level one-sided 95 % bounds of ρ(τ_max).
    surrogate_p : float
        p of mean atanh ρ against its phase-randomised surrogates.
    split_half_r_k : numpy.ndarray, shape (k,)
        Split-half correlation per seed.
    rho_ceiling : float
        Noise ceiling of ρ.
    rho_level : float
        ``rho_adequate × rho_ceiling``, the adequacy level.
    alpha : float
        Significance level of the difference and surrogate tests.
    """

    code: int
    reasons: tuple[str, ...]
    chi2_k: np.ndarray = field(repr=False)
    chi2_null_mean: float
    margin: float
    equivalence_bound: float
    difference_statistic: float
    difference_p: float
    chi2_floor: float
    rho_k: np.ndarray = field(repr=False)
    tau_max_ms_k: np.ndarray = field(repr=False)
    rho_mean: float
    rho_lower: float
    rho_upper: float
    surrogate_p: float
    split_half_r_k: np.ndarray = field(repr=False)
    rho_ceiling: float
    rho_level: float
    alpha: float

    @property
    def label(self) -> str:
        """``"adequate"``, ``"undecided"`` or ``"inadequate"``."""
        return _LABELS[self.code]

    @property
    def equivalent(self) -> bool:
        """Spectral equivalence shown: equivalence bound below the margin."""
        return bool(self.equivalence_bound < self.margin)

    @property
    def rho_adequate(self) -> bool:
        """ρ adequacy met: lower bound of ρ(τ_max) at or above the adequacy level."""
        return bool(self.rho_lower >= self.rho_level)

    @property
    def rho_over_ceiling(self) -> float:
        """``rho_mean / rho_ceiling`` (NaN for a zero ceiling)."""
        return self.rho_mean / self.rho_ceiling if self.rho_ceiling > 0 else float("nan")

    @property
    def reason_mask(self) -> int:
        """The reasons as stored: the sum of their bits (:data:`REASON_FLAG_MASKS`)."""
        bits = dict(zip(REASON_FLAG_MEANINGS.split(), REASON_FLAG_MASKS, strict=True))
        return sum(bits[r] for r in self.reasons)


def decide(
    *,
    diverged: bool,
    equivalence_bound: float,
    margin: float,
    difference_p: float,
    rho_lower: float,
    rho_upper: float,
    rho_level: float,
    surrogate_p: float,
    alpha: float = 0.01,
) -> tuple[int, tuple[str, ...]]:
    """The verdict rule of MODEL.md §6.3 from its numbers.

    - inadequate: the model diverged; or equivalence not shown
      (bound >= m, or NaN) and the difference test rejects (p <= α); or the
      upper bound of ρ(τ_max) is below the level; or ρ is not above its
      surrogate null (p > α);
    - adequate (if not inadequate): equivalence shown (bound < m) and ρ
      adequacy met (lower bound >= level);
    - undecided otherwise (a NaN never shows anything).

    Returns
    -------
    code : int
        ADEQUATE, UNDECIDED or INADEQUATE.
    reasons : tuple of str
        The inadequacy conditions met (see :class:`Verdict`).
    """
    if diverged:
        return INADEQUATE, ("diverged",)
    equivalent = equivalence_bound < margin
    reasons = tuple(
        name
        for name, met in (
            ("spectra_differ", not equivalent and difference_p <= alpha),
            ("rho_below_level", rho_upper < rho_level),
            ("rho_not_above_null", surrogate_p > alpha),
        )
        if met
    )
    if reasons:
        return INADEQUATE, reasons
    return (ADEQUATE if equivalent and rho_lower >= rho_level else UNDECIDED), ()


def network_reference(
    power_lif: np.ndarray,
    power_a: np.ndarray,
    power_b: np.ndarray,
    split_half_r_k: np.ndarray,
    *,
    equivalence_factor: float = 2.0,
    rho_adequate: float = 0.8,
) -> dict:
    """The network's own numbers of one cell, against which every model is judged (§6.3).

    Parameters
    ----------
    power_lif : array_like, shape (k, L)
        Per-seed Welch spectra of the network's V.
    power_a, power_b : array_like, shape (k, L)
        Per-seed Welch spectra of the split-half means V_a, V_b.
    split_half_r_k : array_like, shape (k,)
        Split-half correlation per seed (:func:`split_half_r`).
    equivalence_factor, rho_adequate : float, optional
        ``analysis.*`` settings of the same names.

    Returns
    -------
    dict
        ``chi2_null_mean`` (mean of :func:`seed_null`; NaN with one seed),
        ``margin`` (:func:`equivalence_margin`), ``chi2_floor``
        (:func:`chi2_floor`), ``split_half_r_k`` (as given), ``rho_ceiling``
        (:func:`noise_ceiling_from_r`) and ``rho_level`` (``rho_adequate``
        × ceiling); the fields of :class:`Verdict` of these names.
    """
    chi2_null = seed_null(power_lif)
    ceiling = noise_ceiling_from_r(split_half_r_k)
    return {
        "chi2_null_mean": equivalence_margin(chi2_null, 1.0),
        "margin": equivalence_margin(chi2_null, equivalence_factor),
        "chi2_floor": chi2_floor(power_a, power_b),
        "split_half_r_k": np.asarray(split_half_r_k, dtype=np.float64),
        "rho_ceiling": ceiling,
        "rho_level": rho_adequate * ceiling,
    }


def combine_cell(
    power_lif: np.ndarray,
    power_model: np.ndarray,
    power_a: np.ndarray,
    power_b: np.ndarray,
    rho_k: np.ndarray,
    tau_max_ms_k: np.ndarray,
    rho_surrogates: np.ndarray,
    split_half_r_k: np.ndarray,
    diverged: bool = False,
    *,
    equivalence_factor: float = 2.0,
    rho_adequate: float = 0.8,
    alpha: float = 0.01,
    confidence: float = 0.95,
    rng: np.random.Generator | int | None = None,
) -> Verdict:
    """The verdict of one model in one cell from its seeds' pieces (MODEL.md §6.3).

    A pure function of the per-seed pieces the compare stage stores; the
    seeds' order is the same in every argument.

    Parameters
    ----------
    power_lif, power_model : array_like, shape (k, L)
        Per-seed Welch spectra of network and model on the same bins (the
        whole band: :func:`nmmval.analysis.spectra.join_above`).
    power_a, power_b : array_like, shape (k, L)
        Per-seed Welch spectra of the split-half means V_a, V_b.
    rho_k, tau_max_ms_k : array_like, shape (k,)
        ρ(τ_max) (dimensionless) and τ_max (ms) of network and model per seed.
    rho_surrogates : array_like, shape (k, S)
        The lag-searched maxima of each seed's surrogates (:func:`seed_rho_surrogates`).
    split_half_r_k : array_like, shape (k,)
        Split-half correlation per seed (:func:`split_half_r`).
    diverged : bool, optional
        The model diverged in some seed; a non-finite spectrum or ρ of the
        model counts too. Then the verdict is inadequate (and the cell
        counts in every denominator of the rates reported), the model's
        numbers are NaN and the network's (margin, floor, ceiling) are still
        given.
    equivalence_factor, rho_adequate, alpha : float, optional
        ``analysis.*`` settings of the same names.
    confidence : float, optional
        One-sided confidence of the seed-level bounds.
    rng : numpy.random.Generator or int or None, optional
        Generator or seed of the random sign patterns beyond EXACT_MAX_K seeds.

    Returns
    -------
    Verdict
    """
    network = network_reference(
        power_lif,
        power_a,
        power_b,
        split_half_r_k,
        equivalence_factor=equivalence_factor,
        rho_adequate=rho_adequate,
    )
    power_model = np.atleast_2d(np.asarray(power_model, dtype=np.float64))
    rho_k = np.asarray(rho_k, dtype=np.float64).ravel()
    tau_max_ms_k = np.asarray(tau_max_ms_k, dtype=np.float64).ravel()
    rho_surrogates = np.atleast_2d(np.asarray(rho_surrogates, dtype=np.float64))
    finite = all(np.isfinite(x).all() for x in (power_model, rho_k, rho_surrogates))
    if diverged or not finite:
        nan, nan_k = float("nan"), np.full(rho_k.size, np.nan)
        return Verdict(
            INADEQUATE,
            ("diverged",),
            chi2_k=nan_k,
            equivalence_bound=nan,
            difference_statistic=nan,
            difference_p=nan,
            rho_k=nan_k,
            tau_max_ms_k=nan_k,
            rho_mean=nan,
            rho_lower=nan,
            rho_upper=nan,
            surrogate_p=nan,
            alpha=alpha,
            **network,
        )
    chi2_k = chi2_per_seed(power_lif, power_model)
    bound = equivalence_bound(chi2_k, confidence)
    statistic, p_diff = difference_test(power_lif, power_model, rng=rng)
    rho_lower, rho_upper = rho_bounds(rho_k, confidence)
    p_surr = surrogate_pvalue(rho_k, rho_surrogates)
    code, reasons = decide(
        diverged=False,
        equivalence_bound=bound,
        margin=network["margin"],
        difference_p=p_diff,
        rho_lower=rho_lower,
        rho_upper=rho_upper,
        rho_level=network["rho_level"],
        surrogate_p=p_surr,
        alpha=alpha,
    )
    return Verdict(
        code,
        reasons,
        chi2_k=chi2_k,
        equivalence_bound=bound,
        difference_statistic=statistic,
        difference_p=p_diff,
        rho_k=rho_k,
        tau_max_ms_k=tau_max_ms_k,
        rho_mean=mean_rho(rho_k),
        rho_lower=rho_lower,
        rho_upper=rho_upper,
        surrogate_p=p_surr,
        alpha=alpha,
        **network,
    )


def _whole_band(x: np.ndarray, dt_ms: float, segment_ms: float, f_max_Hz: float | None):
    """Per-seed Welch spectra as the compare stage stores them, rejoined (k, L)."""
    freq_Hz, power = welch_spectra(x, dt_ms, segment_ms)
    if f_max_Hz is None:
        return power
    return join_above(*split_at_fmax(freq_Hz, power, f_max_Hz)[1:])


def validate(
    lif: np.ndarray,
    model: np.ndarray,
    v_a: np.ndarray,
    v_b: np.ndarray,
    dt_ms: float,
    *,
    diverged: bool = False,
    segment_ms: float = 2000.0,
    f_max_Hz: float | None = None,
    equivalence_factor: float = 2.0,
    rho_adequate: float = 0.8,
    alpha: float = 0.01,
    max_lag_ms: float = 100.0,
    n_surrogates: int = 99,
    confidence: float = 0.95,
    rng: np.random.Generator | int | None = None,
) -> Verdict:
    """The whole protocol of MODEL.md §6.3 for one cell and one model, from the traces.

    The per-seed pieces (:func:`welch_spectra`, :func:`seed_rho_surrogates`,
    :func:`split_half_r`), then :func:`combine_cell`.

    Parameters
    ----------
    lif, model : array_like, shape (k, n)
        V of the network and of the model (mV) per seed over [T0, T).
    v_a, v_b : array_like, shape (k, n)
        The network's split-half means (mV).
    dt_ms : float
        Sampling step (ms).
    diverged : bool, optional
        The model diverged in some seed; a non-finite model value counts
        too (see :func:`combine_cell`).
    segment_ms : float, optional
        Welch segment (ms) of :func:`welch_spectra`.
    f_max_Hz : float or None, optional
        ``analysis.fmax_store_Hz``: the bins above it enter as one lumped bin,
        as the compare stage stores them; None: every bin on its own.
    equivalence_factor, rho_adequate, alpha, max_lag_ms, n_surrogates : optional
        ``analysis.*`` settings of the same names.
    confidence : float, optional
        One-sided confidence of the seed-level bounds.
    rng : numpy.random.Generator or int or None, optional
        Generator or seed of the surrogates (and of random sign patterns
        beyond EXACT_MAX_K seeds).

    Returns
    -------
    Verdict
    """
    rng = np.random.default_rng(rng)
    lif = np.atleast_2d(np.asarray(lif, dtype=np.float64))
    model = np.atleast_2d(np.asarray(model, dtype=np.float64))
    k = lif.shape[0]
    if model.shape != lif.shape:
        raise ValueError(f"lif and model differ in shape ({lif.shape} != {model.shape})")
    diverged = diverged or not np.all(np.isfinite(model))
    spectra = [_whole_band(x, dt_ms, segment_ms, f_max_Hz) for x in (lif, model, v_a, v_b)]
    if diverged:  # no correlation to search
        per_seed = [(np.nan, np.nan, np.full(n_surrogates, np.nan))] * k
    else:
        per_seed = [
            seed_rho_surrogates(lif[i], model[i], dt_ms, max_lag_ms, n_surrogates, rng)
            for i in range(k)
        ]
    rho_k, tau_k, rho_surrogates = (np.array([s[j] for s in per_seed]) for j in range(3))
    return combine_cell(
        *spectra,
        rho_k,
        tau_k,
        rho_surrogates,
        split_half_r(v_a, v_b),
        diverged,
        equivalence_factor=equivalence_factor,
        rho_adequate=rho_adequate,
        alpha=alpha,
        confidence=confidence,
        rng=rng,
    )


def paper_chi2_cut(
    window_ms: float, dt_ms: float, f_max_Hz: float | None = None, alpha: float = 0.01
) -> float:
    """The normalised χ² at which the paper's χ² test (§6.2) gives p = α.

    :func:`nmmval.analysis.spectra.chi2_pvalue_paper` scales both spectra of an
    n-sample window to n counts, so its statistic is n × the normalised χ²
    of Eq. 25 and it rejects when ``χ² > chi2.isf(α, L − 1) / n`` with L
    the bins of the band (no empty bins). With L − 1 ≈ f_max·window and
    n = window/dt this is ≈ f_max·dt × (1 + z_α·sqrt(2/(L − 1))) (f_max in
    kHz, dt in ms): a fixed cut
    set by the band and the sampling, blind to how much the network varies
    from seed to seed. E.g. window 27 000 ms at dt = 0.1 ms, α = 0.01:
    0.1020 for the band to 1 kHz, 0.5045 for all bins to Nyquist.

    Parameters
    ----------
    window_ms : float
        Analysis window T − T0 (ms).
    dt_ms : float
        Sampling step (ms).
    f_max_Hz : float or None, optional
        Upper end of the band (Hz); None: all ``n // 2 + 1`` rfft bins.
    alpha : float, optional
        Level of the test (the paper's 0.01).

    Returns
    -------
    float
        The cut on the normalised χ² (dimensionless).
    """
    n = int(round(window_ms / dt_ms))
    n_bins = n // 2 + 1
    if f_max_Hz is not None:
        # bin j is at j/(n·dt); keep j <= f_max·n·dt
        n_bins = min(n_bins, int(np.floor(f_max_Hz * n * dt_ms * 1e-3 + 1e-9)) + 1)
    return float(scipy.stats.chi2.isf(alpha, n_bins - 1) / n)
