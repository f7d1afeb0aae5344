"""The seed combination of the cube (MODEL.md §6.1), a pure function of arrays, on its own."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from nmmval import cube, datasets
from nmmval.analysis.measures import Seeds
from nmmval.analysis.spectra import chi2_pvalue_paper, chi2_pvalue_permutation, chi2_statistic

N_SEEDS, N_MODELS, N_FREQ, N_LAG = 3, 3, 6, 5


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
        "synchrony": np.array([0.1, np.nan, 0.3]),
        "rate_E_Hz": np.array([1.0, 2.0, 3.0]),
        "rate_I_Hz": np.array([0.0, 0.5, 1.0]),
        "Vbar_mV": np.array([-55.0, -56.0, -57.0]),
    }
    assert set(values) == set(datasets.COMPARE)
    return Seeds(
        values=values,
        freq_Hz=np.arange(N_FREQ + 1) * 1.25,
        n_samples=640,
        n_perm=99,
        perm_rng=lambda k: np.random.default_rng(100 + k),
    )


def test_combine_follows_model_md_section_6():
    seeds = _seeds()
    out = cube.combine(seeds)
    # every cube variable, each with the cube's dims less p and lambda
    assert set(out) == set(datasets.CUBE)
    sizes = {"seed": N_SEEDS, "model": N_MODELS, "mass": N_MODELS - 1}
    sizes |= {"freq_Hz": N_FREQ, "lag_ms": N_LAG}
    for name, var in datasets.CUBE.items():
        assert out[name].shape == tuple(sizes[d] for d in var.dims[2:]), name
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
        expected = chi2_pvalue_permutation(
            whole[:, 0], whole[:, m], 99, np.random.default_rng(100 + k)
        )
        assert out["chi2_p_perm"][k] == expected
        # correlation: Fisher-z mean, median lag, Stouffer
        rho = v["rho_max"][:, k]
        assert out["rho"][k] == pytest.approx(math.tanh(np.mean(np.arctanh(rho))), rel=1e-14)
        assert out["tau_max_ms"][k] == np.median(v["tau_max_ms"][:, k])
        z = scipy.stats.norm.isf(v["rho_p"][:, k]).sum() / math.sqrt(N_SEEDS)
        assert out["rho_p"][k] == pytest.approx(scipy.stats.norm.sf(z), rel=1e-12)
    np.testing.assert_allclose(out["xcorr"], np.tanh(np.arctanh(v["xcorr"]).mean(axis=0)))
    # per-seed values pass through unchanged, NaN synchrony included
    for cube_name, name in [("median_freq_Hz_seed", "median_freq_Hz"), ("rho_seed", "rho_max"),
                            ("diverged_seed", "diverged"), ("synchrony", "synchrony")]:  # fmt: skip
        np.testing.assert_array_equal(out[cube_name], v[name])


def test_a_model_diverged_in_one_seed_has_nan_measures_only_for_itself():
    diverged = np.zeros((N_SEEDS, N_MODELS), dtype=np.int8)
    diverged[1, 2] = 1  # the second mass model, in the second seed
    seeds = _seeds(diverged)
    seeds.values["power"][1, 2] = np.nan
    seeds.values["power_above_fmax"][1, 2] = np.nan
    out = cube.combine(seeds)
    for name in ("chi2", "chi2_p_paper", "chi2_p_perm", "rho", "tau_max_ms", "rho_p"):
        assert np.isnan(out[name][1]) and np.isfinite(out[name][0]), name
    assert np.isnan(out["median_freq_Hz"][2]) and np.isfinite(out["median_freq_Hz"][:2]).all()
    assert np.isnan(out["spectrum"][2]).all() and np.isfinite(out["spectrum"][:2]).all()
    # the other mass model's values do not depend on it
    clean = cube.combine(_seeds())
    for name in ("chi2", "chi2_p_perm", "rho", "rho_p"):
        assert out[name][0] == clean[name][0], name
