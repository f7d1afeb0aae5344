"""The validation protocol (MODEL.md §6.3), and the tests of its tests on data with known truth.

Synthetic traces are stationary Gaussian processes (``scipy.signal.lfilter``
of white noise, 500 samples of burn-in dropped) at dt = 2 ms instead of the
network's 0.1 ms, T = 2 s per seed (1000 samples): what the tests' error
rates depend on is the number of correlation times per trace and the
spectral shape, both set in ms, while the cost grows with the samples.
Nyquist is 250 Hz, above the fastest process (150 Hz). Welch segments of
500 ms give 7 segments per seed (2 Hz bins); the lag search spans the
paper's |τ| <= 100 ms (50 steps each side); k = 10 seeds per trial as in
the paper configs, S = 99 surrogates, α = 0.01, 200 trials per rate.

Null pairs ("LIF" and "model" independent draws of the same process): an
OU process with τ = 20 ms and AR(2) processes with a 50 ms envelope decay
(peak half-width 3.2 Hz) at 10, 100 and 150 Hz. A false-positive count
must stay within the 99 % binomial upper bound of 200 trials at α = 0.01,
``binom.ppf(0.99, 200, 0.01)`` = 6 (3 %). Measured counts of 200 cells
(fixed seeds; "paper/seed" of 2000 seed tests; "equivalence" counts
passes, required >= 180):

=================  ==========  =========  ==========  ===============  ============
process            difference  surrogate  paper/seed  paper, Stouffer  equivalence
=================  ==========  =========  ==========  ===============  ============
OU 20 ms           1 (0.5 %)   1 (0.5 %)  12.6 %      200 (100 %)      199 (99.5 %)
AR(2) 10 Hz        3 (1.5 %)   2 (1.0 %)  13.4 %      200 (100 %)      195 (97.5 %)
AR(2) 100 Hz       2 (1.0 %)   2 (1.0 %)  22.0 %      200 (100 %)      200 (100 %)
AR(2) 150 Hz       1 (0.5 %)   0 (0.0 %)  26.9 %      200 (100 %)      200 (100 %)
=================  ==========  =========  ==========  ===============  ============

(paper: Fisher z with n_eff at the best lag per seed and Stouffer over the
seeds, :mod:`nmmval.analysis.xcorr`; it ignores the lag search and so rejects most
null pairs, which is why the verdicts do not use it.)
"""

import dataclasses
import functools
import itertools
import math

import numpy as np
import pytest
import scipy.optimize
import scipy.signal
import scipy.stats

from nmmval.analysis import protocol
from nmmval.analysis.protocol import (
    ADEQUATE,
    INADEQUATE,
    REASON_FLAG_MASKS,
    REASON_FLAG_MEANINGS,
    UNDECIDED,
    VERDICT_FLAG_MEANINGS,
    VERDICT_FLAG_VALUES,
    Verdict,
    chi2_floor,
    chi2_per_seed,
    combine_cell,
    decide,
    difference_test,
    equivalence_bound,
    equivalence_margin,
    max_lagged_correlation,
    noise_ceiling,
    noise_ceiling_from_r,
    normalised_spectra,
    paper_chi2_cut,
    phase_randomised,
    rho_bounds,
    seed_null,
    seed_rho_surrogates,
    sign_patterns,
    split_half_r,
    surrogate_pvalue,
    validate,
    welch_frequencies,
    welch_spectra,
)
from nmmval.analysis.spectra import chi2_pvalue_paper, chi2_statistic, join_above, split_at_fmax
from nmmval.analysis.xcorr import best_lag, effective_n, fisher_pvalue, lagged_correlation, stouffer

ALPHA = 0.01
DT_MS = 2.0
N_SAMPLES = 1000
BURN_IN = 500
SEGMENT_MS = 500.0
MAX_LAG_MS = 100.0
K_SEEDS = 10
N_SURROGATES = 99
N_TRIALS = 200
#: 99 % binomial upper bound of the false-positive count at α over N_TRIALS trials.
FP_BOUND = int(scipy.stats.binom.ppf(0.99, N_TRIALS, ALPHA))


