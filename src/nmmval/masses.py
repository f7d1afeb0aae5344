"""Freeman neural mass models driven by the network's recorded spike input (Eqs. 20, 24).

Both models share the second-order Freeman operator (MODEL.md §5)

    [τ_m d/dt + 1][τ_s d/dt + 1] V = J(t),

integrated by forward Euler on the network's time grid as two first-order
stages updated simultaneously from the values of step n,

    U[n+1] = U[n] + dt/τ_m · (J[n] - U[n]),
    V[n+1] = V[n] + dt/τ_s · (U[n] - V[n]),

with V[0] = U[0] = v0. They differ only in the input J:

- CFM (Eq. 20): J = ṽ - Σ_σ (ĝ_σ/g_L)(V̄ - ṽ_σ) Φ_σ(t), with the constant mean
  potential V̄ of the network;
- MFM (Eq. 24): the same with V̄ replaced by the model's own V(t).

σ runs over {E, I, ext}; Φ_σ = φ_σ/dt is the per-neuron rate of type-σ spike
arrivals (1/ms), ĝ_σ is in nS·ms and g_L in nS, so (ĝ_σ/g_L)Φ_σ is
dimensionless and J is in mV.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numba import njit

from nmmval.config import Params

#: Synapse types in the order used by the kernels.
SYNAPSE_TYPES = ("E", "I", "ext")


@njit(cache=True)
def _freeman_kernel(J, dt_ms, tau_m_ms, tau_s_ms, v0_mV):
    n = J.shape[0]
    V = np.empty(n)
    if n == 0:
        return V
    c_m = dt_ms / tau_m_ms
    c_s = dt_ms / tau_s_ms
    u = v0_mV
    v = v0_mV
    V[0] = v
    for i in range(n - 1):
        u_next = u + c_m * (J[i] - u)
        v = v + c_s * (u - v)
        u = u_next
        V[i + 1] = v
    return V


@njit(cache=True)
def _mfm_kernel(rate_per_ms, gain_ms, v_syn_mV, v_rest_mV, dt_ms, tau_m_ms, tau_s_ms, v0_mV):
    n = rate_per_ms.shape[1]
    n_syn = rate_per_ms.shape[0]
    V = np.empty(n)
    if n == 0:
        return V
    c_m = dt_ms / tau_m_ms
    c_s = dt_ms / tau_s_ms
    u = v0_mV
    v = v0_mV
    V[0] = v
    for i in range(n - 1):
        j = v_rest_mV
        for s in range(n_syn):
            j -= gain_ms[s] * (v - v_syn_mV[s]) * rate_per_ms[s, i]
        u_next = u + c_m * (j - u)
        v = v + c_s * (u - v)
        u = u_next
        V[i + 1] = v
    return V


def freeman(
    J: np.ndarray, dt_ms: float, tau_m_ms: float, tau_s_ms: float, v0_mV: float
) -> np.ndarray:
    """Integrate the Freeman operator ``[τ_m d/dt + 1][τ_s d/dt + 1] V = J`` (Eqs. 20, 24).

    Two-stage forward Euler, ``U' = (J - U)/τ_m``, ``V' = (U - V)/τ_s``, both
    stages updated from the values of step n; ``V[0] = U[0] = v0``. For a step
    input J0 and v0 = 0 the result is exactly
    ``V[n] = J0·[1 - (τ_m a_m^n - τ_s a_s^n)/(τ_m - τ_s)]`` with ``a = 1 - dt/τ``.

    Parameters
    ----------
    J : array_like, shape (n,)
        Input per step (mV); ``J[n]`` drives the update from step n to n + 1,
        so the last value is not used.
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
    J = np.ascontiguousarray(J, dtype=np.float64)
    return _freeman_kernel(J, float(dt_ms), float(tau_m_ms), float(tau_s_ms), float(v0_mV))


