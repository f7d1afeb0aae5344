"""The compare stage: one seed's network and mass models, measured on [T0, T) (MODEL.md §6).

:func:`compare_cell` takes the network.nc and masses.nc Datasets of one cell
<p, λ, seed>, cuts every potential (and the network's split-half means) to
the analysis window, runs every registered measure
(:data:`nmmval.analysis.measures.MEASURES`: the paper's measures and the
per-seed pieces of the validation protocol) on the network and every
registered mass model (:mod:`nmmval.models`), adds the recordings'
diagnostics (:func:`diagnostics`: ΣḠ, ζ, the closure error, when a model
diverged; MODEL.md §4, §5.1) and the PDM's rate against the network's
(:func:`pdm_rate`, §5.2) and returns a :class:`CellComparison`, whose
:meth:`~CellComparison.to_dataset` is the compare.nc Dataset. A model whose
trace holds NaN in the window (it diverged, :mod:`nmmval.masses`) has NaN
measures and ``diverged = 1``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import xarray as xr

from nmmval import datasets, models
from nmmval.analysis.diagnostics import (
    closure_error,
    damping_ratio,
    divergence_time,
    rate_agreement,
    sum_conductance,
)
from nmmval.analysis.measures import MEASURES, Traces, surrogate_rng
from nmmval.config import Params
from nmmval.datasets import LIF, NETWORK_SCALARS, PDM_RATE
from nmmval.masses import check_recordings, drive
from nmmval.models import Drive, fokker_planck
from nmmval.models.freeman import synaptic_input


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
        ``lag_ms`` (ms), ``welch_freq_Hz`` (Hz), ``surrogate``, ``half``,
        ``population``.
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
    """The potentials of the network, its split halves and every model over [T0, T) (mV).

    Raises
    ------
    nmmval.store.InputError
        If network.nc has no per-population, split-half or closure recordings.
    """
    check_recordings(network)
    n0 = params.simulation.n0_steps
    V = {LIF: network["V"].values[n0:].astype(np.float64)}
    for m in models.registered():
        V[m.name] = masses[m.variable].values[n0:].astype(np.float64)
    diverged = {m: bool(np.isnan(v).any()) for m, v in V.items()}
    v_a, v_b = network["V_half"].transpose("half", "time_ms").values[:, n0:].astype(np.float64)
    cell = (network.attrs["p"], network.attrs["lam"], network.attrs["seed"])
    return Traces(
        V,
        diverged,
        params.simulation.dt_ms,
        v_a,
        v_b,
        lambda k: surrogate_rng(params, *cell, k),
        lambda k: surrogate_rng(params, *cell, k, held_out=True),
    )


def damping(recording: Drive, params: Params) -> tuple[float, float]:
    """ΣḠ over [T0, T) and the MFM's damping ratio ζ at it (MODEL.md §5.1).

    Parameters
    ----------
    recording : nmmval.models.Drive
        The network's recorded input (:func:`nmmval.masses.drive`).
    params : nmmval.config.Params
        ``network.g_hat_*_nSms``, ``neuron.g_L_nS`` and ``neuron.tau_m_ms``,
        ``masses.tau_s_ms``, the window's first step ``simulation.n0_steps``.

    Returns
    -------
    sum_G : float
        :func:`nmmval.analysis.diagnostics.sum_conductance` (dimensionless).
    zeta : float
        :func:`nmmval.analysis.diagnostics.damping_ratio` at ``sum_G``
        (dimensionless; over-damped for ζ >= 1).
    """
    feedback = synaptic_input(recording, params)
    sum_G = sum_conductance(feedback.gain_ms, feedback.rate_per_ms[:, params.simulation.n0_steps :])
    return sum_G, damping_ratio(params.neuron.tau_m_ms, params.masses.tau_s_ms, sum_G)


def diagnostics(network: xr.Dataset, masses: xr.Dataset, params: Params) -> dict:
    """Per-seed diagnostics of the recordings (MODEL.md §4, §5.1).

    Returns
    -------
    dict
        ``sum_G`` (ΣḠ over [T0, T), from φ_σ of network.nc and the
        ``network.g_hat_*_nSms``, ``neuron.g_L_nS`` of ``params``), ``zeta``
        (the MFM's damping ratio at ΣḠ, ``neuron.tau_m_ms``,
        ``masses.tau_s_ms``), ``closure_error_mV`` (population; from
        ``cov_gv_pop`` over [T0, T), NaN without closure recordings) and
        ``diverged_at_ms`` (mass; NaN if the model did not diverge).

    Raises
    ------
    nmmval.store.InputError
        If network.nc has no per-population, split-half or closure recordings.
    """
    check_recordings(network)
    sim, neuron = params.simulation, params.neuron
    sum_G, zeta = damping(drive(network, params), params)
    cov = network["cov_gv_pop"].transpose("synapse", "population", "closure_time_ms")
    in_window = cov["closure_time_ms"].values >= sim.T0_ms - 0.5 * sim.dt_ms
    t_ms = network["time_ms"].values
    return {
        "sum_G": sum_G,
        "zeta": zeta,
        "closure_error_mV": closure_error(cov.values[..., in_window], neuron.g_L_nS),
        "diverged_at_ms": np.array(
            [divergence_time(masses[m.variable].values, t_ms) for m in models.registered()]
        ),
    }


def pdm_rate(network: xr.Dataset, masses: xr.Dataset, params: Params) -> dict:
    """The PDM's rate r_P against the network's A_P = n_P/(N_P·dt) over [T0, T) (MODEL.md §5.2).

    Returns
    -------
    dict
        ``pdm_rate_rel_error`` and ``pdm_rate_corr`` (population;
        :func:`nmmval.analysis.diagnostics.rate_agreement` with bins of
        ``analysis.rate_bin_ms``, rounded to whole steps, at least one); NaN
        for a population without cells, and for both if the PDM is not
        registered.
    """
    out = {name: np.full(len(datasets.POPULATIONS), np.nan) for name in PDM_RATE}
    if fokker_planck.MODEL.name not in models.names():
        return out
    sim = params.simulation
    r_Hz = masses[fokker_planck.RATE].transpose("population", "time_ms").values
    spikes = network["spikes_pop"].transpose("population", "time_ms").values
    bin_steps = max(1, round(params.analysis.rate_bin_ms / sim.dt_ms))
    for P, N_P in enumerate((network.attrs["n_E"], network.attrs["n_I"])):
        if N_P > 0:
            A_Hz = spikes[P, sim.n0_steps :] / (N_P * sim.dt_ms * 1e-3)
            out["pdm_rate_rel_error"][P], out["pdm_rate_corr"][P] = rate_agreement(
                r_Hz[P, sim.n0_steps :], A_Hz, bin_steps
            )
    return out


def compare_cell(network: xr.Dataset, masses: xr.Dataset, params: Params) -> CellComparison:
    """Measure one cell's network and mass models against each other (MODEL.md §6).

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
    nmmval.store.InputError
        If network.nc has no per-population, split-half or closure recordings (a file from
        before them).
    """
    started = time.perf_counter()
    if masses.sizes["time_ms"] != network.sizes["time_ms"]:
        raise ValueError("masses: time axis does not match the network's")
    tr = traces(network, masses, params)
    values = {k: network[k].values for k in NETWORK_SCALARS}
    values.update(diagnostics(network, masses, params))
    values.update(pdm_rate(network, masses, params))
    values["diverged"] = np.array(list(tr.diverged.values()), dtype=np.int8)
    coords = {
        "model": list(tr.V_mV),
        "mass": tr.masses,
        "half": network["half"].values,
        "population": network["population"].values,
    }
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
