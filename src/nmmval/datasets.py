"""The layouts of nmmval's files, declared once: network.nc, fit.nc, masses.nc, compare.nc, cube.nc.

Every variable of every file is one :class:`Var` row below: its dimensions,
dtype, units, a short ``long_name`` (at most :data:`LONG_NAME_MAX` characters:
figures use it as the axis or colour-bar label) and, where one sentence
says more, a ``comment``; flag variables list their meanings. Writers build
their Datasets from these rows (:func:`build`), :func:`nmmval.store.open_dataset`
checks every file it reads against them (:func:`problems`), and the cube and
the figures take names and labels from them (:func:`label`).

masses.nc holds one potential per registered mass model (:mod:`nmmval.models`),
``V_<name>``, plus the extra outputs the model declares; its layout is
therefore :func:`layout` of the registry, not a fixed table.

Units follow MODEL.md §1 (ms, mV, Hz); "1" is dimensionless. The global
attributes every file carries are :func:`global_attrs`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from nmmval import __version__

#: longest long_name: it is a plot label
LONG_NAME_MAX = 40
#: the dimensions of the mass-model coordinates: ``model`` = LIF and every
#: registered mass model, ``mass`` = the mass models alone (compared with LIF)
MODEL_DIMS = ("model", "mass")
#: name of the network in the ``model`` coordinate
LIF = "LIF"
#: the network's populations (coordinate ``population``)
POPULATIONS = ("E", "I")


@dataclass(frozen=True)
class Var:
    """One variable of a file: how it is stored and labelled.

    Attributes
    ----------
    dims : tuple of str
        Dimension names, in order (``()`` for a scalar).
    dtype : str
        numpy dtype of the stored values (``"str"`` for labels).
    units : str or None
        CF units (None only for labels).
    long_name : str
        Short description, at most :data:`LONG_NAME_MAX` characters.
    comment : str
        The longer sentence, if any.
    flags : tuple of str
        For a flag variable, the meaning of each flag value (CF
        ``flag_meanings``): of 0, 1, ... unless ``flag_values`` or
        ``flag_masks`` say otherwise.
    flag_values : tuple of int
        Explicit CF ``flag_values``, one per entry of ``flags`` (default 0, 1, ...).
    flag_masks : tuple of int
        CF ``flag_masks`` of a bit-mask variable, one bit per entry of ``flags``.
    extra : tuple of (str, object)
        Further fixed attributes, e.g. ``("zero_convention", "...")``. (No
        ``cell_methods`` over seeds: CF allows them only over a dimension or
        scalar coordinate of the variable; the comment says "mean over seeds".)
    fill : bool
        Float data written with a NaN ``_FillValue`` (False: none).
    """

    dims: tuple[str, ...]
    dtype: str
    units: str | None
    long_name: str
    comment: str = ""
    flags: tuple[str, ...] = ()
    flag_values: tuple[int, ...] = ()
    flag_masks: tuple[int, ...] = ()
    extra: tuple[tuple[str, object], ...] = ()
    fill: bool = True

    def over(self, *dims: str, **changes) -> Var:
        """The same quantity with ``dims`` prepended (e.g. per cell and seed in the cube)."""
        return dataclasses.replace(self, dims=(*dims, *self.dims), **changes)

    def attrs(self) -> dict:
        """The variable's CF attributes."""
        out = {} if self.units is None else {"units": self.units}
        out["long_name"] = self.long_name
        if self.comment:
            out["comment"] = self.comment
        if self.flags:  # CF: flag values and masks of the variable's own type
            if self.flag_masks:
                out["flag_masks"] = np.array(self.flag_masks, dtype=self.dtype)
            else:
                values = self.flag_values or range(len(self.flags))
                out["flag_values"] = np.array(values, dtype=self.dtype)
            out["flag_meanings"] = " ".join(self.flags)
        out.update(self.extra)
        return out

    def array(self, values, name: str | None = None) -> xr.DataArray:
        """A DataArray of ``values`` cast to :attr:`dtype`, with its attributes."""
        values = np.asarray(values, dtype=None if self.dtype == "str" else self.dtype)
        da = xr.DataArray(values, dims=self.dims, name=name, attrs=self.attrs())
        if not self.fill:
            da.encoding["_FillValue"] = None
        return da


