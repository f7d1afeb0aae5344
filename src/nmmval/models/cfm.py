"""CFM, the conventional Freeman model (Eq. 20, MODEL.md §5.1)."""

from __future__ import annotations

from nmmval.config import Params
from nmmval.models.base import Drive, MassModel, Output
from nmmval.models.freeman import integrate, stages, synaptic_input


def run(drive: Drive, params: Params) -> Output:
    """The Freeman operator driven by ``J(t) = ṽ - Σ_σ (ĝ_σ/g_L)(V̄ - ṽ_σ) Φ_σ(t)`` (Eq. 20).

    σ ∈ {E, I, ext}, Φ_σ = φ_σ/dt (1/ms); the input is linear in Φ and fixed
    in advance, with the network's constant mean potential V̄ (mV), which is
    also the initial state (:func:`nmmval.models.freeman.integrate`).

    Parameters
    ----------
    drive : Drive
        The recording: φ_σ per step, dt (ms) and V̄ (mV).
    params : nmmval.config.Params
        Uses ``network.g_hat_*_nSms`` (nS·ms), ``network.v_*_mV`` (mV),
        ``neuron.g_L_nS`` (nS), ``neuron.v_rest_mV`` (ṽ, mV),
        ``neuron.tau_m_ms`` and ``masses.tau_s_ms`` (ms).

    Returns
    -------
    Output
        V (mV) at every step.
    """
    syn = synaptic_input(drive, params)
    J_mV = (
        params.neuron.v_rest_mV - (syn.gain_ms * (drive.Vbar_mV - syn.v_syn_mV)) @ syn.rate_per_ms
    )
    return Output(integrate(J_mV, stages(drive, params)))


MODEL = MassModel(
    name="CFM",
    run=run,
    long_name="CFM potential (Eq. 20)",
    comment="conventional Freeman model driven by the recorded input, with the network's "
    "constant mean potential Vbar in J (MODEL.md §5.1)",
    colour="tab:orange",
)
