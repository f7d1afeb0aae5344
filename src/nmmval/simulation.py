"""The simulate stage: one cell <p, λ, seed> of the LIF network as the network.nc Dataset.

:func:`simulate_dataset` runs :func:`nmmval.sim.lif.simulate` (MODEL.md §2-4),
scores the synchrony of its spikes (Spike-contrast, MODEL.md §6.1) and returns
what network.nc holds (:data:`nmmval.datasets.NETWORK`), so that the Python
API and the file agree; :func:`network_dataset` builds it from a recording.
"""

from __future__ import annotations

import time

import numpy as np
import xarray as xr

from nmmval import datasets
from nmmval.analysis.synchrony import spike_contrast
from nmmval.config import Params
from nmmval.sim.lif import Recording, simulate


def synchrony(rec: Recording, params: Params) -> float:
    """Spike-contrast of all N spike trains over [T0, T) (MODEL.md §6.1).

    Returns
    -------
    float
        Synchrony in [0, 1] (dimensionless); NaN if no train has two spikes.
    """
    sim = params.simulation
    return float(
        spike_contrast(
            rec.spike_step.astype(np.float64) * sim.dt_ms,
            rec.spike_neuron,
            params.network.N,
            sim.T0_ms,
            sim.T_ms,
            min_bin_ms=params.analysis.sc_min_bin_ms,
        )
    )


def _closures(rec: Recording) -> dict:
    """The closure variables of network.nc: the recording's, or empty (MODEL.md §4)."""
    if rec.closures is not None:
        return rec.closures
    return {
        "v_pop": np.empty((2, 0)),
        "var_v_pop": np.empty((2, 0)),
        "g_pop": np.empty((3, 2, 0)),
        "cov_gv_pop": np.empty((3, 2, 0)),
    }


def network_dataset(
    rec: Recording,
    params: Params,
    p: float,
    lam: float,
    seed: int,
    synchrony: float,
    wall_time_s: float = float("nan"),
) -> xr.Dataset:
    """The network.nc Dataset of one recording (MODEL.md §4).

    Parameters
    ----------
    rec : nmmval.sim.lif.Recording
        What :func:`nmmval.sim.lif.simulate` returned for the cell.
    params : nmmval.config.Params
        The config it ran with; spikes are kept if ``simulation.store_spikes``.
    p, lam : float
        Connection probability and excitatory fraction of the cell.
    seed : int
        Repetition index.
    synchrony : float
        Spike-contrast of the recording (:func:`synchrony`).
    wall_time_s : float, optional
        Seconds the cell took (global attribute).

    Returns
    -------
    xarray.Dataset
        V (float32, mV), φ_E, φ_I, φ_ext, the arrivals and spikes per
        population, the split-half means, the closure diagnostics (empty
        unless ``simulation.record_closures``), the spikes, synchrony, the
        rates (Hz) and V̄ (mV), with the cell and the graph's sizes as global
        attributes.
    """
    keep = params.simulation.store_spikes
    values = {
        "V": rec.V_mV,
        "phi_E": rec.phi_E,
        "phi_I": rec.phi_I,
        "phi_ext": rec.phi_ext,
        "arrivals_pop": rec.arrivals_pop,
        "spikes_pop": rec.spikes_pop,
        "V_half": rec.V_half_mV,
        **_closures(rec),
        "spike_neuron": rec.spike_neuron if keep else rec.spike_neuron[:0],
        "spike_step": rec.spike_step if keep else rec.spike_step[:0],
        "synchrony": synchrony,
        "rate_E_Hz": rec.rate_E_Hz,
        "rate_I_Hz": rec.rate_I_Hz,
        "Vbar_mV": rec.Vbar_mV,
    }
    sim = params.simulation
    time_ms = np.arange(sim.n_steps) * sim.dt_ms
    return datasets.build(
        "network",
        values,
        coords={
            "time_ms": time_ms,
            "closure_time_ms": time_ms if rec.closures is not None else time_ms[:0],
            "population": ["E", "I"],
            "synapse": ["E", "I", "ext"],
            "half": ["a", "b"],
        },
        attrs=datasets.global_attrs(
            params,
            p=float(p),
            lam=float(lam),
            seed=int(seed),
            n_E=rec.n_E,
            n_I=rec.n_I,
            n_edges=rec.n_edges,
            n_ext_edges=rec.n_ext_edges,
            n_spikes=int(rec.spike_neuron.size),
            spikes_stored=int(keep),
            build_s=rec.build_s,
            loop_s=rec.loop_s,
            wall_time_s=wall_time_s,
        ),
    )


def simulate_dataset(params: Params, p: float, lam: float, seed: int, **options) -> xr.Dataset:
    """Simulate one cell and return its network.nc Dataset (MODEL.md §2-4).

    Parameters
    ----------
    params : nmmval.config.Params
    p, lam : float
        Connection probability and excitatory fraction, in [0, 1].
    seed : int
        Repetition index, >= 0.
    **options
        Passed to :func:`nmmval.sim.lif.simulate` (``threads``, ``progress``,
        ``on_block``, ...); they never change the result.

    Returns
    -------
    xarray.Dataset
        :func:`network_dataset` of the recording.
    """
    t0 = time.perf_counter()
    rec = simulate(params, p, lam, seed, **options)
    sync = synchrony(rec, params)
    return network_dataset(rec, params, p, lam, seed, sync, time.perf_counter() - t0)
