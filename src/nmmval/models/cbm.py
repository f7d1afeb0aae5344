"""Conductance-based mean-field models CBM and CBM-R (MODEL.md §5.2).

Both are driven open-loop, per population P ∈ {E, I}, by what the network
records per step (MODEL.md §4): the type-σ arrivals φ_σ^P[n] on the cells
of P in step n divided by N_P (spikes per neuron per step; rows σ = E, I,
ext of a ``(3, n_steps)`` array) and, for CBM-R, the spike counts n_P[n].

Mean conductances exactly as the network's (MODEL.md §2, order items 2, 3
and 5): the arrivals of step n are felt from step n + 1, so the conductance
that drives step n is

    G_σ^P[0] = 0,   G_σ^P[n] = G_σ^P[n-1]·exp(-dt/τ_σ) + (ĝ_σ/τ_σ)·φ_σ^P[n-1]   (nS).

Membrane: ``τ_m dV/dt = -(V - ṽ) - Σ_σ (G_σ/g_L)(V - ṽ_σ) = -k (V - V*)`` with
the total conductance in leak units ``k = 1 + Σ_σ G_σ/g_L`` and the
free-membrane fixed point ``V* = (ṽ + Σ_σ (G_σ/g_L) ṽ_σ)/k`` (mV), integrated
exactly for G constant over the step,

    V[n+1] = V*[n] + (V[n] - V*[n])·exp(-dt·k[n]/τ_m).

V[n] is the value at the start of step n, as the network records V[n].
Each step maps V to a convex combination of V and V*, and V* is a convex
combination of ṽ and the ṽ_σ, so V never leaves the range of the reversal
potentials.

- **CBM** integrates the mean potential V_P itself: no reset, and ⟨g v⟩
  closed as G·V.
- **CBM-R** integrates U_P, the mean over the free (non-refractory) cells,
  and keeps the reset by exact bookkeeping of that pool from the recorded
  counts, in the network's order within a step (integrate, threshold,
  reset, refractory countdown): the n_P[n] cells that fire in step n leave
  the pool at v_th after it has been integrated; the cells that fired in
  step n - n_ref rejoin it at v_reset at the end of step n (a cell that
  fires in step n is held in steps n + 1 .. n + n_ref and free again in
  step n + n_ref + 1), n_ref = round(τ_ref/dt) as in the network. Then
  ``V_P = (F_P·U_P + R_P·v_reset)/N_P`` with F_P, R_P = N_P - F_P the free
  and refractory counts at the start of the step, which equal a direct
  count on the network.

Both populations combine as ``V = (N_E V_E + N_I V_I)/N``; an empty
population (N_P = 0, e.g. λ = 1) has V_P = NaN and no weight.

Registered as the mass models "CBM" (:data:`CBM`) and "CBM-R" (:data:`CBM_R`):
driven by the recorded φ_σ^P and n_P of :class:`nmmval.models.base.Drive`
from the network's initial state (every cell free, mean (v_reset + v_th)/2),
they return V and, as ``V_pop_cbm`` / ``V_pop_cbm_r`` in masses.nc, V_E and V_I.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from nmmval.config import Params
from nmmval.datasets import Var
from nmmval.models.base import Drive, MassModel, Output

__all__ = [
    "CBM",
    "CBM_R",
    "CBMResult",
    "CBMRResult",
    "cbm",
    "cbm_r",
    "check_inputs",
    "combine",
    "conductances",
    "drive",
    "population_potentials",
    "run_cbm",
    "run_cbm_r",
]


@dataclass(frozen=True)
class CBMResult:
    """Potentials of a mean-field model, one value per step (start of the step).

    Attributes
    ----------
    V_mV : ndarray, float64, (n_steps,)
        ``(N_E V_E + N_I V_I)/N`` (mV), the model's counterpart of the
        network's V (Eq. 12).
    V_E_mV, V_I_mV : ndarray, float64, (n_steps,)
        Mean potential of each population (mV); NaN for an empty population.
    """

    V_mV: np.ndarray
    V_E_mV: np.ndarray
    V_I_mV: np.ndarray


@dataclass(frozen=True)
class CBMRResult(CBMResult):
    """CBM-R potentials and its free-pool bookkeeping.

    Attributes
    ----------
    free_E, free_I : ndarray, int64, (n_steps,)
        Free (non-refractory) cells of each population at the start of each
        step; N_P minus these are refractory. Zeros for an empty population.
    """

    free_E: np.ndarray
    free_I: np.ndarray


@njit(cache=True)
def _conductance_kernel(phi, decay, rise_nS):
    n_steps = phi.shape[1]
    G = np.empty((3, n_steps))
    g = np.zeros(3)
    for i in range(n_steps):
        for s in range(3):
            G[s, i] = g[s]
            g[s] = g[s] * decay[s] + rise_nS[s] * phi[s, i]
    return G


def _check_phi(phi, name: str) -> np.ndarray:
    phi = np.ascontiguousarray(phi, dtype=np.float64)
    if phi.ndim != 2 or phi.shape[0] != 3:
        raise ValueError(f"{name}: shape {phi.shape}, expected (3, n_steps) with rows E, I, ext")
    if not np.all(np.isfinite(phi)) or np.any(phi < 0):
        raise ValueError(f"{name}: arrivals must be finite and >= 0")
    return phi


def conductances(phi: np.ndarray, params: Params) -> np.ndarray:
    """Mean conductances G_σ^P that drive each step (MODEL.md §2, §5.2).

    ``G[:, 0] = 0`` and ``G[:, n] = G[:, n-1]·exp(-dt/τ_σ) + (ĝ_σ/τ_σ)·φ[:, n-1]``:
    the network's cells integrate step n with the g at its start, which
    holds the arrivals of step n - 1 and not those of step n.

    Parameters
    ----------
    phi : array_like, shape (3, n_steps)
        φ_σ^P: type-σ arrivals on the cells of P in each step divided by N_P
        (spikes per neuron per step), rows σ = E, I, ext.
    params : nmmval.config.Params
        Uses ``network.tau_*_ms`` (ms), ``network.g_hat_*_nSms`` (nS·ms) and
        ``simulation.dt_ms`` (ms).

    Returns
    -------
    numpy.ndarray of float64, shape (3, n_steps)
        G_σ^P (nS) during each step, rows E, I, ext.
    """
    phi = _check_phi(phi, "phi")
    net, dt = params.network, params.simulation.dt_ms
    tau = np.array([net.tau_E_ms, net.tau_I_ms, net.tau_ext_ms])
    g_hat = np.array([net.g_hat_E_nSms, net.g_hat_I_nSms, net.g_hat_ext_nSms])
    return _conductance_kernel(phi, np.exp(-dt / tau), g_hat / tau)


def drive(phi: np.ndarray, params: Params) -> tuple[np.ndarray, np.ndarray]:
    """Total conductance and fixed point of the membrane in each step (MODEL.md §5.2).

    The drive ``-(v - ṽ) - Σ_σ (G_σ/g_L)(v - ṽ_σ)`` is linear in v and equals
    ``-k (v - V*)``.

    Parameters
    ----------
    phi : array_like, shape (3, n_steps)
        φ_σ^P, as for :func:`conductances`.
    params : nmmval.config.Params
        As for :func:`conductances`, and ``neuron.g_L_nS`` (nS),
        ``neuron.v_rest_mV`` (ṽ) and ``network.v_*_mV`` (ṽ_σ, mV).

    Returns
    -------
    k : numpy.ndarray of float64, shape (n_steps,)
        ``1 + Σ_σ G_σ/g_L`` (dimensionless); the effective membrane time
        constant is τ_m/k.
    v_inf_mV : numpy.ndarray of float64, shape (n_steps,)
        ``V* = (ṽ + Σ_σ (G_σ/g_L) ṽ_σ)/k`` (mV).
    """
    net, neu = params.network, params.neuron
    x = conductances(phi, params) / neu.g_L_nS
    v_syn = np.array([net.v_E_mV, net.v_I_mV, net.v_ext_mV])
    k = 1.0 + x.sum(axis=0)
    return k, (neu.v_rest_mV + v_syn @ x) / k


def check_inputs(phi_E, phi_I, N_E: int, N_I: int) -> tuple[np.ndarray, np.ndarray]:
    """Check the two populations' arrivals and sizes; return the arrays as float64.

    Raises
    ------
    ValueError
        On a shape other than (3, n_steps), different lengths, negative or
        non-finite arrivals, or negative sizes, or N_E + N_I = 0.
    """
    phi_E, phi_I = _check_phi(phi_E, "phi_E"), _check_phi(phi_I, "phi_I")
    if phi_E.shape != phi_I.shape:
        raise ValueError(f"phi_E, phi_I: shapes {phi_E.shape} and {phi_I.shape} differ")
    if N_E < 0 or N_I < 0 or N_E + N_I == 0:
        raise ValueError(f"N_E, N_I: {N_E}, {N_I} must be >= 0 and not both 0")
    return phi_E, phi_I


def combine(V_E: np.ndarray, V_I: np.ndarray, N_E: int, N_I: int) -> np.ndarray:
    """``V = (N_E V_E + N_I V_I)/N`` (mV); an empty population has no weight."""
    if N_I == 0:
        return V_E.copy()
    if N_E == 0:
        return V_I.copy()
    return (N_E * V_E + N_I * V_I) / (N_E + N_I)


def _initial_mV(params: Params, v0_mV: float | None) -> float:
    neu = params.neuron
    return 0.5 * (neu.v_reset_mV + neu.v_th_mV) if v0_mV is None else float(v0_mV)


@njit(cache=True)
def _cbm_kernel(k, v_inf, dt_over_tau_m, v0):
    V = np.empty(k.size)
    v = v0
    for i in range(k.size):
        V[i] = v
        v = v_inf[i] + (v - v_inf[i]) * np.exp(-dt_over_tau_m * k[i])
    return V


def cbm(
    phi_E: np.ndarray,
    phi_I: np.ndarray,
    N_E: int,
    N_I: int,
    params: Params,
    v0_mV: float | None = None,
) -> CBMResult:
    """CBM: the conductance-based mean field without reset (MODEL.md §5.2).

    ``τ_m dV_P/dt = -(V_P - ṽ) - Σ_σ (G_σ^P/g_L)(V_P - ṽ_σ)`` with G_σ^P from
    :func:`conductances`, integrated exactly for G constant over each step.

    Parameters
    ----------
    phi_E, phi_I : array_like, shape (3, n_steps)
        φ_σ^E, φ_σ^I: type-σ arrivals on the cells of the population in each
        step divided by its size (spikes per neuron per step), rows E, I, ext.
    N_E, N_I : int
        Population sizes (weights of V).
    params : nmmval.config.Params
        Uses ``network.tau_*_ms``, ``network.g_hat_*_nSms``, ``network.v_*_mV``,
        ``neuron.tau_m_ms``, ``neuron.g_L_nS``, ``neuron.v_rest_mV`` and
        ``simulation.dt_ms``.
    v0_mV : float, optional
        V_P[0] of both populations (mV); default (v_reset + v_th)/2, the mean
        of the network's initial state.

    Returns
    -------
    CBMResult
    """
    phi_E, phi_I = check_inputs(phi_E, phi_I, N_E, N_I)
    c = params.simulation.dt_ms / params.neuron.tau_m_ms
    v0 = _initial_mV(params, v0_mV)
    V = [
        _cbm_kernel(*drive(phi, params), c, v0) if N_P > 0 else np.full(phi.shape[1], np.nan)
        for phi, N_P in ((phi_E, N_E), (phi_I, N_I))
    ]
    return CBMResult(V_mV=combine(V[0], V[1], N_E, N_I), V_E_mV=V[0], V_I_mV=V[1])


@njit(cache=True)
def _cbm_r_kernel(k, v_inf, count, n_cells, n_ref, dt_over_tau_m, u0, v_th, v_reset):
    """CBM-R of one population; returns (V, free, first inconsistent step or -1)."""
    n_steps = k.size
    V = np.empty(n_steps)
    free = np.empty(n_steps, dtype=np.int64)
    ring = np.zeros(max(n_ref, 1), dtype=np.int64)  # spikes of the last n_ref steps
    F = n_cells
    u = u0
    for i in range(n_steps):
        V[i] = (F * u + (n_cells - F) * v_reset) / n_cells
        free[i] = F
        u = v_inf[i] + (u - v_inf[i]) * np.exp(-dt_over_tau_m * k[i])
        c = count[i]
        if c > F:
            return V, free, i
        total = (F * u - c * v_th) if F > c else 0.0
        F -= c
        if n_ref == 0:
            back = c
        else:
            back = ring[i % n_ref]
            ring[i % n_ref] = c
        total += back * v_reset
        F += back
        u = total / F if F > 0 else v_reset
    return V, free, -1


def _check_counts(count, name: str, n_steps: int) -> np.ndarray:
    count = np.asarray(count)
    if count.shape != (n_steps,) or not np.issubdtype(count.dtype, np.integer):
        raise ValueError(f"{name}: expected integers of shape ({n_steps},)")
    if np.any(count < 0):
        raise ValueError(f"{name}: spike counts must be >= 0")
    return count.astype(np.int64)


def cbm_r(
    phi_E: np.ndarray,
    phi_I: np.ndarray,
    count_E: np.ndarray,
    count_I: np.ndarray,
    N_E: int,
    N_I: int,
    params: Params,
    v0_mV: float | None = None,
) -> CBMRResult:
    """CBM-R: the CBM of the free pool with reset and refractoriness (MODEL.md §5.2).

    Parameters
    ----------
    phi_E, phi_I : array_like, shape (3, n_steps)
        φ_σ^P as for :func:`cbm`.
    count_E, count_I : array_like of int, shape (n_steps,)
        n_P: spikes of the population in each step (the network's recorded
        counts).
    N_E, N_I : int
        Population sizes.
    params : nmmval.config.Params
        As for :func:`cbm`, and ``neuron.v_th_mV``, ``neuron.v_reset_mV`` (mV)
        and ``neuron.tau_ref_ms`` (ms; held for round(τ_ref/dt) steps).
    v0_mV : float, optional
        U_P[0], the mean of the initially all-free pool (mV); default
        (v_reset + v_th)/2, the network's initial state.

    Returns
    -------
    CBMRResult

    Raises
    ------
    ValueError
        If the counts are not non-negative integers of length n_steps, or a
        count exceeds the free pool (counts that no network of this size and
        refractory period can produce).
    """
    phi_E, phi_I = check_inputs(phi_E, phi_I, N_E, N_I)
    counts = [
        _check_counts(c, name, phi_E.shape[1])
        for c, name in ((count_E, "count_E"), (count_I, "count_I"))
    ]
    neu, dt = params.neuron, params.simulation.dt_ms
    n_ref = int(round(neu.tau_ref_ms / dt))
    c = dt / neu.tau_m_ms
    u0 = _initial_mV(params, v0_mV)
    V, free = [], []
    for name, phi, count, N_P in zip(
        ("count_E", "count_I"), (phi_E, phi_I), counts, (N_E, N_I), strict=True
    ):
        if N_P == 0:
            V.append(np.full(phi.shape[1], np.nan))
            free.append(np.zeros(phi.shape[1], dtype=np.int64))
            continue
        k, v_inf = drive(phi, params)
        args = (N_P, n_ref, c, u0, float(neu.v_th_mV), float(neu.v_reset_mV))
        V_P, F_P, bad = _cbm_r_kernel(k, v_inf, count, *args)
        if bad >= 0:
            raise ValueError(
                f"{name}: {count[bad]} spikes in step {bad} but only {F_P[bad]} free cells"
            )
        V.append(V_P)
        free.append(F_P)
    return CBMRResult(
        V_mV=combine(V[0], V[1], N_E, N_I),
        V_E_mV=V[0],
        V_I_mV=V[1],
        free_E=free[0],
        free_I=free[1],
    )


def population_potentials(model: str) -> Var:
    """masses.nc layout of a model's V_E and V_I (mV; NaN for an empty population)."""
    return Var(
        ("population", "time_ms"),
        "float32",
        "mV",
        f"{model} potential per population",
        comment=f"the {model}'s mean potential V_P of the cells of each population at the start "
        "of the step (MODEL.md §5.2); NaN for a population without cells",
    )