def _ou(tau_ms: float):
    """lfilter coefficients of a unit-variance OU (exact AR(1)) process at DT_MS."""
    a = math.exp(-DT_MS / tau_ms)
    return [math.sqrt(1.0 - a * a)], [1.0, -a]


def _ar2(f_Hz: float, decay_ms: float = 50.0):
    """lfilter coefficients of an AR(2) process peaked at f_Hz with envelope decay decay_ms."""
    r = math.exp(-DT_MS / decay_ms)
    w = 2.0 * math.pi * f_Hz * DT_MS * 1e-3
    return [1.0], [1.0, -2.0 * r * math.cos(w), r * r]


NULL_PROCESSES = {
    "OU 20 ms": _ou(20.0),
    "AR(2) 10 Hz": _ar2(10.0),
    "AR(2) 100 Hz": _ar2(100.0),
    "AR(2) 150 Hz": _ar2(150.0),
}


def _draw(rng, filt, shape, n=N_SAMPLES):
    """Independent stationary draws of the process ``filt`` = (b, a), shape ``shape + (n,)``."""
    b, a = filt
    noise = rng.standard_normal(tuple(shape) + (n + BURN_IN,))
    return scipy.signal.lfilter(b, a, noise, axis=-1)[..., BURN_IN:]


@functools.cache
def _null_pair_counts(name: str) -> dict[str, int]:
    """Rejections and equivalence passes of N_TRIALS null cells of one process (fixed seed)."""
    rng = np.random.default_rng([2021, list(NULL_PROCESSES).index(name)])
    counts = dict.fromkeys(["difference", "surrogate", "equivalent", "paper_seed", "paper"], 0)
    for _ in range(N_TRIALS):
        lif, model = _draw(rng, NULL_PROCESSES[name], (2, K_SEEDS))
        _, p_lif = welch_spectra(lif, DT_MS, SEGMENT_MS)
        _, p_model = welch_spectra(model, DT_MS, SEGMENT_MS)
        counts["difference"] += difference_test(p_lif, p_model)[1] <= ALPHA
        margin = equivalence_margin(seed_null(p_lif))
        counts["equivalent"] += equivalence_bound(chi2_per_seed(p_lif, p_model)) < margin
        seeds = [
            seed_rho_surrogates(lif[i], model[i], DT_MS, MAX_LAG_MS, N_SURROGATES, rng)
            for i in range(K_SEEDS)
        ]
        rho_k = np.array([s[0] for s in seeds])
        counts["surrogate"] += surrogate_pvalue(rho_k, np.array([s[2] for s in seeds])) <= ALPHA
        # the paper's reading, as cmd_compare and the cube compute it
        paper_p = []
        for i in range(K_SEEDS):
            _, rho_max = best_lag(*lagged_correlation(lif[i], model[i], DT_MS, MAX_LAG_MS))
            paper_p.append(fisher_pvalue(rho_max, effective_n(lif[i], model[i])))
        counts["paper_seed"] += int(np.count_nonzero(np.array(paper_p) <= ALPHA))
        counts["paper"] += stouffer(paper_p) <= ALPHA
    return counts


# --- spectra and χ² ---------------------------------------------------------


def test_welch_spectra_are_scipy_welch_row_by_row():
    rng = np.random.default_rng(3)
    x = 5.0 + rng.standard_normal((3, 1200))
    x[1] = -65.0  # a constant trace
    freq, power = welch_spectra(x, 0.5, segment_ms=100.0)
    window = scipy.signal.windows.hamming(200, sym=True)
    for i in (0, 2):
        f_ref, p_ref = scipy.signal.welch(x[i], fs=2000.0, window=window, noverlap=100)
        np.testing.assert_allclose(power[i], p_ref, rtol=1e-12)
    np.testing.assert_array_equal(freq, f_ref)
    assert np.all(power[1] == 0.0)
    freq_band, power_band = welch_spectra(x, 0.5, segment_ms=100.0, f_max_Hz=300.0)
    assert freq_band[-1] == 300.0
    np.testing.assert_array_equal(power_band, power[:, freq <= 300.0])
    # a trace shorter than a segment is one segment
    freq_short, _ = welch_spectra(x[:, :50], 0.5, segment_ms=100.0)
    assert freq_short.size == 26
    # the bins are known before any trace is (the cube's coordinate)
    np.testing.assert_array_equal(welch_frequencies(1200, 0.5, 100.0), freq)
    np.testing.assert_array_equal(welch_frequencies(50, 0.5, 100.0), freq_short)