def _phi(synapse: str) -> Var:
    """φ_σ of MODEL.md §4: written without a fill value (every step has one)."""
    return Var(
        ("time_ms",),
        "float64",
        "1",
        f"{synapse} spike arrivals per neuron",
        comment="type-sigma spike arrivals added in the step, summed over all neurons, divided "
        "by N (MODEL.md §4); the mass models are driven by the rate Phi = phi/dt",
        fill=False,
    )


# ------------------------------------------------------------------ coordinates
COORDS: dict[str, Var] = {
    "time_ms": Var(("time_ms",), "float64", "ms", "time at the start of the step"),
    "model": Var(("model",), "str", None, "LIF network or mass model"),
    "mass": Var(("mass",), "str", None, "mass model compared with LIF"),
    "freq_Hz": Var(("freq_Hz",), "float64", "Hz", "frequency"),
    "welch_freq_Hz": Var(
        ("welch_freq_Hz",),
        "float64",
        "Hz",
        "frequency of the Welch spectra",
        comment="bins of one analysis.welch_segment_ms segment, up to analysis.fmax_store_Hz",
    ),
    "held_out_freq_Hz": Var(
        ("held_out_freq_Hz",),
        "float64",
        "Hz",
        "frequency of the held-out Welch spectra",
        comment="bins of one analysis.welch_segment_ms segment (or of the whole held-out half "
        "if shorter), up to analysis.fmax_store_Hz",
    ),
    "surrogate": Var(
        ("surrogate",),
        "int32",
        "1",
        "surrogate index",
        comment="phase-randomised surrogate of the model's V (MODEL.md §6.3)",
    ),
    "lag_ms": Var(
        ("lag_ms",),
        "float64",
        "ms",
        "lag of the model behind the network",
        comment="positive: the model's V follows the network's",
    ),
    "p": Var(("p",), "float64", "1", "connection probability p"),
    "lam": Var(("lam",), "float64", "1", "excitatory fraction λ"),
    "seed": Var(("seed",), "int32", "1", "repetition index", "a new graph, drive and noise"),
    "population": Var(("population",), "str", None, "population of the network (E, I)"),
    "synapse": Var(("synapse",), "str", None, "synapse type σ (E, I, ext)"),
    "fitted": Var(
        ("fitted",),
        "str",
        None,
        "fitted mass model",
        comment="a mass model whose parameters are fitted per cell (MODEL.md §5.3)",
    ),
    "half": Var(
        ("half",),
        "str",
        None,
        "split half of the cells",
        comment="a: cells of even index, b: of odd index (every second cell of each population)",
    ),
    "closure_time_ms": Var(
        ("closure_time_ms",),
        "float64",
        "ms",
        "time of the closure records",
        comment="time_ms, or empty if simulation.record_closures is off",
    ),
}

