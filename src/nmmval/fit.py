"""The fit stage: the fitted Freeman models' parameters of one cell <p, λ> (MODEL.md §5.3).

:func:`run` reads the network.nc Datasets of the cell's seeds, fits every
registered fitted model (:mod:`nmmval.models.fitted`: CFM-fit, MFM-fit) on
the first half of their analysis window, pooled over the seeds, and returns
the fit.nc Dataset (:data:`nmmval.datasets.FIT`). The masses stage runs the
fitted models with these parameters (:func:`parameters`), and the cube
keeps them per cell.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import xarray as xr

from nmmval import datasets, models
from nmmval.config import Params
from nmmval.masses import drive
from nmmval.models import SYNAPSE_TYPES, fitted
from nmmval.store import InputError


def run(networks: Sequence[xr.Dataset], params: Params) -> xr.Dataset:
    """Fit the fitted models to one cell's seeds (MODEL.md §5.3).

    Parameters
    ----------
    networks : sequence of xarray.Dataset
        The network.nc Datasets of every seed of one cell, made with
        ``params``' time grid.
    params : nmmval.config.Params

    Returns
    -------
    xarray.Dataset
        fit.nc: per fitted model τ_s (ms), the gains per synapse type, the
        offset (mV), the training RMS with the fitted and with the derived
        parameters (mV) and whether the fit was accepted.

    Raises
    ------
    nmmval.store.InputError
        If the files are not of one cell, or a file has no per-population recordings.
    """
    t0 = time.perf_counter()
    if not networks:
        raise InputError("fit: no network.nc given")
    cells = {(float(n.attrs["p"]), float(n.attrs["lam"])) for n in networks}
    if len(cells) != 1:
        raise InputError(f"fit: the network files hold several cells {sorted(cells)}, not one")
    fits = fitted.fit_cell(
        [drive(n, params) for n in networks], [n["V"].values for n in networks], params
    )
    names = models.fitted_names()
    values = {
        "fit_tau_s_ms": [fits[m].values[0] for m in names],
        "fit_gain": [fits[m].values[1:4] for m in names],
        "fit_offset_mV": [fits[m].values[4] for m in names],
        "fit_rms_mV": [fits[m].rms_mV for m in names],
        "fit_rms_derived_mV": [fits[m].rms_derived_mV for m in names],
        "fit_status": [fits[m].status for m in names],
    }
    ((p, lam),) = cells
    return datasets.build(
        "fit",
        values,
        coords={"fitted": list(names), "synapse": list(SYNAPSE_TYPES)},
        attrs=datasets.global_attrs(
            params,
            p=p,
            lam=lam,
            seeds=", ".join(str(int(n.attrs["seed"])) for n in networks),
            training_window_ms=f"[{params.simulation.T0_ms:g}, "
            f"{fitted.split_step(params) * params.simulation.dt_ms:g})",
            wall_time_s=time.perf_counter() - t0,
        ),
    )


def parameters(fit: xr.Dataset) -> dict[str, np.ndarray]:
    """The fitted parameters of each fitted model in fit.nc, ordered as
    :data:`nmmval.models.fitted.PARAMETERS` (``Drive.fit``)."""
    out = {}
    for m in fit["fitted"].values:
        f = fit.sel(fitted=m)
        gains = f["fit_gain"].sel(synapse=list(SYNAPSE_TYPES)).values
        out[str(m)] = np.array(
            [float(f["fit_tau_s_ms"]), *gains, float(f["fit_offset_mV"])], dtype=np.float64
        )
    return out
