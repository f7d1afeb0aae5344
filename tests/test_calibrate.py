"""Calibration measures and criteria on synthetic, known answers."""

import numpy as np

from nmmval.analysis.diagnostics import damping_ratio
from nmmval.calibration.calibrate import Regime, population_count, score, spectral_peak

FIRST_FOUR = ("silent_at_p0", "asynchronous_band", "low_frequency_onset", "fast_synchrony")


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


def _r(p, lam, rate, sync, fano, peak, ratio=1.0, sum_G=0.1, diverged=0.0):
    zeta = damping_ratio(20.0, 5.0, sum_G)
    return Regime(p, lam, 0, rate, rate / 2, sync, fano, peak, ratio, sum_G, zeta, diverged)


def test_score_all_criteria():
    regimes = [
        _r(0.0, 0.8, 0.3, 0.02, 1.0, 400.0),
        _r(0.2, 0.8, 1.5, 0.05, 1.1, 5.0),
        _r(0.4, 0.8, 5.0, 0.7, 900.0, 6.0, 50.0),
        _r(1.0, 0.8, 9.0, 0.95, 5000.0, 9.0, 30.0),
        _r(1.0, 0.9, 150.0, 0.2, 7000.0, 150.0, 3000.0),
        _r(1.0, 1.0, 180.0, 0.2, 7000.0, 180.0, 3000.0),
    ]
    res = score(regimes, FIRST_FOUR)
    assert res["passed"] == 4 and res["onset_p"] == 0.4 and "over_damped" not in res
    # a network that fires at p = 0 and synchronises at once fails three criteria
    regimes[0] = _r(0.0, 0.8, 2.0, 0.02, 1.0, 400.0)
    regimes[1] = _r(0.2, 0.8, 6.0, 0.6, 500.0, 50.0, 100.0)
    res = score(regimes)
    assert not res["silent_at_p0"] and not res["asynchronous_band"]
    assert not res["low_frequency_onset"] and res["onset_p"] == 0.2


def test_score_over_damped():
    # asynchronous cells and the onset at ΣḠ <= 0.5625 (ζ >= 1), fast synchrony at ΣḠ = 2
    regimes = [
        _r(0.0, 0.8, 0.3, 0.02, 1.0, 400.0, sum_G=0.02),
        _r(0.2, 0.8, 1.5, 0.05, 1.1, 5.0, sum_G=0.1),
        _r(0.4, 0.8, 5.0, 0.7, 900.0, 6.0, 50.0, sum_G=0.5),
        _r(1.0, 0.8, 9.0, 0.95, 5000.0, 9.0, 30.0, sum_G=1.5),
        _r(1.0, 0.9, 150.0, 0.2, 7000.0, 150.0, 3000.0, sum_G=1.8),
        _r(1.0, 1.0, 180.0, 0.2, 7000.0, 180.0, 3000.0, sum_G=2.0),
    ]
    res = score(regimes)
    assert res["over_damped"] and res["passed"] == 5
    assert res["max_sum_G"] == 2.0 and res["mfm_diverged"] == 0
    assert res["min_zeta"] == damping_ratio(20.0, 5.0, 0.5) > 1
    # under-damped at the onset: ζ < 1 there fails it, synchronised cells may be under-damped
    regimes[2] = _r(0.4, 0.8, 5.0, 0.7, 900.0, 6.0, 50.0, sum_G=0.6)
    res = score(regimes)
    assert not res["over_damped"] and res["min_zeta"] < 1
    # an MFM divergence in any probe (here the fast corner) fails it
    regimes[2] = _r(0.4, 0.8, 5.0, 0.7, 900.0, 6.0, 50.0, sum_G=0.5)
    regimes[5] = _r(1.0, 1.0, 180.0, 0.2, 7000.0, 180.0, 3000.0, sum_G=20.0, diverged=1.0)
    res = score(regimes)
    assert not res["over_damped"] and res["mfm_diverged"] == 1 and res["max_sum_G"] == 20.0


def test_evaluate_resumes_from_the_recorded_probes(tmp_path, monkeypatch):
    from pathlib import Path

    from nmmval.calibration import run

    calls = []

    def fake(params, p, lam, seed, threads=None):
        calls.append((p, lam, seed))
        return _r(p, lam, 0.3, 0.02, 1.0, 400.0)

    monkeypatch.setattr(run, "regime_metrics", fake)
    base = Path(__file__).parents[1] / "config" / "paper.yaml"
    cand = {"g_hat_E_nSms": 0.05, "g_hat_I_nSms": 0.45, "g_hat_ext_nSms": 0.754}
    cand |= {"p_ext": 0.00614, "noise_Q_V2ms": 3.18e-4}
    tsv = tmp_path / "probes.tsv"
    cells = [(0.0, 0.8), (0.5, 0.8)]
    run.evaluate(base, "a", cand, cells[:1], [0], 1000.0, 200.0, tsv)
    run.evaluate(base, "a", cand, cells, [0], 1000.0, 200.0, tsv)  # resumes: one new probe
    assert calls == [(0.0, 0.8, 0), (0.5, 0.8, 0)]
    assert [r.p for r in run.read_probes(tsv)["a"]] == [0.0, 0.5]
    # other values (or another T) make the candidate's old probes void
    run.evaluate(base, "a", cand | {"p_ext": 0.005}, cells, [0], 1000.0, 200.0, tsv)
    assert len(calls) == 4 and len(run.read_probes(tsv)["a"]) == 2