def test_chi2_per_seed_seed_null_and_floor_follow_chi2_statistic():
    rng = np.random.default_rng(4)
    P = rng.random((5, 40)) * 3.0
    Q = rng.random((5, 40))
    P[:, 0] = Q[:, 0] = 0.0  # an empty bin is skipped
    Q[2] = 0.0  # a zero spectrum stays zero: χ² = 1
    chi2_k = chi2_per_seed(P, Q)
    np.testing.assert_allclose(chi2_k, [chi2_statistic(P[i], Q[i]) for i in range(5)], rtol=1e-12)
    assert chi2_k[2] == pytest.approx(1.0)
    assert chi2_floor(P, Q) == pytest.approx(chi2_k.mean(), rel=1e-12)
    null = seed_null(P)
    pairs = [chi2_statistic(P[i], P[j]) for i, j in itertools.combinations(range(5), 2)]
    np.testing.assert_allclose(null, pairs, rtol=1e-12)
    assert equivalence_margin(null, 2.0) == pytest.approx(2.0 * np.mean(pairs))
    assert math.isnan(equivalence_margin(seed_null(P[:1])))
    np.testing.assert_allclose(normalised_spectra(P).sum(axis=-1), 1.0)


# --- difference test ----------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3, 6, 9])
def test_exact_sign_flip_enumeration_equals_brute_force(k):
    """All 2^k label swaps by itertools.product, statistic by chi2_statistic of the seed means."""
    rng = np.random.default_rng(k)
    P = rng.random((k, 30)) + np.linspace(1.0, 0.0, 30)
    Q = rng.random((k, 30)) + 0.3
    P[:, 5] = Q[:, 5] = 0.0
    p, q = normalised_spectra(P), normalised_spectra(Q)
    observed = chi2_statistic(p.mean(axis=0), q.mean(axis=0))
    null = []
    for swapped in itertools.product([False, True], repeat=k):
        s = np.array(swapped)[:, None]
        null.append(chi2_statistic(np.where(s, q, p).mean(axis=0), np.where(s, p, q).mean(axis=0)))
    p_brute = np.count_nonzero(np.array(null) >= observed * (1 - 1e-12)) / 2**k
    statistic, p_value = difference_test(P, Q)
    assert statistic == pytest.approx(observed, rel=1e-12)
    assert p_value == p_brute
    assert p_value >= 2.0 ** (1 - k)


def test_sign_patterns_enumerate_every_pattern_with_its_mirror():
    eps = sign_patterns(4)
    assert eps.shape == (16, 4)
    np.testing.assert_array_equal(eps[0], np.ones(4))
    assert len({tuple(row) for row in eps}) == 16
    np.testing.assert_array_equal(eps[::-1], -eps)


def test_random_sign_flips_beyond_exact_match_the_exact_p():
    """k = 15 > 14: 9999 random patterns + the observed one, within 4 binomial sd of exact."""
    rng = np.random.default_rng(15)
    P = rng.random((15, 25)) + 1.0
    Q = P * (1.0 + 0.03 * np.linspace(-1.0, 1.0, 25)) + 0.3 * rng.random((15, 25))
    _, p_exact = difference_test(P, Q, exact_max_k=15)
    statistic, p_random = difference_test(P, Q, rng=1)
    assert statistic > 0
    assert 0.01 < p_exact < 0.9, "the case must have an informative p"
    assert abs(p_random - p_exact) <= 4 * math.sqrt(p_exact * (1 - p_exact) / 9999) + 1e-4
    assert (p_random * 10000) == pytest.approx(round(p_random * 10000))
    assert difference_test(P, Q, rng=1)[1] == p_random