# ------------------------------------------------------------------ network.nc (MODEL.md §4)
_SYNCHRONY = Var(
    (),
    "float64",
    "1",
    "Spike-contrast synchrony",
    comment="of all N spike trains over [T0, T) (Ciba et al. 2018, MODEL.md §6.1); "
    "NaN: no train has two spikes",
)
_RATE_E = Var((), "float64", "Hz", "mean rate of excitatory cells", "over [T0, T)")
_RATE_I = Var((), "float64", "Hz", "mean rate of inhibitory cells", "over [T0, T); 0 if none")
_VBAR = Var((), "float64", "mV", "time mean of V over [T0, T)", "V̄ of Eq. 20")
#: the network's scalars, kept by compare.nc and (per seed) by the cube
NETWORK_SCALARS = {
    "synchrony": _SYNCHRONY,
    "rate_E_Hz": _RATE_E,
    "rate_I_Hz": _RATE_I,
    "Vbar_mV": _VBAR,
}
NETWORK: dict[str, Var] = {
    "V": Var(
        ("time_ms",),
        "float32",
        "mV",
        "mean membrane potential V",
        comment="mean of v over all N neurons at the start of the step (Eq. 12)",
    ),
    "phi_E": _phi("E"),
    "phi_I": _phi("I"),
    "phi_ext": _phi("external"),
    "arrivals_pop": Var(
        ("synapse", "population", "time_ms"),
        "int32",
        "1",
        "spike arrivals per population",
        comment="type-sigma spike arrivals on the cells of the population added in the step "
        "(MODEL.md §4); phi_sigma^P = arrivals_pop / N_P (global attributes n_E, n_I)",
        fill=False,
    ),
    "spikes_pop": Var(
        ("population", "time_ms"),
        "int32",
        "1",
        "spikes per population",
        comment="spikes of the population's cells in the step; A_P = spikes_pop / (N_P dt)",
        fill=False,
    ),
    "V_half": Var(
        ("half", "time_ms"),
        "float32",
        "mV",
        "split-half mean membrane potential",
        comment="mean of v over each half of the cells at the start of the step (MODEL.md §4): "
        "the network's own finite-N noise floor (§6.3)",
    ),
    "v_pop": Var(
        ("population", "closure_time_ms"),
        "float32",
        "mV",
        "population mean of v",
        comment="<v> over the cells of the population at the start of the step",
    ),
    "var_v_pop": Var(
        ("population", "closure_time_ms"),
        "float32",
        "mV2",
        "population variance of v",
        comment="var(v) over the cells of the population at the start of the step",
    ),
    "g_pop": Var(
        ("synapse", "population", "closure_time_ms"),
        "float32",
        "nS",
        "population mean conductance",
        comment="<g_sigma> over the cells of the population, as the step integrates with it",
    ),
    "cov_gv_pop": Var(
        ("synapse", "population", "closure_time_ms"),
        "float32",
        "nS mV",
        "covariance of g and v",
        comment="<g_sigma v> - <g_sigma><v> over the cells of the population (computed in "
        "float64): what the closure <g v> = <g><v> of Eqs. 17, 22, 23 drops",
    ),
    "spike_neuron": Var(
        ("spike",), "int32", "1", "id of the spiking neuron", "excitatory: id < n_E"
    ),
    "spike_step": Var(("spike",), "int32", "1", "step of the spike", "time = step * dt_ms"),
    **NETWORK_SCALARS,
}

# ------------------------------------------------------------------ masses.nc (MODEL.md §5)
#: a mass model's potential; its long_name and comment are the model's own
POTENTIAL = Var(("time_ms",), "float32", "mV", "mass-model potential V")


def masses_layout(models: Iterable) -> dict[str, Var]:
    """The variables of masses.nc: ``V_<name>`` and the declared extras of every model.

    Parameters
    ----------
    models : iterable of nmmval.models.MassModel
        The registered models, in registry order.
    """
    out = {}
    for m in models:
        out[m.variable] = dataclasses.replace(POTENTIAL, long_name=m.long_name, comment=m.comment)
        out.update(m.extra)
    return out


