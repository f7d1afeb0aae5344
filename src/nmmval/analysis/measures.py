"""The registry of comparison measures (MODEL.md §6).

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
The science lives in :mod:`nmmval.analysis.spectra`, :mod:`nmmval.analysis.xcorr`
and :mod:`nmmval.analysis.protocol`: the paper's measures and readings (§6.1,
§6.2) and the validation protocol whose verdicts the cube reports (§6.3).

Random streams (the protocol's surrogates per seed, its random sign patterns
per cell beyond ``protocol.EXACT_MAX_K`` seeds) are keyed by the config's
``seed``, the cell and the mass model (:func:`surrogate_rng`, :func:`sign_rng`):
same cell, same bits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from nmmval.analysis.protocol import (
    combine_cell,
    network_reference,
    seed_rho_surrogates,
    split_half_r,
    welch_spectra,
)
from nmmval.analysis.spectra import (
    chi2_pvalue_paper,
    chi2_statistic,
    join_above,
    median_frequency,
    power_spectrum,
    split_at_fmax,
)
from nmmval.analysis.xcorr import (
    best_lag,
    effective_n,
    fisher_pvalue,
    lagged_correlation,
    mean_rho,
    stouffer,
)
from nmmval.config import AnalysisParams, Params
from nmmval.datasets import HELD_OUT_CELL, HELD_OUT_PER_SEED, LIF

#: tags mixed into the protocol's random streams (distinct from the network's cell streams)
_SURROGATE_STREAM = 0x7375_7272  # "surr"
_SIGN_STREAM = 0x7369_676E  # "sign"
_HELD_OUT_STREAM = 0x686F_6C64  # "hold"


def _stream(params: Params, p: float, lam: float, *key: int) -> np.random.Generator:
    cell = (int(round(p * 1000)), int(round(lam * 1000)))
    return np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(*cell, *key)))


def surrogate_rng(
    params: Params, p: float, lam: float, seed: int, k_mass: int, held_out: bool = False
) -> np.random.Generator:
    """The surrogates' random stream of the k-th mass model in one cell <p, λ, seed>
    (its own stream for the held-out half)."""
    key = (_HELD_OUT_STREAM,) if held_out else ()
    return _stream(params, p, lam, int(seed), k_mass, _SURROGATE_STREAM, *key)


def sign_rng(params: Params, p: float, lam: float, k_mass: int) -> np.random.Generator:
    """The random sign patterns' stream of the k-th mass model's difference test in a cell."""
    return _stream(params, p, lam, k_mass, _SIGN_STREAM)


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
    V_a_mV, V_b_mV : numpy.ndarray of float64
        The network's split-half means (MODEL.md §4): V over every second
        cell of each population, and over the others.
    surrogate_rng : callable
        ``surrogate_rng(k)``: the random stream of the surrogates of the k-th
        mass model (:func:`surrogate_rng` of this cell and seed).
    held_out_rng : callable, optional
        The same for the held-out half (:meth:`held_out`).
    """

    V_mV: Mapping[str, np.ndarray]
    diverged: Mapping[str, bool]
    dt_ms: float
    V_a_mV: np.ndarray
    V_b_mV: np.ndarray
    surrogate_rng: Callable[[int], np.random.Generator]
    held_out_rng: Callable[[int], np.random.Generator] | None = None

    def held_out(self) -> Traces:
        """The traces over the held-out half [T_mid, T) (MODEL.md §5.3).

        The window's last n − n//2 samples, n its length: T_mid is step
        n0 + (n_steps − n0)//2 (:func:`nmmval.models.fitted.split_step`).
        """
        h = len(self.V_mV[LIF]) // 2
        V = {m: v[h:] for m, v in self.V_mV.items()}
        return Traces(
            V,
            {m: bool(np.isnan(v).any()) for m, v in V.items()},
            self.dt_ms,
            self.V_a_mV[h:],
            self.V_b_mV[h:],
            self.held_out_rng,
        )

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
    analysis : nmmval.config.AnalysisParams
        The run's ``analysis`` settings (α, equivalence factor, ρ adequacy).
    sign_rng : callable
        ``sign_rng(k)``: the random stream of the difference test of the
        k-th mass model of this cell (:func:`sign_rng`), used beyond
        ``protocol.EXACT_MAX_K`` seeds.
    """

    values: Mapping[str, np.ndarray]
    freq_Hz: np.ndarray
    n_samples: int
    analysis: AnalysisParams
    sign_rng: Callable[[int], np.random.Generator]

    @property
    def bad(self) -> np.ndarray:
        """Per model (bool): diverged in at least one seed, so nothing to combine."""
        return self.values["diverged"].any(axis=0)

    def whole_band(self, name: str) -> np.ndarray:
        """Per-seed spectra ``name`` over the whole band, shape (seed, ..., freq + 1): the
        stored bins and the power above ``fmax_store_Hz`` (``name_above_fmax``) as one last bin."""
        return join_above(self.values[name], self.values[f"{name}_above_fmax"])


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
        kept_Hz, kept, above = split_at_fmax(freq, P, params.analysis.fmax_store_Hz)
        power.append(np.where(bad, np.nan, kept))
        tail.append(np.nan if bad else above)
        median.append(np.nan if bad else median_frequency(freq, P))
    values = {
        "power": np.array(power),
        "power_above_fmax": np.array(tail),
        "median_freq_Hz": np.array(median),
    }
    return Result(values, {"freq_Hz": kept_Hz})


def spectrum_combine(seeds: Seeds) -> dict[str, np.ndarray]:
    """Seed-mean spectra normalised to sum 1 over the whole band; their ϖ (MODEL.md §6.1).

    A zero spectrum (a constant potential) stays zero; ϖ is NaN for a model
    that diverged in some seed.
    """
    mean_power = seeds.whole_band("power").mean(axis=0)
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
    """The paper's χ² of the LIF and each model's seed-mean spectra and its p (MODEL.md §6.1-2).

    Over the whole band (the lumped bin above ``fmax_store_Hz`` included); NaN
    for a model that diverged in some seed.
    """
    mean_power = seeds.whole_band("power").mean(axis=0)
    n_mass = mean_power.shape[0] - 1
    out = {k: np.full(n_mass, np.nan) for k in ("chi2", "chi2_p_paper")}
    for k in range(n_mass):
        m = k + 1  # the network is model 0
        if seeds.bad[m]:  # no spectrum to compare: NaN, flagged
            continue
        out["chi2"][k] = chi2_statistic(mean_power[0], mean_power[m])
        out["chi2_p_paper"][k] = chi2_pvalue_paper(mean_power[0], mean_power[m], seeds.n_samples)
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


# ------------------------------------------------------------------ mean and sd of V
def potential_per_seed(traces: Traces, params: Params) -> Result:
    """Time mean and sd of every model's V over [T0, T) (MODEL.md §5.1); NaN if diverged."""
    bad = np.array(list(traces.diverged.values()))
    V = np.array([traces.finite(m) for m in traces.V_mV])
    return Result(
        {
            "V_mean_mV": np.where(bad, np.nan, V.mean(axis=-1)),
            "V_sd_mV": np.where(bad, np.nan, V.std(axis=-1)),
        },
        {},
    )