def test_difference_test_power_ou_5_vs_10_ms():
    """Power >= 90 % for OU τ = 5 vs 10 ms, 10 seeds, α = 0.01; measured 200/200 = 100 %."""
    rng = np.random.default_rng(510)
    rejections = 0
    for _ in range(N_TRIALS):
        _, p_lif = welch_spectra(_draw(rng, _ou(5.0), (K_SEEDS,)), DT_MS, SEGMENT_MS)
        _, p_model = welch_spectra(_draw(rng, _ou(10.0), (K_SEEDS,)), DT_MS, SEGMENT_MS)
        rejections += difference_test(p_lif, p_model)[1] <= ALPHA
    assert rejections >= 0.9 * N_TRIALS, f"power {rejections}/{N_TRIALS}"


# --- bounds -------------------------------------------------------------------


def test_equivalence_and_rho_bounds_are_one_sided_t_bounds():
    chi2_k = np.array([0.02, 0.05, 0.03, 0.08, 0.04, 0.03])
    reference = scipy.stats.ttest_1samp(chi2_k, 0.0, alternative="less").confidence_interval(0.95)
    assert equivalence_bound(chi2_k) == pytest.approx(reference.high, rel=1e-12)
    rho_k = np.array([0.7, 0.8, 0.75, 0.9, 0.6])
    z = np.arctanh(rho_k)
    lower = scipy.stats.ttest_1samp(z, 0.0, alternative="greater").confidence_interval(0.95).low
    upper = scipy.stats.ttest_1samp(z, 0.0, alternative="less").confidence_interval(0.95).high
    assert rho_bounds(rho_k) == pytest.approx((np.tanh(lower), np.tanh(upper)), rel=1e-12)
    assert math.isnan(equivalence_bound([0.1]))
    assert all(math.isnan(b) for b in rho_bounds([0.5]))


# --- lagged correlation and surrogates ----------------------------------------


def test_max_lagged_correlation_equals_xcorr_maximum():
    rng = np.random.default_rng(5)
    x = scipy.signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal(700))
    y = np.stack(
        [
            40.0 + 3.0 * np.roll(x, 9) + rng.standard_normal(700),
            np.sin(np.arange(700) * 0.3) + 0.5 * rng.standard_normal(700),
            np.cumsum(rng.standard_normal(700)),
            np.full(700, -60.0),  # constant: ρ = 0 everywhere, τ_max = 0
        ]
    )
    rho, tau = max_lagged_correlation(x, y, dt_ms=0.5, max_lag_ms=40.0)
    for i in range(4):
        tau_ref, rho_ref = best_lag(*lagged_correlation(x, y[i], 0.5, 40.0))
        assert rho[i] == pytest.approx(rho_ref, abs=1e-12)
        assert tau[i] == tau_ref
    assert (rho[3], tau[3]) == (0.0, 0.0)
    # batch shape kept; the lag range capped at n - 2 steps
    rho2, tau2 = max_lagged_correlation(x[:6], np.stack([y[:2, :6]] * 3), 1.0, 100.0)
    assert rho2.shape == tau2.shape == (3, 2)
    _, rho_ref = best_lag(*lagged_correlation(x[:6], y[1, :6], 1.0, 100.0))
    # the outermost lags overlap in 2 samples (ρ = ±1), so only ρ, not the tied τ, is compared
    assert rho2[2, 1] == pytest.approx(rho_ref, abs=1e-12)
    assert np.all(np.abs(tau2) <= 4.0)


def test_seed_rho_surrogates_observed_equals_xcorr_maximum():
    """The observed ρ(τ_max) and τ_max equal xcorr.lagged_correlation's maximum (1e-12)."""
    rng = np.random.default_rng(6)
    for name, filt in NULL_PROCESSES.items():
        lif = _draw(rng, filt, ())
        model = -70.0 + 2.0 * np.roll(lif, 4) + _draw(rng, filt, ())
        rho, tau, rho_surrogates = seed_rho_surrogates(lif, model, DT_MS, MAX_LAG_MS, 99, rng)
        tau_ref, rho_ref = best_lag(*lagged_correlation(lif, model, DT_MS, MAX_LAG_MS))
        assert rho == pytest.approx(rho_ref, abs=1e-12), name
        assert tau == tau_ref, name
        assert rho_surrogates.shape == (99,)
        assert np.all(rho_surrogates < rho), name
    with pytest.raises(ValueError, match="at least 99"):
        seed_rho_surrogates(lif, model, DT_MS, MAX_LAG_MS, 98)


