"""MFM, the modified Freeman model (Eq. 24, MODEL.md §5.1)."""

from __future__ import annotations

import numpy as np

from nmmval.config import Params
from nmmval.models.base import Drive, MassModel, Output
from nmmval.models.freeman import integrate, stages, synaptic_input


def run(drive: Drive, params: Params) -> Output:
    """The Freeman operator driven by ``J[n] = ṽ - Σ_σ (ĝ_σ/g_L)(V[n] - ṽ_σ) Φ_σ[n]`` (Eq. 24).

    As CFM (Eq. 20) with V̄ replaced by the model's own V: a parametric
    forcing, integrated in one loop with the same two-stage Euler scheme
    (:func:`nmmval.models.freeman.integrate`), from V = U = V̄. With constant
    Φ the fixed point is ``V* = (ṽ + Σ a_σ ṽ_σ Φ_σ)/(1 + Σ a_σ Φ_σ)``,
    ``a_σ = ĝ_σ/g_L``; pulsed input can make V grow without bound (MODEL.md
    §5.1; :func:`nmmval.masses.divergence_step` flags it).

    Parameters
    ----------
    drive : Drive
        The recording: φ_σ per step, dt (ms) and V̄ (mV).
    params : nmmval.config.Params
        As for :func:`nmmval.models.cfm.run`.

    Returns
    -------
    Output
        V (mV) at every step.
    """
    syn = synaptic_input(drive, params)
    J0_mV = np.full(syn.rate_per_ms.shape[1], float(params.neuron.v_rest_mV))
    return Output(integrate(J0_mV, stages(drive, params), syn))


MODEL = MassModel(
    name="MFM",
    run=run,
    long_name="MFM potential (Eq. 24)",
    comment="modified Freeman model: as CFM with Vbar in J replaced by the model's own V(t) "
    "(MODEL.md §5.1)",
    colour="tab:blue",
)