def potential_combine(seeds: Seeds) -> dict[str, np.ndarray]:
    """Seed means of the mean and sd of V (NaN for a model diverged in some seed), per seed."""
    v = seeds.values
    return {
        "V_mean_mV": v["V_mean_mV"].mean(axis=0),
        "V_sd_mV": v["V_sd_mV"].mean(axis=0),
        "V_mean_mV_seed": v["V_mean_mV"],
        "V_sd_mV_seed": v["V_sd_mV"],
    }


# ------------------------------------------------------------------ validation protocol
def protocol_per_seed(traces: Traces, params: Params) -> Result:
    """The per-seed pieces of the validation protocol (MODEL.md §6.3).

    Welch spectra (``analysis.welch_segment_ms``) of every model and of the
    split halves V_a, V_b, stored up to ``fmax_store_Hz`` with the power
    above it in one value; the split-half correlation; and per mass model
    the lag-searched maxima of ``analysis.n_surrogates`` phase-randomised
    surrogates (the observed ρ(τ_max) is ``rho_max`` of :func:`xcorr_per_seed`).
    A diverged model's values are NaN.
    """
    ana, dt_ms = params.analysis, traces.dt_ms

    def stored(x):
        freq, power = welch_spectra(x, dt_ms, ana.welch_segment_ms)
        return split_at_fmax(freq, power, ana.fmax_store_Hz)

    freq_Hz, power, above = stored(np.array([traces.finite(m) for m in traces.V_mV]))
    bad = np.array(list(traces.diverged.values()))
    power[bad], above[bad] = np.nan, np.nan
    _, half, half_above = stored(np.array([traces.V_a_mV, traces.V_b_mV]))
    S = ana.n_surrogates
    surrogates = np.full((len(traces.masses), S), np.nan)
    for k, m in enumerate(traces.masses):
        if not traces.diverged[m]:
            surrogates[k] = seed_rho_surrogates(
                traces.V_mV["LIF"], traces.V_mV[m], dt_ms, ana.max_lag_ms, S,
                traces.surrogate_rng(k),
            )[2]  # fmt: skip
    values = {
        "welch_power": power,
        "welch_power_above_fmax": above,
        "welch_power_half": half,
        "welch_power_half_above_fmax": half_above,
        "split_half_r": split_half_r(traces.V_a_mV, traces.V_b_mV)[0],
        "rho_surrogate": surrogates,
    }
    coords = {"welch_freq_Hz": freq_Hz, "surrogate": np.arange(S)}
    return Result(values, coords)


