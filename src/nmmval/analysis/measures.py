"""The registry of comparison measures (MODEL.md §6.1).

A measure is a :class:`Measure` entry in :data:`MEASURES` with two pure
functions of arrays:

- ``per_seed(traces, params) -> Result``: its compare.nc variables for one
  seed (and the coordinates it defines), from the potentials of the network
  and of every mass model over [T0, T) (:class:`Traces`);
- ``combine(cell) -> dict``: its cube.nc variables for one cell <p, λ> from
  the stacked per-seed values of every seed (:class:`Seeds`).

Their variables are declared in :mod:`nmmval.datasets` (``COMPARE`` and
``CUBE``); compare and cube iterate over :data:`MEASURES` and so over the
registered mass models: a measure is computed for the network and every model
(dimension ``model``) or for every model against the network (``mass``).
The science lives in :mod:`nmmval.analysis.spectra` and :mod:`nmmval.analysis.xcorr`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from nmmval.analysis.spectra import (
    chi2_pvalue_paper,
    chi2_pvalue_permutation,
    chi2_statistic,
    median_frequency,
    power_spectrum,
)
from nmmval.analysis.xcorr import (
    best_lag,
    effective_n,
    fisher_pvalue,
    lagged_correlation,
    mean_rho,
    stouffer,
)
from nmmval.config import Params


class Traces(NamedTuple):
    """One seed's potentials over the analysis window [T0, T).

    Attributes
    ----------
    V_mV : mapping of str to numpy.ndarray of float64
        ``"LIF"`` first, then every mass model in registry order (the
        ``model`` coordinate); a diverged model's trace holds NaN.
    diverged : mapping of str to bool
        Per model: the trace holds NaN (its measures are NaN).
    dt_ms : float
        Sampling step (ms).
    """

    V_mV: Mapping[str, np.ndarray]
    diverged: Mapping[str, bool]
    dt_ms: float

    @property
    def masses(self) -> list[str]:
        """The mass models (every model but the network, which comes first)."""
        return list(self.V_mV)[1:]

    def finite(self, model: str) -> np.ndarray:
        """A model's trace with NaN as 0 (its measures are set to NaN afterwards)."""
        return np.nan_to_num(self.V_mV[model])


class Result(NamedTuple):
    """A measure's compare.nc variables of one seed and the coordinates it defines."""

    values: dict[str, np.ndarray]
    coords: dict[str, np.ndarray]


class Seeds(NamedTuple):
    """One cell's per-seed compare.nc values and what combining them needs.

    Attributes
    ----------
    values : mapping of str to numpy.ndarray
        Every compare.nc variable, stacked along a leading seed axis.
    freq_Hz : numpy.ndarray
        The stored frequency bins plus the frequency given to the lumped bin
        above ``fmax_store_Hz`` (Hz).
    n_samples : int
        Samples in the analysis window.
    n_perm : int
        Relabellings of the permutation χ² test.
    perm_rng : callable
        ``perm_rng(k)``: the random generator of the permutation test of the
        k-th mass model of this cell (same cell, same bits).
    """

    values: Mapping[str, np.ndarray]
    freq_Hz: np.ndarray
    n_samples: int
    n_perm: int
    perm_rng: Callable[[int], np.random.Generator]

    @property
    def bad(self) -> np.ndarray:
        """Per model (bool): diverged in at least one seed, so nothing to combine."""
        return self.values["diverged"].any(axis=0)

    def power(self) -> np.ndarray:
        """Per-seed spectra over the whole band, (seed, model, freq + 1): the stored bins
        and the power above ``fmax_store_Hz`` as one last bin."""
        v = self.values
        return np.concatenate([v["power"], v["power_above_fmax"][..., None]], axis=-1)


@dataclass(frozen=True)
class Measure:
    """A registered measure: its per-seed step (compare) and its seed combination (cube)."""

    name: str
    per_seed: Callable[[Traces, Params], Result]
    combine: Callable[[Seeds], dict[str, np.ndarray]]


# ------------------------------------------------------------------ spectra, median frequency
def spectrum_per_seed(traces: Traces, params: Params) -> Result:
    """Every model's periodogram up to ``fmax_store_Hz``, the power above it, ϖ (MODEL.md §6.1)."""
    power, tail, median = [], [], []
    for m, bad in traces.diverged.items():
        freq, P = power_spectrum(traces.finite(m), traces.dt_ms)
        keep = freq <= params.analysis.fmax_store_Hz
        power.append(np.where(bad, np.nan, P[keep]))
        tail.append(np.nan if bad else P[~keep].sum())
        median.append(np.nan if bad else median_frequency(freq, P))
    values = {
        "power": np.array(power),
        "power_above_fmax": np.array(tail),
        "median_freq_Hz": np.array(median),
    }
    return Result(values, {"freq_Hz": freq[keep]})