# ------------------------------------------------------------------ compare.nc (MODEL.md §6.1)
_DIVERGED = Var(
    ("model",),
    "int8",
    "1",
    "model diverged",
    comment="1 if the model's V diverged in [T0, T); its measures are NaN",
    flags=("finite", "diverged"),
)
_WELCH = (
    "Welch spectrum (Hamming segments of analysis.welch_segment_ms, 50 % overlap, segment "
    "means removed) over [T0, T), bins up to analysis.fmax_store_Hz (MODEL.md §6.3)"
)
_ABOVE = "summed Welch density of the bins above analysis.fmax_store_Hz (the whole band's last bin)"
#: per-seed diagnostics of the recordings (MODEL.md §4, §5.1), kept by compare.nc and
#: (per seed) by the cube
DIAGNOSTICS = {
    "diverged_at_ms": Var(
        ("mass",),
        "float64",
        "ms",
        "time the model diverged",
        comment="first non-finite sample of the model's V over the whole run (masses.nc holds "
        "NaN from then on); NaN: it did not diverge",
    ),
    "sum_G": Var(
        (),
        "float64",
        "1",
        "input conductance ΣḠ over g_L",
        comment="time mean over [T0, T) of sum_sigma g_hat_sigma Phi_sigma / g_L, "
        "Phi_sigma = phi_sigma/dt (MODEL.md §5.1)",
    ),
    "zeta": Var(
        (),
        "float64",
        "1",
        "MFM damping ratio ζ",
        comment="(tau_m + tau_s)/(2 sqrt(tau_m tau_s (1 + sum_G))) of the MFM's linearisation; "
        "over-damped for zeta >= 1 (MODEL.md §5.1)",
    ),
    "closure_error_mV": Var(
        ("population",),
        "float64",
        "mV",
        "closure error Σ cov(g, v)/g_L",
        comment="time mean over [T0, T) of sum_sigma (<g_sigma v> - <g_sigma><v>)/g_L over the "
        "cells of the population (MODEL.md §4); NaN without closure recordings "
        "(simulation.record_closures off)",
    ),
}
#: per-seed check of the PDM's predicted rate against the network's (MODEL.md §5.2), kept by
#: compare.nc and by the cube (per seed and as cell means)
PDM_RATE = {
    "pdm_rate_rel_error": Var(
        ("population",),
        "float64",
        "1",
        "PDM rate: relative error of the mean",
        comment="(mean r_P - mean A_P)/mean A_P over [T0, T), r_P the PDM's rate, A_P = "
        "n_P/(N_P dt) the network's; NaN for a population without cells or without a spike "
        "in the window",
    ),
    "pdm_rate_corr": Var(
        ("population",),
        "float64",
        "1",
        "PDM rate: correlation with the network",
        comment="Pearson correlation of r_P and A_P over [T0, T), both averaged over bins of "
        "analysis.rate_bin_ms; NaN for a population without cells or a constant rate",
    ),
}
COMPARE: dict[str, Var] = {
    "power": Var(
        ("model", "freq_Hz"),
        "float64",
        "mV2",
        "power spectrum of V",
        comment="|rfft|^2 of the mean-removed, Hamming-windowed V over [T0, T), "
        "bins up to analysis.fmax_store_Hz",
    ),
    "power_above_fmax": Var(
        ("model",),
        "float64",
        "mV2",
        "power above fmax_store_Hz",
        comment="summed power of the bins above analysis.fmax_store_Hz",
    ),
    "median_freq_Hz": Var(
        ("model",), "float64", "Hz", "median frequency ϖ", "of the full-band spectrum"
    ),
    "xcorr": Var(
        ("mass", "lag_ms"),
        "float64",
        "1",
        "lagged correlation ρ(τ)",
        comment="Pearson correlation of LIF V(t) and model V(t + lag) over their overlap",
    ),
    "tau_max_ms": Var(("mass",), "float64", "ms", "lag τ_max of the largest correlation"),
    "rho_max": Var(("mass",), "float64", "1", "largest correlation ρ(τ_max)"),
    "n_eff": Var(
        ("mass",),
        "float64",
        "1",
        "effective sample size",
        comment="of the correlation of two autocorrelated series (Bartlett / Bayley-Hammersley)",
    ),
    "rho_p": Var(
        ("mass",),
        "float64",
        "1",
        "Fisher-z p-value of ρ > 0",
        comment="one-sided, H0: rho_max <= 0, with n_eff samples",
    ),
    "diverged": _DIVERGED,
    "V_mean_mV": Var(
        ("model",), "float64", "mV", "time mean of V", "over [T0, T); NaN if the model diverged"
    ),
    "V_sd_mV": Var(
        ("model",),
        "float64",
        "mV",
        "standard deviation of V",
        comment="over [T0, T); NaN if the model diverged",
    ),
    "welch_power": Var(
        ("model", "welch_freq_Hz"), "float64", "mV2 Hz-1", "Welch spectrum of V", comment=_WELCH
    ),
    "welch_power_above_fmax": Var(
        ("model",), "float64", "mV2 Hz-1", "Welch density above fmax_store_Hz", comment=_ABOVE
    ),
    "welch_power_half": Var(
        ("half", "welch_freq_Hz"),
        "float64",
        "mV2 Hz-1",
        "Welch spectrum of a split-half mean",
        comment=f"of V_a and V_b: {_WELCH}",
    ),
    "welch_power_half_above_fmax": Var(
        ("half",), "float64", "mV2 Hz-1", "split half's density above fmax_store_Hz", comment=_ABOVE
    ),
    "split_half_r": Var(
        (),
        "float64",
        "1",
        "split-half correlation r",
        comment="Pearson correlation of the split-half means V_a, V_b over [T0, T) (MODEL.md §6.3)",
    ),
    "rho_surrogate": Var(
        ("mass", "surrogate"),
        "float64",
        "1",
        "ρ(τ_max) of a surrogate of the model",
        comment="largest correlation over |lag| <= analysis.max_lag_ms of LIF V with a "
        "phase-randomised surrogate of the model's V (analysis.n_surrogates, MODEL.md §6.3)",
    ),
    **DIAGNOSTICS,
    **PDM_RATE,
    **NETWORK_SCALARS,
}