def run_cbm(drive: Drive, params: Params) -> Output:
    """CBM driven by the recorded arrivals φ_σ^P (MODEL.md §5.2; :func:`cbm`).

    Starts from the network's initial mean (v_reset + v_th)/2 (mV).

    Returns
    -------
    Output
        V (mV) and ``V_pop_cbm``: V_E, V_I (mV), shape (2, n_steps).
    """
    phi_E, phi_I = drive.populations("CBM")
    res = cbm(phi_E, phi_I, drive.n_E, drive.n_I, params)
    return Output(res.V_mV, {"V_pop_cbm": np.stack([res.V_E_mV, res.V_I_mV])})


def run_cbm_r(drive: Drive, params: Params) -> Output:
    """CBM-R driven by the recorded arrivals φ_σ^P and spike counts n_P (MODEL.md §5.2).

    :func:`cbm_r` from the network's initial state: every cell free, pool
    mean (v_reset + v_th)/2 (mV).

    Returns
    -------
    Output
        V (mV) and ``V_pop_cbm_r``: V_E, V_I (mV), shape (2, n_steps).
    """
    phi_E, phi_I = drive.populations("CBM-R")
    count_E, count_I = drive.spikes_pop
    res = cbm_r(phi_E, phi_I, count_E, count_I, drive.n_E, drive.n_I, params)
    return Output(res.V_mV, {"V_pop_cbm_r": np.stack([res.V_E_mV, res.V_I_mV])})


CBM = MassModel(
    name="CBM",
    run=run_cbm,
    long_name="CBM potential (conductance-based mean)",
    comment="conductance-based mean field per population: the network's mean conductances "
    "(each synapse's own tau), tau_m dV_P/dt = -(V_P - v_rest) - sum_sigma (G_sigma^P/g_L)"
    "(V_P - v_sigma), no reset (MODEL.md §5.2)",
    colour="tab:green",
    extra={"V_pop_cbm": population_potentials("CBM")},
    below=("CFM", "MFM"),
    adds="the network's conductances (no Freeman reduction)",
)

CBM_R = MassModel(
    name="CBM-R",
    run=run_cbm_r,
    long_name="CBM-R potential (CBM + reset)",
    comment="CBM of the free (non-refractory) cells with reset and refractoriness from the "
    "recorded spike counts n_P: V_P = (F_P U_P + R_P v_reset)/N_P (MODEL.md §5.2)",
    colour="tab:purple",
    extra={"V_pop_cbm_r": population_potentials("CBM-R")},
    below=("CBM",),
    adds="reset and refractoriness",
)
