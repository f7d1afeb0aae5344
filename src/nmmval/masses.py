"""The masses stage: every registered mass model driven by one network recording (MODEL.md §5).

:func:`run` reads the recorded input of a network.nc Dataset (:func:`drive`:
φ_σ, V̄, the per-population arrivals φ_σ^P and spike counts n_P), runs each
model of :mod:`nmmval.models` on it and returns the masses.nc Dataset
(:func:`nmmval.datasets.layout`). The same rule applies to every model: one
whose potential leaves the float32 range has diverged (MODEL.md §5.1: the
MFM's parametric instability; the CBM family and the PDM are bounded by
construction): its traces are NaN from that step on and the potential's
``diverged_at_ms`` attribute says when; it is ``"none"`` otherwise. The
MFM-fit cuts its own trace earlier, beyond ±1000 mV, the criterion that
rejects its fit (:mod:`nmmval.models.fitted`); the same attribute then says when.
"""

from __future__ import annotations

import time

import numpy as np
import xarray as xr

from nmmval import datasets, models
from nmmval.config import Params
from nmmval.models import SYNAPSE_TYPES, Drive
from nmmval.models.fitted import PARAMETERS
from nmmval.store import InputError

#: largest magnitude a stored potential can have (float32); beyond it a model has diverged
DIVERGENCE_LIMIT_mV = float(np.finfo(np.float32).max)
#: network.nc variables of the per-population, split-half and closure recordings (MODEL.md §4)
RECORDINGS = ("arrivals_pop", "spikes_pop", "V_half", "cov_gv_pop")


def divergence_step(v_mV: np.ndarray) -> int | None:
    """First step at which a mass model's potential left the representable range.

    Eq. 24 multiplies the input rate by the model's own V; with the bursts of
    high-rate synchrony (thousands of arrivals per neuron in one step) the
    MFM can grow without bound, also with finer time steps (it is the model,
    not the Euler scheme). Such a trace has no value from this step on.

    Returns
    -------
    int or None
        Index of the first non-finite value or value beyond
        :data:`DIVERGENCE_LIMIT_mV` in magnitude; None if the trace stays finite.
    """
    bad = ~(np.abs(v_mV) <= DIVERGENCE_LIMIT_mV)
    return int(np.argmax(bad)) if bad.any() else None


def check_recordings(network: xr.Dataset) -> None:
    """Stop with one line if network.nc predates the per-population, split-half and closure
    recordings (MODEL.md §4).

    Raises
    ------
    nmmval.store.InputError
        Naming the cell and the missing variables.
    """
    missing = [name for name in RECORDINGS if name not in network]
    if missing:
        raise InputError(
            f"network.nc of p={network.attrs.get('p')}, lam={network.attrs.get('lam')}, "
            f"seed={network.attrs.get('seed')}: no {', '.join(missing)} (made before the "
            "per-population, split-half and closure recordings); simulate the cell again"
        )


def drive(network: xr.Dataset, params: Params, fit=None) -> Drive:
    """The recording the models are driven with (MODEL.md §4), from a network.nc Dataset.

    φ_σ, dt and V̄; the per-population arrivals φ_σ^P = ``arrivals_pop``/N_P
    (zero for an empty population), the spike counts n_P (``spikes_pop``) and
    N_E, N_I (global attributes ``n_E``, ``n_I``); ``fit``, the fitted models'
    parameters by name (:func:`nmmval.fit.parameters`), if given.

    Raises
    ------
    nmmval.store.InputError
        If network.nc has no per-population recordings (:func:`check_recordings`).
    """
    check_recordings(network)
    n_pop = np.array([network.attrs["n_E"], network.attrs["n_I"]], dtype=np.int64)
    counts = network["arrivals_pop"].transpose("synapse", "population", "time_ms").values
    return Drive(
        phi={s: network[f"phi_{s}"].values for s in SYNAPSE_TYPES},
        dt_ms=params.simulation.dt_ms,
        Vbar_mV=float(network["Vbar_mV"]),
        phi_pop=counts / np.maximum(n_pop, 1)[:, None],  # an empty population has no arrivals
        spikes_pop=network["spikes_pop"].transpose("population", "time_ms").values.astype(np.int64),
        n_E=int(n_pop[0]),
        n_I=int(n_pop[1]),
        fit=fit,
    )


def run(network: xr.Dataset, params: Params, fit: xr.Dataset | None = None) -> xr.Dataset:
    """Drive every registered mass model with one network's input (MODEL.md §5).

    Parameters
    ----------
    network : xarray.Dataset
        A network.nc Dataset (:func:`nmmval.simulation.simulate_dataset`),
        made with ``params``' time grid.
    params : nmmval.config.Params
    fit : xarray.Dataset, optional
        The cell's fit.nc (:func:`nmmval.fit.run` over all its seeds, as the
        workflow does), whose parameters the fitted models run with. Without
        it they are fitted to this one recording (a cell of one seed). Either
        way the parameters are in the potential's ``fitted_parameters``
        attribute and ``fit_source`` says which.

    Returns
    -------
    xarray.Dataset
        The masses.nc Dataset: ``V_<name>`` (time_ms; mV, float32) of every
        model and its extra traces; NaN from the step a model diverged
        (``diverged_at_ms``, ms, on its potential).

    Raises
    ------
    nmmval.store.InputError
        If network.nc has no per-population recordings (:func:`check_recordings`).
    """
    from nmmval import fit as fitting  # the fit stage reads recordings with drive() below

    t0 = time.perf_counter()
    if fit is None and models.fitted_names():
        fit, source = fitting.run([network], params), "fitted to this seed alone"
    else:
        source = f"fit.nc of the cell, seeds {fit.attrs.get('seeds')}" if fit is not None else ""
    rec = drive(network, params, None if fit is None else fitting.parameters(fit))
    t_ms = network["time_ms"].values
    values, diverged_at = {}, {}
    for model in models.registered():
        out = model.run(rec, params)
        traces = {model.variable: out.V_mV, **out.extra}
        k = divergence_step(out.V_mV)
        diverged_at[model.variable] = "none" if k is None else float(t_ms[k])
        for name, v in traces.items():
            if k is not None:  # no value from here on (time is the last axis): NaN, flagged
                v = np.array(v, dtype=np.float64)
                v[..., k:] = np.nan
            values[name] = v
    ds = datasets.build(
        "masses",
        values,
        coords={"time_ms": t_ms, "population": list(datasets.POPULATIONS)},
        attrs=datasets.global_attrs(
            params,
            **{k: network.attrs[k] for k in ("p", "lam", "seed")},
            Vbar_mV=rec.Vbar_mV,
            wall_time_s=time.perf_counter() - t0,
        ),
        models=models.registered(),
    )
    for m in models.registered():
        if m.fitted:
            theta = rec.fit[m.name]
            ds[m.variable].attrs["fitted_parameters"] = ", ".join(
                f"{k}={v:.6g}" for k, v in zip(PARAMETERS, theta, strict=True)
            )
            ds[m.variable].attrs["fit_source"] = source
    for name, t in diverged_at.items():
        ds[name].attrs["diverged_at_ms"] = t
        if t != "none":
            ds[name].attrs["comment"] += (
                "; the model diverged (|V| beyond float32) at diverged_at_ms, NaN after"
            )
    return ds