def protocol_combine(seeds: Seeds) -> dict[str, np.ndarray]:
    """Every number behind each model's verdict in one cell, and the verdict (MODEL.md §6.3).

    :func:`nmmval.analysis.protocol.combine_cell` per mass model on the
    whole-band Welch spectra, ρ(τ_max) and τ_max of :func:`xcorr_per_seed`
    and the surrogates; the network's own numbers (margin, floor, ceiling)
    once per cell (:func:`nmmval.analysis.protocol.network_reference`). A
    model diverged in some seed is inadequate (reason ``diverged``) with NaN
    numbers.
    """
    v, ana = seeds.values, seeds.analysis
    spectra = seeds.whole_band("welch_power")  # (seed, model, bin)
    halves = seeds.whole_band("welch_power_half")  # (seed, half, bin)
    settings = {"equivalence_factor": ana.equivalence_factor, "rho_adequate": ana.rho_adequate}
    network = network_reference(
        spectra[:, 0], halves[:, 0], halves[:, 1], v["split_half_r"], **settings
    )
    n_seed, n_mass = v["rho_max"].shape
    per_mass = ("equivalence_bound", "difference_chi2", "difference_p", "rho_lower",
                "rho_upper", "rho_surrogate_p", "rho_over_ceiling")  # fmt: skip
    out = {name: np.full(n_mass, np.nan) for name in per_mass}
    out["chi2_welch_seed"] = np.full((n_seed, n_mass), np.nan)
    out["verdict"] = np.zeros(n_mass, dtype=np.int8)
    out["verdict_reasons"] = np.zeros(n_mass, dtype=np.int8)
    for k in range(n_mass):
        verdict = combine_cell(
            spectra[:, 0], spectra[:, k + 1], halves[:, 0], halves[:, 1],
            v["rho_max"][:, k], v["tau_max_ms"][:, k], v["rho_surrogate"][:, k],
            v["split_half_r"], bool(seeds.bad[k + 1]),
            alpha=ana.alpha, rng=seeds.sign_rng(k), **settings,
        )  # fmt: skip
        out["chi2_welch_seed"][:, k] = verdict.chi2_k
        out["equivalence_bound"][k] = verdict.equivalence_bound
        out["difference_chi2"][k] = verdict.difference_statistic
        out["difference_p"][k] = verdict.difference_p
        out["rho_lower"][k] = verdict.rho_lower
        out["rho_upper"][k] = verdict.rho_upper
        out["rho_surrogate_p"][k] = verdict.surrogate_p
        out["rho_over_ceiling"][k] = verdict.rho_over_ceiling
        out["verdict"][k] = verdict.code
        out["verdict_reasons"][k] = verdict.reason_mask
    cell = ("chi2_null_mean", "chi2_floor", "rho_ceiling", "rho_level")
    return {
        **out,
        **{name: np.asarray(network[name]) for name in cell},
        "equivalence_margin": np.asarray(network["margin"]),
        "split_half_r_seed": v["split_half_r"],
    }


