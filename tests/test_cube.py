"""The seed combination of the cube (MODEL.md §6), a pure function of arrays, on its own."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from nmmval import config, cube, datasets
from nmmval.analysis.measures import Seeds
from nmmval.analysis.protocol import INADEQUATE
from nmmval.analysis.spectra import chi2_pvalue_paper, chi2_statistic

from conftest import ROOT

N_SEEDS, N_MODELS, N_FREQ, N_LAG, N_WELCH, N_SURROGATES = 3, 3, 6, 5, 4, 99
ANALYSIS = config.load(ROOT / "config" / "config.yaml").analysis


def _seeds(diverged=None) -> Seeds:
    """Per-seed compare.nc values of one cell: 3 seeds, LIF and 2 mass models."""
    rng = np.random.default_rng(1)
    n_mass = N_MODELS - 1
    values = {
        "power": rng.uniform(0.1, 1.0, (N_SEEDS, N_MODELS, N_FREQ)),
        "power_above_fmax": rng.uniform(0.0, 0.1, (N_SEEDS, N_MODELS)),
        "median_freq_Hz": rng.uniform(1, 5, (N_SEEDS, N_MODELS)),
        "xcorr": rng.uniform(-0.9, 0.9, (N_SEEDS, n_mass, N_LAG)),
        "tau_max_ms": np.array([[1.0, -3.0], [2.0, 5.0], [7.0, 0.0]]),
        "rho_max": np.array([[0.5, 0.1], [0.7, 0.2], [0.6, -0.1]]),
        "n_eff": rng.uniform(50, 100, (N_SEEDS, n_mass)),
        "rho_p": np.array([[0.01, 0.4], [0.02, 0.3], [0.2, 0.6]]),
        "diverged": np.zeros((N_SEEDS, N_MODELS), dtype=np.int8) if diverged is None else diverged,
        "V_mean_mV": rng.uniform(-60, -50, (N_SEEDS, N_MODELS)),
        "V_sd_mV": rng.uniform(1, 3, (N_SEEDS, N_MODELS)),
        "welch_power": rng.uniform(0.1, 1.0, (N_SEEDS, N_MODELS, N_WELCH)),
        "welch_power_above_fmax": rng.uniform(0.0, 0.1, (N_SEEDS, N_MODELS)),
        "welch_power_half": rng.uniform(0.1, 1.0, (N_SEEDS, 2, N_WELCH)),
        "welch_power_half_above_fmax": rng.uniform(0.0, 0.1, (N_SEEDS, 2)),
        "split_half_r": np.array([0.5, 0.6, 0.7]),
        "rho_surrogate": rng.uniform(0.0, 0.3, (N_SEEDS, n_mass, N_SURROGATES)),
        "diverged_at_ms": np.full((N_SEEDS, n_mass), np.nan),
        "sum_G": np.array([0.2, 0.3, 0.4]),
        "zeta": np.array([1.1, 1.05, 1.0]),
        "closure_error_mV": rng.uniform(-1, 1, (N_SEEDS, 2)),
        "pdm_rate_rel_error": np.array([[0.1, np.nan], [-0.2, np.nan], [0.4, np.nan]]),
        "pdm_rate_corr": np.array([[0.5, np.nan], [0.7, np.nan], [0.6, np.nan]]),
        "synchrony": np.array([0.1, np.nan, 0.3]),
        "rate_E_Hz": np.array([1.0, 2.0, 3.0]),
        "rate_I_Hz": np.array([0.0, 0.5, 1.0]),
        "Vbar_mV": np.array([-55.0, -56.0, -57.0]),
    }
    # the held-out half's pieces: the whole window's (so its verdicts must be the same)
    values |= {f"{n}_held_out": values[n].copy() for n in datasets.HELD_OUT_PER_SEED}
    assert set(values) == set(datasets.COMPARE)
    return Seeds(
        values=values,
        freq_Hz=np.arange(N_FREQ + 1) * 1.25,
        n_samples=640,
        analysis=ANALYSIS,
        sign_rng=lambda k: np.random.default_rng(100 + k),
    )


def test_combine_follows_model_md_section_6():
    seeds = _seeds()
    out = cube.combine(seeds)
    # every cube variable but the fits (read from fit.nc), each with the cube's dims less p
    # and lambda
    assert set(out) == set(datasets.CUBE) - set(datasets.FIT)
    sizes = {"seed": N_SEEDS, "model": N_MODELS, "mass": N_MODELS - 1, "population": 2}
    sizes |= {"freq_Hz": N_FREQ, "lag_ms": N_LAG, "welch_freq_Hz": N_WELCH}
    sizes |= {"held_out_freq_Hz": N_WELCH}
    for name in out:
        assert out[name].shape == tuple(sizes[d] for d in datasets.CUBE[name].dims[2:]), name
    # the held-out half is combined as the whole window: same pieces, same numbers
    for name in datasets.HELD_OUT_CELL:
        np.testing.assert_array_equal(out[f"{name}_held_out"], out[name], err_msg=name)
    v = seeds.values
    whole = np.concatenate([v["power"], v["power_above_fmax"][..., None]], axis=-1)
    mean = whole.mean(axis=0)
    # spectra: seed mean, then normalised to sum 1 over the whole band
    np.testing.assert_allclose(out["spectrum"], mean[:, :-1] / mean.sum(-1, keepdims=True))
    np.testing.assert_allclose(out["spectrum"].sum(-1) + out["spectrum_above_fmax"], 1.0)
    cumulative = np.cumsum(mean, axis=-1)
    first = np.argmax(cumulative >= cumulative[:, -1:] / 2, axis=-1)
    np.testing.assert_array_equal(out["median_freq_Hz"], seeds.freq_Hz[first])
    for k in range(N_MODELS - 1):
        m = k + 1
        assert out["chi2"][k] == chi2_statistic(mean[0], mean[m])
        assert out["chi2_p_paper"][k] == chi2_pvalue_paper(mean[0], mean[m], 640)
        # correlation: Fisher-z mean, median lag, Stouffer
        rho = v["rho_max"][:, k]
        assert out["rho"][k] == pytest.approx(math.tanh(np.mean(np.arctanh(rho))), rel=1e-14)
        assert out["tau_max_ms"][k] == np.median(v["tau_max_ms"][:, k])
        z = scipy.stats.norm.isf(v["rho_p"][:, k]).sum() / math.sqrt(N_SEEDS)
        assert out["rho_p"][k] == pytest.approx(scipy.stats.norm.sf(z), rel=1e-12)
    np.testing.assert_allclose(out["xcorr"], np.tanh(np.arctanh(v["xcorr"]).mean(axis=0)))
    # per-seed values pass through unchanged, NaN synchrony included
    for cube_name, name in [("median_freq_Hz_seed", "median_freq_Hz"), ("rho_seed", "rho_max"),
                            ("diverged_seed", "diverged"), ("synchrony", "synchrony"),
                            ("V_mean_mV_seed", "V_mean_mV"), ("split_half_r_seed", "split_half_r"),
                            ("sum_G", "sum_G"), ("zeta", "zeta"),
                            ("closure_error_mV", "closure_error_mV"),
                            ("pdm_rate_rel_error_seed", "pdm_rate_rel_error"),
                            ("pdm_rate_corr_seed", "pdm_rate_corr"),
                            ("diverged_at_ms", "diverged_at_ms")]:  # fmt: skip
        np.testing.assert_array_equal(out[cube_name], v[name])
    np.testing.assert_allclose(out["V_sd_mV"], v["V_sd_mV"].mean(axis=0))
    # the PDM's rate check: mean relative error, Fisher-z mean correlation; an empty I
    # population (NaN in every seed) stays NaN
    assert out["pdm_rate_rel_error"][0] == pytest.approx(0.1, rel=1e-14)
    assert out["pdm_rate_corr"][0] == pytest.approx(
        math.tanh(np.mean(np.arctanh([0.5, 0.7, 0.6]))), rel=1e-14
    )
    assert np.isnan(out["pdm_rate_rel_error"][1]) and np.isnan(out["pdm_rate_corr"][1])


def test_a_model_diverged_in_one_seed_has_nan_measures_only_for_itself():
    diverged = np.zeros((N_SEEDS, N_MODELS), dtype=np.int8)
    diverged[1, 2] = 1  # the second mass model, in the second seed
    seeds = _seeds(diverged)
    seeds.values["power"][1, 2] = np.nan
    seeds.values["power_above_fmax"][1, 2] = np.nan
    for name in ("welch_power", "welch_power_above_fmax", "rho_surrogate", "V_mean_mV"):
        seeds.values[name][1, 2 if name != "rho_surrogate" else 1] = np.nan
    seeds.values["rho_max"][1, 1] = seeds.values["diverged_at_ms"][1, 1] = np.nan
    out = cube.combine(seeds)
    per_mass = ("chi2", "chi2_p_paper", "rho", "tau_max_ms", "rho_p", "difference_p",
                "equivalence_bound", "rho_lower", "rho_surrogate_p")  # fmt: skip
    for name in per_mass:
        assert np.isnan(out[name][1]) and np.isfinite(out[name][0]), name
    assert np.isnan(out["median_freq_Hz"][2]) and np.isfinite(out["median_freq_Hz"][:2]).all()
    assert np.isnan(out["spectrum"][2]).all() and np.isfinite(out["spectrum"][:2]).all()
    assert np.isnan(out["V_mean_mV"][2]) and np.isfinite(out["V_mean_mV"][:2]).all()
    # inadequate for having diverged, the network's own numbers still given
    assert (out["verdict"][1], out["verdict_reasons"][1]) == (INADEQUATE, 1)
    for name in ("equivalence_margin", "chi2_floor", "rho_ceiling", "rho_level"):
        assert np.isfinite(out[name]), name
    # the other mass model's values do not depend on it
    clean = cube.combine(_seeds())
    for name in (*per_mass, "verdict", "verdict_reasons"):
        assert out[name][0] == clean[name][0], name