def spectrum_combine(seeds: Seeds) -> dict[str, np.ndarray]:
    """Seed-mean spectra normalised to sum 1 over the whole band; their ϖ (MODEL.md §6.1).

    A zero spectrum (a constant potential) stays zero; ϖ is NaN for a model
    that diverged in some seed.
    """
    mean_power = seeds.power().mean(axis=0)
    total = mean_power.sum(axis=-1)
    safe = np.where(total > 0, total, 1.0)  # a zero spectrum (constant V) stays zero
    median = np.full(mean_power.shape[0], np.nan)
    for m, bad in enumerate(seeds.bad):
        if not bad:
            median[m] = median_frequency(seeds.freq_Hz, mean_power[m])
    return {
        "spectrum": mean_power[:, :-1] / safe[:, None],
        "spectrum_above_fmax": mean_power[:, -1] / safe,
        "median_freq_Hz": median,
        "median_freq_Hz_seed": seeds.values["median_freq_Hz"],
    }


# ------------------------------------------------------------------ χ² (Eq. 25)
def chi2_combine(seeds: Seeds) -> dict[str, np.ndarray]:
    """χ² of the LIF and each model's seed-mean spectra, paper and permutation p (MODEL.md §6).

    Over the whole band (the lumped bin above ``fmax_store_Hz`` included); NaN
    for a model that diverged in some seed.
    """
    power = seeds.power()
    mean_power = power.mean(axis=0)
    n_mass = mean_power.shape[0] - 1
    out = {k: np.full(n_mass, np.nan) for k in ("chi2", "chi2_p_paper", "chi2_p_perm")}
    for k in range(n_mass):
        m = k + 1  # the network is model 0
        if seeds.bad[m]:  # no spectrum to compare: NaN, flagged
            continue
        out["chi2"][k] = chi2_statistic(mean_power[0], mean_power[m])
        out["chi2_p_paper"][k] = chi2_pvalue_paper(mean_power[0], mean_power[m], seeds.n_samples)
        out["chi2_p_perm"][k] = chi2_pvalue_permutation(
            power[:, 0, :], power[:, m, :], n_perm=seeds.n_perm, rng=seeds.perm_rng(k)
        )
    return out


# ------------------------------------------------------------------ lagged correlation
def xcorr_per_seed(traces: Traces, params: Params) -> Result:
    """ρ(τ) of LIF and each model, τ_max, ρ(τ_max), n_eff and the Fisher p (MODEL.md §6.1)."""
    lif = traces.V_mV["LIF"]
    names = ("xcorr", "tau_max_ms", "rho_max", "n_eff", "rho_p")
    out = {k: [] for k in names}
    for m in traces.masses:
        lags, r = lagged_correlation(
            lif, traces.finite(m), traces.dt_ms, params.analysis.max_lag_ms
        )
        t_max, r_max = best_lag(lags, r)
        n_eff = effective_n(lif, traces.finite(m))
        if traces.diverged[m]:
            r = np.full_like(r, np.nan)
            t_max = r_max = n_eff = np.nan
        for k, v in zip(names, (r, t_max, r_max, n_eff, fisher_pvalue(r_max, n_eff)), strict=True):
            out[k].append(v)
    return Result({k: np.array(v) for k, v in out.items()}, {"lag_ms": lags})


def xcorr_combine(seeds: Seeds) -> dict[str, np.ndarray]:
    """ρ and ρ(τ) by tanh(mean atanh ρ_k), τ_max by the median, p by Stouffer (MODEL.md §6.1)."""
    v = seeds.values
    n_mass = v["rho_max"].shape[1]
    out = {k: np.full(n_mass, np.nan) for k in ("tau_max_ms", "rho", "rho_p")}
    for k in range(n_mass):
        if seeds.bad[k + 1]:  # no correlation to combine: NaN, flagged
            continue
        out["rho"][k] = mean_rho(v["rho_max"][:, k])
        out["tau_max_ms"][k] = np.median(v["tau_max_ms"][:, k])
        out["rho_p"][k] = stouffer(v["rho_p"][:, k])
    return {
        **out,
        "xcorr": mean_rho(v["xcorr"], axis=0),
        "tau_max_ms_seed": v["tau_max_ms"],
        "rho_seed": v["rho_max"],
        "rho_p_seed": v["rho_p"],
        "n_eff_seed": v["n_eff"],
    }


def _nothing(traces: Traces, params: Params) -> Result:
    return Result({}, {})


#: the registry: one line per measure
MEASURES: tuple[Measure, ...] = (
    Measure("spectrum", spectrum_per_seed, spectrum_combine),
    Measure("chi2", _nothing, chi2_combine),
    Measure("xcorr", xcorr_per_seed, xcorr_combine),
)