def test_batches_give_the_same_surrogates_and_maxima(monkeypatch):
    """Batches of 16 surrogates (and of 15 FFT rows) reproduce the single batch exactly."""
    rng = np.random.default_rng(13)
    lif, noise = _draw(rng, _ou(20.0), (2,))
    one_batch = seed_rho_surrogates(lif, lif + noise, DT_MS, MAX_LAG_MS, 99, rng=5)
    monkeypatch.setattr(protocol, "_BATCH_ELEMENTS", 2**14)
    batches = seed_rho_surrogates(lif, lif + noise, DT_MS, MAX_LAG_MS, 99, rng=5)
    assert batches[:2] == one_batch[:2]
    np.testing.assert_array_equal(batches[2], one_batch[2])


@pytest.mark.parametrize(
    ("n", "max_lag_ms"),
    [(2001, 100.0), (2000, 1000.0), (700, 1.0), (300, 300.0), (31, 1e6)],
)
def test_circular_surrogate_maxima_equal_the_zero_padded_ones(n, max_lag_ms):
    """The surrogates' maxima by circular correlation minus its wrapped terms equal
    those of the same surrogates (phase_randomised, same draws) by zero padding:
    1e-12 where the shortest overlap has n/2 samples or more (K = 0 included);
    1e-6 where it has two (K = n − 2: a ρ of ±1 from a 2-sample overlap, ill-conditioned
    either way)."""
    rng = np.random.default_rng(n)
    lif = np.cumsum(rng.standard_normal(n))
    model = np.roll(lif, 3) + rng.standard_normal(n)
    x, y = protocol._standardise_rows(lif), protocol._standardise_rows(model)
    K = protocol._lag_steps(n, DT_MS, max_lag_ms)
    got = protocol._surrogate_maxima(x, y, protocol._Lags.of(x, K), 37, np.random.default_rng(2))
    surrogates = phase_randomised(y, 37, rng=np.random.default_rng(2))
    want = protocol._max_lagged_rows(x, surrogates, DT_MS, max_lag_ms)[0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 if 2 * K <= n else 1e-6)


@pytest.mark.parametrize("n", [501, 512])
def test_phase_randomised_surrogates_keep_the_periodogram(n):
    rng = np.random.default_rng(n)
    y = 3.0 + scipy.signal.lfilter([1.0], [1.0, -0.95], rng.standard_normal(n))
    surrogates = phase_randomised(y, 20, rng=7)
    assert surrogates.shape == (20, n)
    amplitude = np.abs(np.fft.rfft(y))
    np.testing.assert_allclose(
        np.abs(np.fft.rfft(surrogates)), np.tile(amplitude, (20, 1)), 1e-6, 1e-9 * amplitude.max()
    )
    np.testing.assert_allclose(surrogates.mean(axis=-1), y.mean(), rtol=1e-12)
    assert np.corrcoef(surrogates[0], y)[0, 1] < 0.5
    np.testing.assert_array_equal(phase_randomised(y, 20, rng=7), surrogates)


def test_surrogate_pvalue_counts_surrogate_means():
    rho_k = np.array([0.5, 0.6])
    rho_surrogates = np.array([[0.1, 0.7, 0.6, 0.2], [0.2, 0.6, 0.5, 0.1]])
    # surrogate means of atanh: 2nd (0.7, 0.6) above, 3rd (0.6, 0.5) equal (counted), others below
    assert surrogate_pvalue(rho_k, rho_surrogates) == (1 + 2) / 5


# --- null pairs: false positives, the paper's test, equivalence ---------------


@pytest.mark.parametrize("name", list(NULL_PROCESSES))
def test_null_pairs_false_positives_within_binomial_bound(name):
    """Difference test and surrogate ρ test (lag search included) at α = 0.01 on null pairs.

    Measured over 200 trials (difference / surrogate): OU 1 / 1, AR(2) 10 Hz
    3 / 2, 100 Hz 2 / 2, 150 Hz 1 / 0; bound 6/200 = 3 %. (A separate run of
    1000 AR(2) 10 Hz cells gave 0.7 % for the surrogate test.)
    """
    counts = _null_pair_counts(name)
    for test in ("difference", "surrogate"):
        assert counts[test] <= FP_BOUND, (
            f"{name}: {test} test rejects {counts[test]}/{N_TRIALS} null cells "
            f"(99 % bound {FP_BOUND}/{N_TRIALS})"
        )


