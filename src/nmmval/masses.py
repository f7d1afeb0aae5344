"""The masses stage: every registered mass model driven by one network recording (MODEL.md §5).

:func:`run` reads the recorded input φ_σ and V̄ of a network.nc Dataset, runs
each model of :mod:`nmmval.models` on it and returns the masses.nc Dataset
(:func:`nmmval.datasets.layout`). A model whose potential leaves the float32
range has diverged (MODEL.md §5.1: the MFM's parametric instability): its
traces are NaN from that step on and the potential's ``diverged_at_ms``
attribute says when; it is ``"none"`` otherwise.
"""

from __future__ import annotations

import time

import numpy as np
import xarray as xr

from nmmval import datasets, models
from nmmval.config import Params
from nmmval.models import SYNAPSE_TYPES, Drive

#: largest magnitude a stored potential can have (float32); beyond it a model has diverged
DIVERGENCE_LIMIT_mV = float(np.finfo(np.float32).max)


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


def drive(network: xr.Dataset, params: Params) -> Drive:
    """The recording the models are driven with: φ_σ of a network.nc Dataset, dt and V̄."""
    return Drive(
        phi={s: network[f"phi_{s}"].values for s in SYNAPSE_TYPES},
        dt_ms=params.simulation.dt_ms,
        Vbar_mV=float(network["Vbar_mV"]),
    )


def run(network: xr.Dataset, params: Params) -> xr.Dataset:
    """Drive every registered mass model with one network's input (MODEL.md §5).

    Parameters
    ----------
    network : xarray.Dataset
        A network.nc Dataset (:func:`nmmval.simulation.simulate_dataset`),
        made with ``params``' time grid.
    params : nmmval.config.Params

    Returns
    -------
    xarray.Dataset
        The masses.nc Dataset: ``V_<name>`` (time_ms; mV, float32) of every
        model and its extra traces; NaN from the step a model diverged
        (``diverged_at_ms``, ms, on its potential).
    """
    t0 = time.perf_counter()
    rec = drive(network, params)
    t_ms = network["time_ms"].values
    values, diverged_at = {}, {}
    for model in models.registered():
        out = model.run(rec, params)
        traces = {model.variable: out.V_mV, **out.extra}
        k = divergence_step(out.V_mV)
        diverged_at[model.variable] = "none" if k is None else float(t_ms[k])
        for name, v in traces.items():
            if k is not None:  # no value from here on: NaN, flagged
                v = np.array(v, dtype=np.float64)
                v[k:] = np.nan
            values[name] = v
    ds = datasets.build(
        "masses",
        values,
        coords={"time_ms": t_ms},
        attrs=datasets.global_attrs(
            params,
            **{k: network.attrs[k] for k in ("p", "lam", "seed")},
            Vbar_mV=rec.Vbar_mV,
            wall_time_s=time.perf_counter() - t0,
        ),
        models=models.registered(),
    )
    for name, t in diverged_at.items():
        ds[name].attrs["diverged_at_ms"] = t
        if t != "none":
            ds[name].attrs["comment"] += (
                "; the model diverged (|V| beyond float32) at diverged_at_ms, NaN after"
            )
    return ds