def _drive(phi: Mapping[str, np.ndarray], params: Params):
    """Rates Φ_σ (1/ms, shape (3, n)), ĝ_σ/g_L (ms) and reversals ṽ_σ (mV) of E, I, ext."""
    net = params.network
    dt_ms = params.simulation.dt_ms
    missing = [s for s in SYNAPSE_TYPES if s not in phi]
    if missing:
        raise ValueError(f"phi: missing synapse type(s) {missing}, expected {SYNAPSE_TYPES}")
    arrays = [np.asarray(phi[s], dtype=np.float64) for s in SYNAPSE_TYPES]
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
        raise ValueError(
            "phi: E, I and ext must be 1-D arrays of the same length, got shapes "
            f"{[a.shape for a in arrays]}"
        )
    rate_per_ms = np.vstack(arrays) / dt_ms
    g_hat_nSms = np.array([net.g_hat_E_nSms, net.g_hat_I_nSms, net.g_hat_ext_nSms])
    gain_ms = g_hat_nSms / params.neuron.g_L_nS
    v_syn_mV = np.array([net.v_E_mV, net.v_I_mV, net.v_ext_mV])
    return rate_per_ms, gain_ms, v_syn_mV


def cfm(phi: Mapping[str, np.ndarray], params: Params, Vbar_mV: float) -> np.ndarray:
    """Conventional Freeman model (Eq. 20) driven by the recorded spike arrivals.

    ``J(t) = ṽ - Σ_σ (ĝ_σ/g_L)(V̄ - ṽ_σ) Φ_σ(t)``, σ ∈ {E, I, ext}, with
    ``Φ_σ = φ_σ/dt``; integrated by :func:`freeman` from ``V = U = V̄``.

    Parameters
    ----------
    phi : mapping of str to array_like
        ``{"E": φ_E, "I": φ_I, "ext": φ_ext}``: spike arrivals per neuron in
        each step (dimensionless counts per neuron), one value per step.
    params : nmmval.config.Params
        Uses ``network.g_hat_*_nSms`` (nS·ms), ``network.v_*_mV`` (mV),
        ``neuron.g_L_nS`` (nS), ``neuron.v_rest_mV`` (ṽ, mV),
        ``neuron.tau_m_ms``, ``masses.tau_s_ms`` and ``simulation.dt_ms`` (ms).
    Vbar_mV : float
        Constant mean membrane potential V̄ of the network (mV); also the
        initial state.

    Returns
    -------
    numpy.ndarray of float64
        Model potential V (mV) at every step.
    """
    rate_per_ms, gain_ms, v_syn_mV = _drive(phi, params)
    J_mV = params.neuron.v_rest_mV - (gain_ms * (Vbar_mV - v_syn_mV)) @ rate_per_ms
    return freeman(
        J_mV, params.simulation.dt_ms, params.neuron.tau_m_ms, params.masses.tau_s_ms, Vbar_mV
    )


def mfm(phi: Mapping[str, np.ndarray], params: Params, v0_mV: float) -> np.ndarray:
    """Modified Freeman model (Eq. 24) driven by the recorded spike arrivals.

    As :func:`cfm` but with the model's own potential in the input,
    ``J[n] = ṽ - Σ_σ (ĝ_σ/g_L)(V[n] - ṽ_σ) Φ_σ[n]`` (a parametric forcing),
    integrated in one loop with the same two-stage Euler scheme. With constant
    Φ the fixed point is ``V* = (ṽ + Σ a_σ ṽ_σ Φ_σ)/(1 + Σ a_σ Φ_σ)``,
    ``a_σ = ĝ_σ/g_L``.

    Parameters
    ----------
    phi : mapping of str to array_like
        ``{"E": φ_E, "I": φ_I, "ext": φ_ext}``: spike arrivals per neuron in
        each step, one value per step.
    params : nmmval.config.Params
        As for :func:`cfm`.
    v0_mV : float
        Initial value of V and U (mV), usually the network's V̄.

    Returns
    -------
    numpy.ndarray of float64
        Model potential V (mV) at every step.
    """
    rate_per_ms, gain_ms, v_syn_mV = _drive(phi, params)
    return _mfm_kernel(
        rate_per_ms,
        gain_ms,
        v_syn_mV,
        float(params.neuron.v_rest_mV),
        float(params.simulation.dt_ms),
        float(params.neuron.tau_m_ms),
        float(params.masses.tau_s_ms),
        float(v0_mV),
    )


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