@pytest.mark.parametrize("name", list(NULL_PROCESSES))
def test_null_pairs_paper_rho_test_exceeds_binomial_bound(name):
    """The paper's ρ test (Fisher z, n_eff at τ_max, Stouffer) rejects null pairs far too often.

    Measured on the same data: 12.6, 13.4, 22.0, 26.9 % per seed (OU, AR(2)
    10, 100, 150 Hz), 200/200 cells with Stouffer over 10 seeds (the
    lag-searched maximum is always > 0, so every seed pushes Stouffer's sum
    the same way); bound 3 %.
    """
    counts = _null_pair_counts(name)
    per_seed = counts["paper_seed"] / (N_TRIALS * K_SEEDS)
    assert counts["paper"] > FP_BOUND, (
        f"{name}: paper test rejects only {counts['paper']}/{N_TRIALS} ({per_seed:.1%} per seed)"
    )
    assert per_seed > 3 * ALPHA, f"{name}: paper test rejects {per_seed:.1%} per seed"


@pytest.mark.parametrize("name", list(NULL_PROCESSES))
def test_equivalence_passes_another_seed_of_the_network(name):
    """An independent draw as the model is within the margin in >= 90 % of cells.

    Measured: 199, 195, 200, 200 of 200 (OU, AR(2) 10, 100, 150 Hz).
    """
    passes = _null_pair_counts(name)["equivalent"]
    assert passes >= 0.9 * N_TRIALS, f"{name}: equivalence shown in {passes}/{N_TRIALS}"


# --- noise ceiling and ρ adequacy ----------------------------------------------


def _split_halves(rng, k, n, noise_var):
    """Common OU part S plus independent OU noise of variance noise_var in each half."""
    common = _draw(rng, _ou(20.0), (k,), n)
    v_a = common + math.sqrt(noise_var) * _draw(rng, _ou(20.0), (k,), n)
    v_b = common + math.sqrt(noise_var) * _draw(rng, _ou(20.0), (k,), n)
    return common, v_a, v_b


def test_noise_ceiling_without_noise_is_one():
    rng = np.random.default_rng(8)
    v = _draw(rng, _ou(20.0), (4,))
    r_k, ceiling = noise_ceiling(v, v)
    np.testing.assert_allclose(r_k, 1.0, rtol=1e-12)
    assert ceiling == pytest.approx(1.0, abs=1e-12)


def test_noise_ceiling_matches_known_reliability():
    """var S = 1, noise var 1 per half: reliability of V = 1/(1 + 1/2), ceiling sqrt(2/3).

    Measured: 0.8162 against sqrt(2/3) = 0.8165 (10 seeds × 20 000 samples).
    """
    rng = np.random.default_rng(9)
    _, v_a, v_b = _split_halves(rng, K_SEEDS, 20_000, 1.0)
    r_k, ceiling = noise_ceiling(v_a, v_b)
    np.testing.assert_allclose(r_k, 0.5, atol=0.1)
    assert ceiling == pytest.approx(math.sqrt(2.0 / 3.0), rel=0.05)
    # no common part: r <= 0, ceiling 0
    assert noise_ceiling(v_a, -v_a)[1] == 0.0
    # the cell's ceiling from the per-seed r_k alone (as the cube combines seeds)
    np.testing.assert_array_equal(split_half_r(v_a, v_b), r_k)
    assert noise_ceiling_from_r(r_k) == ceiling


