"""The compare stage: one seed's network and mass models, measured on [T0, T) (MODEL.md §6.1).

:func:`compare_cell` takes the network.nc and masses.nc Datasets of one cell
<p, λ, seed>, cuts every potential to the analysis window, runs every
registered measure (:data:`nmmval.analysis.measures.MEASURES`) on the network and every
registered mass model (:mod:`nmmval.models`) and returns a
:class:`CellComparison`, whose :meth:`~CellComparison.to_dataset` is the
compare.nc Dataset. A model whose trace holds NaN in the window (it diverged,
:mod:`nmmval.masses`) has NaN measures and ``diverged = 1``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import xarray as xr

from nmmval import datasets, models
from nmmval.analysis.measures import MEASURES, Traces
from nmmval.config import Params
from nmmval.datasets import LIF, NETWORK_SCALARS


@dataclass(frozen=True)
class CellComparison:
    """Every measure of one cell <p, λ, seed> (the content of compare.nc).

    Attributes
    ----------
    cell : dict
        ``p``, ``lam``, ``seed`` as the network file holds them.
    values : dict of str to numpy.ndarray
        Every compare.nc variable (:data:`nmmval.datasets.COMPARE`).
    coords : dict of str to numpy.ndarray
        ``model`` (LIF and the mass models), ``mass``, ``freq_Hz`` (Hz),
        ``lag_ms`` (ms).
    n_samples : int
        Samples in the analysis window [T0, T).
    started : float
        ``time.perf_counter()`` when the comparison began (for ``wall_time_s``).
    """

    cell: dict
    values: dict
    coords: dict
    n_samples: int
    started: float

    def to_dataset(self, params: Params) -> xr.Dataset:
        """The compare.nc Dataset, laid out as :data:`nmmval.datasets.COMPARE` declares."""
        return datasets.build(
            "compare",
            self.values,
            self.coords,
            datasets.global_attrs(
                params,
                **self.cell,
                n_samples=self.n_samples,
                wall_time_s=time.perf_counter() - self.started,
            ),
        )


def traces(network: xr.Dataset, masses: xr.Dataset, params: Params) -> Traces:
    """The network's and every registered model's potential over [T0, T), as float64 (mV)."""
    n0 = params.simulation.n0_steps
    V = {LIF: network["V"].values[n0:].astype(np.float64)}
    for m in models.registered():
        V[m.name] = masses[m.variable].values[n0:].astype(np.float64)
    diverged = {m: bool(np.isnan(v).any()) for m, v in V.items()}
    return Traces(V, diverged, params.simulation.dt_ms)


def compare_cell(network: xr.Dataset, masses: xr.Dataset, params: Params) -> CellComparison:
    """Measure one cell's network and mass models against each other (MODEL.md §6.1).

    Parameters
    ----------
    network, masses : xarray.Dataset
        The cell's network.nc and masses.nc Datasets, made with ``params``'
        time grid.
    params : nmmval.config.Params

    Returns
    -------
    CellComparison

    Raises
    ------
    ValueError
        If the two Datasets have different time axes.
    """
    started = time.perf_counter()
    if masses.sizes["time_ms"] != network.sizes["time_ms"]:
        raise ValueError("masses: time axis does not match the network's")
    tr = traces(network, masses, params)
    values = {k: network[k].values for k in NETWORK_SCALARS}
    values["diverged"] = np.array(list(tr.diverged.values()), dtype=np.int8)
    coords = {"model": list(tr.V_mV), "mass": tr.masses}
    for measure in MEASURES:
        result = measure.per_seed(tr, params)
        values.update(result.values)
        coords.update(result.coords)
    return CellComparison(
        cell={k: network.attrs[k] for k in ("p", "lam", "seed")},
        values=values,
        coords=coords,
        n_samples=int(tr.V_mV[LIF].size),
        started=started,
    )
