"""The second-order Freeman operator shared by CFM and MFM (Eqs. 20, 24, MODEL.md §5.1).

    [τ_m d/dt + 1][τ_s d/dt + 1] V = J(t)

is integrated by forward Euler on the network's time grid as two first-order
stages updated simultaneously from the values of step n,

    U[n+1] = U[n] + dt/τ_m · (J[n] - U[n]),
    V[n+1] = V[n] + dt/τ_s · (U[n] - V[n]),

with V[0] = U[0] = v0. The input has a part fixed in advance and a part that
depends on the model's own V (MFM's parametric forcing):

    J[n] = J0[n] - Σ_σ (ĝ_σ/g_L)(V[n] - ṽ_σ) Φ_σ[n],

σ over the synapse types of :class:`Feedback` (none for CFM). Φ_σ = φ_σ/dt is
the per-neuron rate of type-σ arrivals (1/ms), ĝ_σ in nS·ms and g_L in nS, so
(ĝ_σ/g_L)Φ_σ is dimensionless and J is in mV.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from nmmval.config import Params
from nmmval.models.base import SYNAPSE_TYPES, Drive


class Stages(NamedTuple):
    """Constants of the two-stage Euler scheme: step, time constants (ms), V[0] = U[0] (mV)."""

    dt_ms: float
    tau_m_ms: float
    tau_s_ms: float
    v0_mV: float


class Feedback(NamedTuple):
    """The part of J that depends on the model's own V, one row per synapse type σ.

    Attributes
    ----------
    gain_ms : numpy.ndarray, shape (S,)
        ĝ_σ/g_L (ms).
    v_syn_mV : numpy.ndarray, shape (S,)
        Reversal potentials ṽ_σ (mV).
    rate_per_ms : numpy.ndarray, shape (S, n)
        Φ_σ at every step (1/ms).
    """

    gain_ms: np.ndarray
    v_syn_mV: np.ndarray
    rate_per_ms: np.ndarray


#: no feedback: J is fixed in advance (CFM, and :func:`freeman`)
NO_FEEDBACK = Feedback(np.zeros(0), np.zeros(0), np.zeros((0, 0)))


@njit(cache=True)
def _two_stage(J0, feedback, stages):
    n = J0.shape[0]
    V = np.empty(n)
    if n == 0:
        return V
    c_m = stages.dt_ms / stages.tau_m_ms
    c_s = stages.dt_ms / stages.tau_s_ms
    n_syn = feedback.gain_ms.shape[0]
    u = stages.v0_mV
    v = stages.v0_mV
    V[0] = v
    for i in range(n - 1):
        j = J0[i]
        for s in range(n_syn):
            j -= feedback.gain_ms[s] * (v - feedback.v_syn_mV[s]) * feedback.rate_per_ms[s, i]
        u_next = u + c_m * (j - u)
        v = v + c_s * (u - v)
        u = u_next
        V[i + 1] = v
    return V


def integrate(J0_mV: np.ndarray, stages: Stages, feedback: Feedback = NO_FEEDBACK) -> np.ndarray:
    """Integrate the Freeman operator with input ``J0 - Σ_σ gain_σ (V - ṽ_σ) Φ_σ`` (module notes).

    Parameters
    ----------
    J0_mV : array_like, shape (n,)
        The input's part fixed in advance (mV); step n's value drives the
        update from n to n + 1, so the last value is not used.
    stages : Stages
        dt, τ_m, τ_s (ms) and the initial value of V and U (mV).
    feedback : Feedback, optional
        The part that depends on V (default: none).

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
        V at every step (mV), ``V[0] = v0``.
    """
    J0_mV = np.ascontiguousarray(J0_mV, dtype=np.float64)
    stages = Stages(*(float(x) for x in stages))
    return _two_stage(J0_mV, feedback, stages)


def freeman(
    J: np.ndarray, dt_ms: float, tau_m_ms: float, tau_s_ms: float, v0_mV: float
) -> np.ndarray:
    """Integrate ``[τ_m d/dt + 1][τ_s d/dt + 1] V = J`` for a given input (Eqs. 20, 24).

    For a step input J0 and v0 = 0 the result is exactly
    ``V[n] = J0·[1 - (τ_m a_m^n - τ_s a_s^n)/(τ_m - τ_s)]`` with ``a = 1 - dt/τ``
    (MODEL.md §5.1).

    Parameters
    ----------
    J : array_like, shape (n,)
        Input per step (mV); the last value is not used.
    dt_ms : float
        Time step (ms).
    tau_m_ms, tau_s_ms : float
        Membrane and synaptic time constants of the mass (ms).
    v0_mV : float
        Initial value of V and U (mV).

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
        V at every step (mV), ``V[0] = v0``.
    """
    return integrate(J, Stages(dt_ms, tau_m_ms, tau_s_ms, v0_mV))


def stages(drive: Drive, params: Params) -> Stages:
    """The scheme's constants for a model started at the network's V̄."""
    return Stages(drive.dt_ms, params.neuron.tau_m_ms, params.masses.tau_s_ms, drive.Vbar_mV)


def synaptic_input(drive: Drive, params: Params) -> Feedback:
    """Rates Φ_σ (1/ms, shape (3, n)), ĝ_σ/g_L (ms) and ṽ_σ (mV) of E, I, ext.

    Raises
    ------
    ValueError
        If a synapse type is missing or the φ_σ are not 1-D of one length.
    """
    net = params.network
    missing = [s for s in SYNAPSE_TYPES if s not in drive.phi]
    if missing:
        raise ValueError(f"phi: missing synapse type(s) {missing}, expected {SYNAPSE_TYPES}")
    arrays = [np.asarray(drive.phi[s], dtype=np.float64) for s in SYNAPSE_TYPES]
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
        raise ValueError(
            "phi: E, I and ext must be 1-D arrays of the same length, got shapes "
            f"{[a.shape for a in arrays]}"
        )
    rate_per_ms = np.vstack(arrays) / drive.dt_ms
    g_hat_nSms = np.array([net.g_hat_E_nSms, net.g_hat_I_nSms, net.g_hat_ext_nSms])
    gain_ms = g_hat_nSms / params.neuron.g_L_nS
    v_syn_mV = np.array([net.v_E_mV, net.v_I_mV, net.v_ext_mV])
    return Feedback(gain_ms, v_syn_mV, rate_per_ms)