def test_rho_adequacy_passes_noisy_copy_at_the_ceiling():
    """Model = V + independent noise with corr(model, V) = ρ_ceiling: adequate in >= 90 %.

    Halves V_a, V_b = S + e_a, S + e_b (var S = var e = 1, all OU 20 ms), V =
    (V_a + V_b)/2, ρ_ceiling = sqrt(var S/var V) = sqrt(2/3); the model adds
    noise of variance var V·(var V − var S)/var S = 0.75 to V, so that its
    correlation with V is ρ_ceiling. Measured: 200/200 = 100 %; the lower
    bound was 0.92-1.0 × ρ_ceiling (median 0.975), the level 0.8 × ρ_ceiling.
    """
    rng = np.random.default_rng(10)
    passes = 0
    for _ in range(N_TRIALS):
        _, v_a, v_b = _split_halves(rng, K_SEEDS, N_SAMPLES, 1.0)
        v = 0.5 * (v_a + v_b)
        model = v + math.sqrt(0.75) * _draw(rng, _ou(20.0), (K_SEEDS,))
        _, ceiling = noise_ceiling(v_a, v_b)
        rho_k = [
            max_lagged_correlation(v[i], model[i], DT_MS, MAX_LAG_MS)[0] for i in range(K_SEEDS)
        ]
        passes += rho_bounds(rho_k)[0] >= 0.8 * ceiling
    assert passes >= 0.9 * N_TRIALS, f"ρ adequacy met in {passes}/{N_TRIALS}"


# --- verdicts -----------------------------------------------------------------

_GOOD = dict(
    diverged=False,
    equivalence_bound=0.01,
    margin=0.02,
    difference_p=0.5,
    rho_lower=0.8,
    rho_upper=0.9,
    rho_level=0.7,
    surrogate_p=0.01,
)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, (ADEQUATE, ())),
        ({"difference_p": 0.002}, (ADEQUATE, ())),  # detected, but inside the margin
        ({"diverged": True}, (INADEQUATE, ("diverged",))),
        ({"equivalence_bound": 0.03, "difference_p": 0.002}, (INADEQUATE, ("spectra_differ",))),
        ({"equivalence_bound": 0.03}, (UNDECIDED, ())),
        ({"equivalence_bound": float("nan")}, (UNDECIDED, ())),
        ({"rho_lower": 0.6}, (UNDECIDED, ())),
        ({"rho_lower": 0.5, "rho_upper": 0.65}, (INADEQUATE, ("rho_below_level",))),
        ({"surrogate_p": 0.02}, (INADEQUATE, ("rho_not_above_null",))),
        (
            {"equivalence_bound": 0.05, "difference_p": 0.001, "surrogate_p": 0.5},
            (INADEQUATE, ("spectra_differ", "rho_not_above_null")),
        ),
    ],
)
def test_decide_follows_the_rules_of_section_6_3(change, expected):
    assert decide(**{**_GOOD, **change}) == expected


def test_verdict_codes_and_flag_meanings_agree():
    assert dict(zip(VERDICT_FLAG_VALUES, VERDICT_FLAG_MEANINGS.split(), strict=True)) == {
        ADEQUATE: "adequate",
        UNDECIDED: "undecided",
        INADEQUATE: "inadequate",
    }
    # one bit per reason decide can give, in the order decide lists them
    reasons = decide(**{**_GOOD, "equivalence_bound": 0.05, "difference_p": 0.001,
                        "rho_upper": 0.5, "surrogate_p": 0.5})[1]  # fmt: skip
    assert ("diverged", *reasons) == tuple(REASON_FLAG_MEANINGS.split())
    assert REASON_FLAG_MASKS == tuple(2**i for i in range(len(REASON_FLAG_MASKS)))


def test_validate_end_to_end():
    """The network as its own model is adequate; white noise is not; NaN is diverged."""
    rng = np.random.default_rng(11)
    _, v_a, v_b = _split_halves(rng, K_SEEDS, N_SAMPLES, 0.2)
    lif = 0.5 * (v_a + v_b)
    settings = dict(segment_ms=SEGMENT_MS, rng=12)

    same = validate(lif, lif, v_a, v_b, DT_MS, **settings)
    assert same.label == "adequate" and same.code == ADEQUATE
    np.testing.assert_allclose(same.chi2_k, 0.0, atol=1e-15)
    assert same.surrogate_p == pytest.approx(0.01)
    assert same.equivalent and same.rho_adequate
    assert same.rho_over_ceiling == pytest.approx(1.0 / same.rho_ceiling, rel=1e-9)
    assert same.rho_level == pytest.approx(0.8 * same.rho_ceiling)
    assert 0 < same.chi2_floor < same.margin

    noise = validate(lif, rng.standard_normal(lif.shape), v_a, v_b, DT_MS, **settings)
    assert noise.code == INADEQUATE
    assert noise.reasons == ("spectra_differ", "rho_below_level", "rho_not_above_null")
    assert noise.difference_p == pytest.approx(2.0**-9)

    broken = lif.copy()
    broken[3, 500:] = np.nan
    diverged = validate(lif, broken, v_a, v_b, DT_MS, **settings)
    assert (diverged.code, diverged.reasons) == (INADEQUATE, ("diverged",))
    assert np.isnan(diverged.chi2_k).all() and math.isnan(diverged.surrogate_p)
    assert diverged.margin == same.margin and diverged.rho_ceiling == same.rho_ceiling