# ------------------------------------------------------------------ held-out half (MODEL.md §5.3)
_HELD_OUT = (
    "on the held-out half [T_mid, T) of the analysis window only, where the fitted models are "
    "judged (MODEL.md §5.3)"
)


def held_out(var: Var) -> Var:
    """The same quantity on the held-out half [T_mid, T); Welch bins on ``held_out_freq_Hz``."""
    dims = tuple("held_out_freq_Hz" if d == "welch_freq_Hz" else d for d in var.dims)
    comment = f"{_HELD_OUT}; {var.comment}" if var.comment else _HELD_OUT
    return dataclasses.replace(var, dims=dims, comment=comment.replace("[T0, T)", "[T_mid, T)"))


#: compare.nc variables recomputed on the held-out half, as ``<name>_held_out``
HELD_OUT_PER_SEED = (
    "diverged",
    "tau_max_ms",
    "rho_max",
    "welch_power",
    "welch_power_above_fmax",
    "welch_power_half",
    "welch_power_half_above_fmax",
    "split_half_r",
    "rho_surrogate",
)
COMPARE.update({f"{name}_held_out": held_out(COMPARE[name]) for name in HELD_OUT_PER_SEED})

# ------------------------------------------------------------------ fit.nc (MODEL.md §5.3)
FIT: dict[str, Var] = {
    "fit_tau_s_ms": Var(("fitted",), "float64", "ms", "fitted τ_s"),
    "fit_gain": Var(
        ("fitted", "synapse"),
        "float64",
        "1",
        "fitted gain of ĝ_σ/g_L",
        comment="factor on the derived g_hat_sigma/g_L of each input type (1: the paper's "
        "derivation); 1 for a type without input before T_mid (not identifiable)",
    ),
    "fit_offset_mV": Var(("fitted",), "float64", "mV", "fitted offset of V"),
    "fit_rms_mV": Var(
        ("fitted",),
        "float64",
        "mV",
        "training RMS of V_model − V_LIF",
        comment="over [T0, T_mid) of every seed of the cell, with the fitted parameters",
    ),
    "fit_rms_derived_mV": Var(
        ("fitted",),
        "float64",
        "mV",
        "training RMS with derived parameters",
        comment="as fit_rms_mV with tau_s = masses.tau_s_ms, gains 1 and no offset",
    ),
    "fit_status": Var(
        ("fitted",),
        "int8",
        "1",
        "fit accepted or rejected",
        comment="rejected: the model diverges with the best parameters found in some seed "
        "(MODEL.md §5.3)",
        flags=("accepted", "rejected_diverges"),
    ),
}