# ------------------------------------------------------------------ the PDM's rate
def pdm_rate_combine(seeds: Seeds) -> dict[str, np.ndarray]:
    """Cell means of the PDM's rate check (MODEL.md §5.2), and its per-seed values.

    The per-seed values come from the recordings (:func:`nmmval.compare.pdm_rate`):
    the relative error of the mean rate averaged over seeds, the correlation
    by ``tanh(mean atanh ρ_k)``; NaN if undefined in some seed.
    """
    v = seeds.values
    return {
        "pdm_rate_rel_error": v["pdm_rate_rel_error"].mean(axis=0),
        "pdm_rate_corr": mean_rho(v["pdm_rate_corr"], axis=0),
        "pdm_rate_rel_error_seed": v["pdm_rate_rel_error"],
        "pdm_rate_corr_seed": v["pdm_rate_corr"],
    }


# ------------------------------------------------------------------ the held-out half
def held_out_per_seed(traces: Traces, params: Params) -> Result:
    """ρ(τ_max), τ_max and the protocol's per-seed pieces on the held-out half (MODEL.md §5.3).

    :func:`xcorr_per_seed` and :func:`protocol_per_seed` on :meth:`Traces.held_out`,
    stored as ``<name>_held_out``; the Welch bins are ``held_out_freq_Hz``.
    """
    half = traces.held_out()
    values = {"diverged": np.array(list(half.diverged.values()), dtype=np.int8)}
    coords = {}
    for measure in (xcorr_per_seed, protocol_per_seed):
        result = measure(half, params)
        values.update(result.values)
        coords.update(result.coords)
    return Result(
        {f"{name}_held_out": values[name] for name in HELD_OUT_PER_SEED},
        {"held_out_freq_Hz": coords["welch_freq_Hz"]},
    )


def held_out_combine(seeds: Seeds) -> dict[str, np.ndarray]:
    """Every model's verdict on the held-out half, with the numbers behind it (MODEL.md §5.3).

    :func:`protocol_combine` and ρ, τ_max as :func:`xcorr_combine` on the
    ``*_held_out`` values: the fitted models' only fair score, and every other
    model's beside it.
    """
    v = {name: seeds.values[f"{name}_held_out"] for name in HELD_OUT_PER_SEED}
    half = seeds._replace(values=v)
    out = {**protocol_combine(half), "diverged_seed": v["diverged"]}
    bad = half.bad[1:]
    out["rho"] = np.where(bad, np.nan, mean_rho(v["rho_max"], axis=0))
    out["tau_max_ms"] = np.where(bad, np.nan, np.median(v["tau_max_ms"], axis=0))
    return {f"{name}_held_out": out[name] for name in HELD_OUT_CELL}


def _nothing(traces: Traces, params: Params) -> Result:
    return Result({}, {})


#: the registry: one line per measure
MEASURES: tuple[Measure, ...] = (
    Measure("spectrum", spectrum_per_seed, spectrum_combine),
    Measure("chi2", _nothing, chi2_combine),
    Measure("xcorr", xcorr_per_seed, xcorr_combine),
    Measure("potential", potential_per_seed, potential_combine),
    Measure("protocol", protocol_per_seed, protocol_combine),
    Measure("pdm_rate", _nothing, pdm_rate_combine),
    Measure("held_out", held_out_per_seed, held_out_combine),
)