def test_validate_is_combine_cell_of_the_per_seed_pieces():
    """The per-seed pieces as the compare stage stores them (the band to f_max plus the power
    above it as one bin), then combine_cell: the same Verdict, every field."""
    rng = np.random.default_rng(13)
    _, v_a, v_b = _split_halves(rng, K_SEEDS, N_SAMPLES, 0.2)
    lif = 0.5 * (v_a + v_b)
    model = lif + 0.5 * _draw(rng, _ou(10.0), (K_SEEDS,))
    f_max = 100.0  # of Nyquist's 250 Hz: the lumped bin matters
    settings = dict(segment_ms=SEGMENT_MS, f_max_Hz=f_max, rng=14)
    verdict = validate(lif, model, v_a, v_b, DT_MS, **settings)

    def stored(x):
        freq, power = welch_spectra(x, DT_MS, SEGMENT_MS)
        return join_above(*split_at_fmax(freq, power, f_max)[1:])

    gen = np.random.default_rng(14)
    seeds = [
        seed_rho_surrogates(lif[i], model[i], DT_MS, MAX_LAG_MS, N_SURROGATES, gen)
        for i in range(K_SEEDS)
    ]
    rho_k, tau_k, surrogates = (np.array([s[j] for s in seeds]) for j in range(3))
    pieces = [stored(x) for x in (lif, model, v_a, v_b)]
    again = combine_cell(*pieces, rho_k, tau_k, surrogates, split_half_r(v_a, v_b))
    for f in dataclasses.fields(Verdict):
        np.testing.assert_array_equal(getattr(again, f.name), getattr(verdict, f.name), f.name)
    assert verdict.code == ADEQUATE and verdict.reason_mask == 0
    # a diverged model: the network's numbers stay, the model's are NaN
    broken = combine_cell(*pieces, rho_k, tau_k, surrogates, split_half_r(v_a, v_b), True)
    assert (broken.code, broken.reasons, broken.reason_mask) == (INADEQUATE, ("diverged",), 1)
    assert (broken.margin, broken.chi2_floor, broken.rho_ceiling) == (
        verdict.margin,
        verdict.chi2_floor,
        verdict.rho_ceiling,
    )
    assert np.isnan(broken.chi2_k).all() and math.isnan(broken.difference_p)


# --- the paper's χ² cut -----------------------------------------------------------


def test_paper_chi2_cut_is_where_the_paper_test_gives_alpha():
    """2000 ms at dt = 1 ms to 200 Hz: 401 bins; chi2_pvalue_paper = α exactly at the cut."""
    n_bins, n_samples = 401, 2000
    cut = paper_chi2_cut(2000.0, 1.0, f_max_Hz=200.0)
    P = np.ones(n_bins)
    pattern = np.arange(n_bins) % 2.0

    def p_minus_alpha(t):
        return chi2_pvalue_paper(P, P + t * pattern, n_samples) - ALPHA

    t = scipy.optimize.brentq(p_minus_alpha, 0.0, 100.0, xtol=1e-14)
    assert chi2_statistic(P, P + t * pattern) == pytest.approx(cut, rel=1e-8)
    # the docstring's numbers: 27 s at 0.1 ms, band to 1 kHz and to Nyquist
    assert paper_chi2_cut(27_000.0, 0.1, 1000.0) == pytest.approx(0.1020, abs=5e-5)
    assert paper_chi2_cut(27_000.0, 0.1) == pytest.approx(0.5045, abs=5e-5)