# ------------------------------------------------------------------ cube.nc (MODEL.md §6)
_CELL = ("p", "lam")
_SEED = ("p", "lam", "seed")
_FISHER_MEAN = "seeds combined by tanh(mean atanh rho)"
_SEED_MEAN = "over [T0, T), mean over seeds; NaN if the model diverged in some seed"
CUBE: dict[str, Var] = {
    "diverged_seed": _DIVERGED.over(
        *_SEED, comment="1 if the model's V diverged in [T0, T) in this seed; its measures are NaN"
    ),
    **{name: var.over(*_SEED) for name, var in NETWORK_SCALARS.items()},
    **{name: var.over(*_SEED) for name, var in DIAGNOSTICS.items()},
    "V_mean_mV": COMPARE["V_mean_mV"].over(*_CELL, comment=_SEED_MEAN),
    "V_sd_mV": COMPARE["V_sd_mV"].over(*_CELL, comment=_SEED_MEAN),
    "V_mean_mV_seed": COMPARE["V_mean_mV"].over(*_SEED, long_name="time mean of V per seed"),
    "pdm_rate_rel_error": PDM_RATE["pdm_rate_rel_error"].over(
        *_CELL,
        comment="mean over seeds of pdm_rate_rel_error_seed; NaN if undefined in some seed",
    ),
    "pdm_rate_corr": PDM_RATE["pdm_rate_corr"].over(
        *_CELL, comment=f"pdm_rate_corr_seed, {_FISHER_MEAN}; NaN if undefined in some seed"
    ),
    "pdm_rate_rel_error_seed": PDM_RATE["pdm_rate_rel_error"].over(*_SEED),
    "pdm_rate_corr_seed": PDM_RATE["pdm_rate_corr"].over(*_SEED),
    "V_sd_mV_seed": COMPARE["V_sd_mV"].over(*_SEED, long_name="standard deviation of V per seed"),
    "spectrum": Var(
        (*_CELL, "model", "freq_Hz"),
        "float64",
        "1",
        "normalised seed-mean spectrum",
        comment="seed-mean power spectrum normalised to sum 1 over the whole band: "
        "the sum over freq_Hz plus spectrum_above_fmax is 1",
        extra=(
            (
                "zero_convention",
                "constant potential (silent network): spectrum 0, median 0 Hz, "
                "chi2 1 against a non-zero spectrum and 0 between two zero ones (p = 1), rho 0, "
                "tau_max 0 ms, rho_p 0.5",
            ),
        ),
    ),
    "spectrum_above_fmax": Var(
        (*_CELL, "model"),
        "float64",
        "1",
        "fraction of power above fmax_store_Hz",
        comment="of the seed-mean spectrum",
    ),
    "median_freq_Hz": COMPARE["median_freq_Hz"].over(
        *_CELL,
        comment="of the seed-mean spectrum; if above fmax_store_Hz, the first bin above it "
        "(a lower bound)",
    ),
    "median_freq_Hz_seed": COMPARE["median_freq_Hz"].over(
        *_SEED, long_name="median frequency ϖ per seed", comment="of each seed's full-band spectrum"
    ),
    "chi2": Var(
        (*_CELL, "mass"),
        "float64",
        "1",
        "paper's χ² distance of spectra (Eq. 25)",
        comment="the paper's Fig. 4 measure (MODEL.md §6.1): of the LIF and model seed-mean "
        "periodograms, each normalised to sum 1 (0 = same shape, 2 = disjoint)",
    ),
    "chi2_p_paper": Var(
        (*_CELL, "mass"),
        "float64",
        "1",
        "paper's p-value of χ²",
        comment="the paper's reading (MODEL.md §6.2): spectra scaled to n_samples counts, "
        "chi-square distribution with L - 1 - empty-bin degrees of freedom; a fixed cut on chi2 "
        "(attributes chi2_cut_*), blind to the network's variability: no verdict uses it",
    ),
    "tau_max_ms": COMPARE["tau_max_ms"].over(*_CELL, comment="median over seeds"),
    "rho": COMPARE["rho_max"].over(*_CELL, comment=_FISHER_MEAN),
    "rho_p": Var(
        (*_CELL, "mass"),
        "float64",
        "1",
        "paper's Fisher-z + Stouffer p of ρ > 0",
        comment="the paper's lenient reading (MODEL.md §6.2): per-seed one-sided Fisher-z "
        "p-values (H0: rho <= 0, n_eff at tau_max) combined by Stouffer's method; it ignores "
        "the lag search and rejects null pairs far above alpha: no verdict uses it",
    ),
    "xcorr": COMPARE["xcorr"].over(
        *_CELL, comment=f"LIF V(t) and model V(t + lag), {_FISHER_MEAN}"
    ),
    "tau_max_ms_seed": COMPARE["tau_max_ms"].over(*_SEED, comment="per seed"),
    "rho_seed": COMPARE["rho_max"].over(*_SEED, comment="per seed"),
    "rho_p_seed": COMPARE["rho_p"].over(*_SEED),
    "n_eff_seed": COMPARE["n_eff"].over(*_SEED),
    # the validation protocol (MODEL.md §6.3): the verdicts and every number behind them
    "chi2_welch_seed": Var(
        (*_SEED, "mass"),
        "float64",
        "1",
        "χ² of Welch spectra per seed",
        comment="Eq. 25 between the LIF and model Welch spectra of the seed, each normalised to "
        "sum 1 over the whole band",
    ),
    "chi2_null_mean": Var(
        _CELL,
        "float64",
        "1",
        "seed-null χ² of the network",
        comment="mean over seed pairs i < j of chi2 between the network's Welch spectra of "
        "seeds i and j: its distance from itself; NaN with one seed",
    ),
    "equivalence_margin": Var(
        _CELL,
        "float64",
        "1",
        "equivalence margin m of χ²",
        comment="analysis.equivalence_factor x chi2_null_mean",
    ),
    "equivalence_bound": Var(
        (*_CELL, "mass"),
        "float64",
        "1",
        "upper 95 % bound of mean χ² per seed",
        comment="one-sided Student-t bound of the mean of chi2_welch_seed; spectral equivalence "
        "is shown if it is below equivalence_margin",
    ),
    "difference_chi2": Var(
        (*_CELL, "mass"),
        "float64",
        "1",
        "χ² of the seed-mean Welch spectra",
        comment="statistic of the paired difference test: Eq. 25 between the seed means of the "
        "normalised Welch spectra of LIF and model",
    ),
    "difference_p": Var(
        (*_CELL, "mass"),
        "float64",
        "1",
        "paired sign-flip p-value of χ²",
        comment="H0: model and network spectra equal; each seed's LIF and model labels swapped "
        "or not, exact over all 2^k patterns for k <= 14 seeds (p >= 2^(1-k)), 9999 random "
        "patterns beyond",
    ),
    "chi2_floor": Var(
        _CELL,
        "float64",
        "1",
        "χ² floor: split half against split half",
        comment="mean over seeds of chi2 between the Welch spectra of the split-half means "
        "V_a and V_b",
    ),
    "split_half_r_seed": COMPARE["split_half_r"].over(*_SEED),
    "rho_ceiling": Var(
        _CELL,
        "float64",
        "1",
        "noise ceiling of ρ",
        comment="sqrt(2 r/(1 + r)) with r = tanh(mean atanh split_half_r_seed) (Spearman-Brown), "
        "0 for r <= 0: the best correlation a deterministic model of V can reach",
    ),
    "rho_level": Var(
        _CELL,
        "float64",
        "1",
        "adequacy level of ρ",
        comment="analysis.rho_adequate x rho_ceiling",
    ),
    "rho_lower": Var(
        (*_CELL, "mass"),
        "float64",
        "1",
        "lower 95 % bound of ρ(τ_max)",
        comment="one-sided Student-t bound on atanh rho_seed; rho adequacy is met if it is at "
        "least rho_level",
    ),
    "rho_upper": Var(
        (*_CELL, "mass"),
        "float64",
        "1",
        "upper 95 % bound of ρ(τ_max)",
        comment="one-sided Student-t bound on atanh rho_seed; inadequate if below rho_level",
    ),
    "rho_surrogate_p": Var(
        (*_CELL, "mass"),
        "float64",
        "1",
        "surrogate p-value of ρ(τ_max)",
        comment="one-sided: mean atanh rho_seed against the means over seeds of atanh of the "
        "phase-randomised surrogates' lag-searched maxima (compare.nc rho_surrogate)",
    ),
    "rho_over_ceiling": Var(
        (*_CELL, "mass"),
        "float64",
        "1",
        "ρ over its noise ceiling",
        comment="rho / rho_ceiling; NaN for a zero ceiling",
    ),
    "verdict": Var(
        (*_CELL, "mass"),
        "int8",
        "1",
        "verdict of the validation protocol",
        comment="adequate: equivalence_bound < equivalence_margin and rho_lower >= rho_level; "
        "inadequate: any of verdict_reasons; undecided otherwise (MODEL.md §6.3)",
        flags=("inadequate", "undecided", "adequate"),
        flag_values=(-1, 0, 1),
    ),
    "verdict_reasons": Var(
        (*_CELL, "mass"),
        "int8",
        "1",
        "reasons for an inadequate verdict",
        comment="bits: the model diverged in some seed; equivalence not shown and "
        "difference_p <= alpha; rho_upper < rho_level; rho_surrogate_p > alpha",
        flags=("diverged", "spectra_differ", "rho_below_level", "rho_not_above_null"),
        flag_masks=(1, 2, 4, 8),
    ),
}
#: cube variables of the protocol recomputed on the held-out half, as ``<name>_held_out``
HELD_OUT_CELL = (
    "verdict",
    "verdict_reasons",
    "equivalence_bound",
    "equivalence_margin",
    "difference_chi2",
    "difference_p",
    "rho_lower",
    "rho_upper",
    "rho_surrogate_p",
    "rho_over_ceiling",
    "chi2_welch_seed",
    "chi2_null_mean",
    "chi2_floor",
    "rho_ceiling",
    "rho_level",
    "split_half_r_seed",
    "rho",
    "tau_max_ms",
    "diverged_seed",
)
CUBE.update({f"{name}_held_out": held_out(CUBE[name]) for name in HELD_OUT_CELL})
CUBE.update({name: var.over(*_CELL) for name, var in FIT.items()})

_FIXED = {"network": NETWORK, "fit": FIT, "compare": COMPARE, "cube": CUBE}
KINDS = ("network", "fit", "masses", "compare", "cube")


def layout(kind: str, models: Iterable = ()) -> dict[str, Var]:
    """The data variables of a kind of file, name -> :class:`Var`.

    Parameters
    ----------
    kind : {"network", "fit", "masses", "compare", "cube"}
    models : iterable of nmmval.models.MassModel
        The registered mass models; used for masses.nc only.
    """
    if kind == "masses":
        return masses_layout(models)
    return _FIXED[kind]


def label(kind: str, name: str) -> str:
    """Axis or colour-bar label of a variable: ``long_name (units)``, or the
    long_name alone for a dimensionless one (units ``1``)."""
    var = COORDS[name] if name in COORDS else layout(kind)[name]
    return var.long_name if var.units == "1" else f"{var.long_name} ({var.units})"


def global_attrs(params, **extra) -> dict:
    """Global attributes every file carries: conventions, version, the resolved config."""
    attrs = {
        "Conventions": "CF-1.8",
        "title": "nmmval: validity of neural mass models (Deschle et al. 2021)",
        "nmmval_version": __version__,
        "config": params.to_json(),
        "history": f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} nmmval {__version__}",
    }
    attrs.update(extra)
    return attrs


def build(
    kind: str,
    values: Mapping[str, object],
    coords: Mapping[str, object],
    attrs: dict,
    models: Iterable = (),
) -> xr.Dataset:
    """A Dataset of one kind of file from its values, every variable as its :class:`Var` says.

    Parameters
    ----------
    kind : {"network", "fit", "masses", "compare", "cube"}
    values : mapping of str to array_like
        One entry per variable of :func:`layout` (no more, no fewer).
    coords : mapping of str to array_like
        Values of the coordinates (keys of :data:`COORDS`).
    attrs : dict
        Global attributes (:func:`global_attrs`).
    models : iterable of nmmval.models.MassModel
        The registered mass models (masses.nc only).

    Raises
    ------
    ValueError
        If ``values`` misses a declared variable or holds an undeclared one.
    """
    table = layout(kind, models)
    if set(values) != set(table):
        raise ValueError(
            f"{kind}: variables {sorted(set(values) ^ set(table))} are not as declared in "
            "nmmval.datasets"
        )
    data = {name: var.array(values[name]) for name, var in table.items()}
    coords = {name: COORDS[name].array(v) for name, v in coords.items()}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _dtype_ok(have: np.dtype, want: str) -> bool:
    if want == "str":
        return have.kind in "OUS"
    return have == np.dtype(want)


def problems(ds: xr.Dataset, kind: str, models: Iterable = ()) -> str | None:
    """What is wrong with a file's Dataset against its layout, or None.

    Checks that every declared variable is present, then its dimensions and
    dtype, and the dtype of every coordinate it uses.

    Returns
    -------
    str or None
        ``"not a complete {kind} file (no a, b)"`` or ``"{name}: dims ...,
        expected ..."`` / ``"{name}: dtype ..., expected ..."``; None if the
        file is as declared.
    """
    table = layout(kind, models)
    missing = [v for v in table if v not in ds.variables]
    if missing:
        return f"not a complete {kind} file (no {', '.join(missing)})"
    for name, var in table.items():
        have = ds[name]
        if have.dims != var.dims:
            return f"{name}: dims {have.dims}, expected {var.dims}"
        if not _dtype_ok(have.dtype, var.dtype):
            return f"{name}: dtype {have.dtype}, expected {var.dtype}"
    for name in {d for var in table.values() for d in var.dims if d in ds.coords}:
        if not _dtype_ok(ds[name].dtype, COORDS[name].dtype):
            return f"{name}: dtype {ds[name].dtype}, expected {COORDS[name].dtype}"
    return None
