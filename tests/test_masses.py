"""Freeman integrator, the CFM / MFM neural mass models (Eqs. 20, 24) and their registry."""

from pathlib import Path

import numpy as np
import pytest

from nmmval import models
from nmmval.config import load
from nmmval.models import Drive, cfm, fitted, mfm
from nmmval.models.freeman import freeman

CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
TAU_M_MS = 20.0
TAU_S_MS = 5.0
DT_MS = 0.1


@pytest.fixture(scope="module")
def params():
    return load(CONFIG)


def _gains(params):
    """ĝ_σ/g_L (ms) and ṽ_σ (mV) in the order E, I, ext."""
    net = params.network
    g_hat_nSms = np.array([net.g_hat_E_nSms, net.g_hat_I_nSms, net.g_hat_ext_nSms])
    v_syn_mV = np.array([net.v_E_mV, net.v_I_mV, net.v_ext_mV])
    return g_hat_nSms / params.neuron.g_L_nS, v_syn_mV


def _constant_phi(params, rate_per_ms, n_steps):
    dt_ms = params.simulation.dt_ms
    return {
        s: np.full(n_steps, r * dt_ms) for s, r in zip(("E", "I", "ext"), rate_per_ms, strict=True)
    }


def _run(model, phi, params, v0_mV):
    """V of a registered model driven by phi, started at (and with V̄ =) v0."""
    return model.run(Drive(phi, params.simulation.dt_ms, v0_mV), params).V_mV


def test_registry_holds_cfm_then_mfm():
    assert models.names()[:2] == ("CFM", "MFM")
    assert [m.variable for m in models.registered()][:2] == ["V_cfm", "V_mfm"]
    with pytest.raises(ValueError, match="already registered"):
        models.register(cfm.MODEL)


def _random_drive(params, n, n_E=800, n_I=200):
    """Random arrivals (per population, and their N-weighted mean) and spike counts."""
    rng = np.random.default_rng(3)
    phi_pop = rng.poisson(1.0, (3, 2, n)) / 1000
    phi_pop[2, 1] = 0.0  # no external input to I cells
    phi = (n_E * phi_pop[:, 0] + n_I * phi_pop[:, 1]) / (n_E + n_I)
    spikes = rng.poisson(0.5, (2, n))
    return Drive(
        dict(zip(models.SYNAPSE_TYPES, phi, strict=True)),
        params.simulation.dt_ms,
        -57.0,
        phi_pop,
        spikes,
        n_E,
        n_I,
    )


@pytest.mark.parametrize("model", models.registered(), ids=models.names())
def test_every_model_takes_the_common_signature(params, model):
    """Every registered model: V in mV, float64, one value per step, finite; its
    declared extra traces, time last; the Freeman models start at V̄, the
    others at the network's initial mean (v_reset + v_th)/2 (MODEL.md §5)."""
    n = 500
    drive = _random_drive(params, n)
    if model.fitted:  # the derivation's parameters (tau_s, gains 1, no offset)
        drive = drive._replace(fit={m: fitted.derived(params) for m in models.fitted_names()})
    out = model.run(drive, params)
    assert out.V_mV.dtype == np.float64 and out.V_mV.shape == (n,)
    assert np.isfinite(out.V_mV).all()
    neu = params.neuron
    freeman = ("CFM", "MFM", *models.fitted_names())
    start = -57.0 if model.name in freeman else (neu.v_reset_mV + neu.v_th_mV) / 2
    assert out.V_mV[0] == pytest.approx(start, abs=1e-3)
    assert set(out.extra) == set(model.extra)
    for name, trace in out.extra.items():
        assert trace.shape[-1] == n and trace.ndim == len(model.extra[name].dims), name


LADDER = [m for m in models.registered()[2:] if not m.fitted]
FITTED = [m for m in models.registered() if m.fitted]


@pytest.mark.parametrize("model", LADDER, ids=[m.name for m in LADDER])
def test_the_ladder_needs_the_per_population_recordings(params, model):
    phi = _constant_phi(params, (0.01, 0.01, 0.01), 10)
    with pytest.raises(ValueError, match=f"{model.name}: the drive has no per-population"):
        model.run(Drive(phi, params.simulation.dt_ms, -57.0), params)


@pytest.mark.parametrize("model", FITTED, ids=[m.name for m in FITTED])
def test_a_fitted_model_needs_its_parameters(params, model):
    phi = _constant_phi(params, (0.01, 0.01, 0.01), 10)
    with pytest.raises(ValueError, match=f"{model.name}: the drive has no fitted parameters"):
        model.run(Drive(phi, params.simulation.dt_ms, -57.0), params)


def test_the_fitted_models_at_the_derivations_parameters_are_cfm_and_mfm_bit_for_bit(params):
    """CFM-fit and MFM-fit keep Eq. 20 and 24's form (MODEL.md §5.3): at τ_s =
    masses.tau_s_ms, gains 1 and no offset they are CFM and MFM, same bits."""
    drive = _random_drive(params, 2000)
    drive = drive._replace(fit={m: fitted.derived(params) for m in models.fitted_names()})
    by_name = {m.name: m for m in models.registered()}
    for plain, fit in (("CFM", "CFM-fit"), ("MFM", "MFM-fit")):
        V_fit, V = (by_name[m].run(drive, params).V_mV for m in (fit, plain))
        np.testing.assert_array_equal(V_fit, V)


def test_step_input_matches_discrete_closed_form():
    J0_mV = 7.5
    n = np.arange(5000)
    a_m, a_s = 1 - DT_MS / TAU_M_MS, 1 - DT_MS / TAU_S_MS
    expected = J0_mV * (1 - (TAU_M_MS * a_m**n - TAU_S_MS * a_s**n) / (TAU_M_MS - TAU_S_MS))
    V = freeman(np.full(n.size, J0_mV), DT_MS, TAU_M_MS, TAU_S_MS, 0.0)
    assert V.dtype == np.float64 and V.shape == n.shape and V[0] == 0.0
    np.testing.assert_allclose(V, expected, rtol=0, atol=1e-12 * J0_mV)


def test_step_input_close_to_continuous_solution():
    J0_mV = 1.0
    t_ms = np.arange(20000) * DT_MS
    exact = J0_mV * (
        1
        - (TAU_M_MS * np.exp(-t_ms / TAU_M_MS) - TAU_S_MS * np.exp(-t_ms / TAU_S_MS))
        / (TAU_M_MS - TAU_S_MS)
    )
    V = freeman(np.full(t_ms.size, J0_mV), DT_MS, TAU_M_MS, TAU_S_MS, 0.0)
    assert np.max(np.abs(V - exact)) <= 1.5e-3 * J0_mV


def test_sinusoid_steady_state_gain_at_10_Hz():
    f_Hz = 10.0
    omega_per_ms = 2 * np.pi * f_Hz * 1e-3
    t_ms = np.arange(30000) * DT_MS
    V = freeman(np.sin(omega_per_ms * t_ms), DT_MS, TAU_M_MS, TAU_S_MS, 0.0)
    late = t_ms >= 1000.0  # transients decay as exp(-t/20 ms): gone after 1 s
    basis = np.column_stack([np.sin(omega_per_ms * t_ms[late]), np.cos(omega_per_ms * t_ms[late])])
    coef = np.linalg.lstsq(basis, V[late], rcond=None)[0]
    gain = np.hypot(*coef)
    expected = abs(1 / ((1 + 1j * omega_per_ms * TAU_M_MS) * (1 + 1j * omega_per_ms * TAU_S_MS)))
    assert gain == pytest.approx(expected, rel=0.01)


def test_initial_value_and_empty_input():
    assert freeman(np.zeros(3), DT_MS, TAU_M_MS, TAU_S_MS, -60.0)[0] == -60.0
    assert freeman(np.zeros(0), DT_MS, TAU_M_MS, TAU_S_MS, -60.0).size == 0


def test_cfm_constant_input_reaches_analytic_fixed_point(params):
    rate_per_ms = np.array([0.02, 0.005, 0.01])
    Vbar_mV = -55.0
    gain_ms, v_syn_mV = _gains(params)
    fixed_mV = params.neuron.v_rest_mV - np.sum(gain_ms * (Vbar_mV - v_syn_mV) * rate_per_ms)
    V = _run(cfm.MODEL, _constant_phi(params, rate_per_ms, 30000), params, Vbar_mV)
    assert V[0] == Vbar_mV
    assert V[-1] == pytest.approx(fixed_mV, abs=1e-9)


def test_mfm_reaches_analytic_fixed_point_and_agrees_with_cfm_there(params):
    rate_per_ms = np.array([0.02, 0.005, 0.01])
    gain_ms, v_syn_mV = _gains(params)
    a = gain_ms * rate_per_ms
    fixed_mV = (params.neuron.v_rest_mV + np.sum(a * v_syn_mV)) / (1 + np.sum(a))
    phi = _constant_phi(params, rate_per_ms, 30000)

    V_mfm = _run(mfm.MODEL, phi, params, -60.0)
    assert V_mfm[-1] == pytest.approx(fixed_mV, abs=1e-9)

    # started at the MFM fixed point, J(V̄) = V̄: both models stay there
    for model in (mfm.MODEL, cfm.MODEL):
        np.testing.assert_allclose(_run(model, phi, params, fixed_mV), fixed_mV, rtol=0, atol=1e-10)


def test_mfm_matches_reference_loop_with_fluctuating_input(params):
    rng = np.random.default_rng(7)
    n = 3000
    phi = {s: rng.poisson(lam, n) / 1000 for s, lam in (("E", 2.0), ("I", 0.5), ("ext", 1.0))}
    gain_ms, v_syn_mV = _gains(params)
    dt_ms, tau_m_ms = params.simulation.dt_ms, params.neuron.tau_m_ms
    tau_s_ms = params.masses.tau_s_ms
    rate = np.vstack([phi["E"], phi["I"], phi["ext"]]) / dt_ms
    expected = np.empty(n)
    u = v = expected[0] = -58.0
    for i in range(n - 1):
        J = params.neuron.v_rest_mV - np.sum(gain_ms * (v - v_syn_mV) * rate[:, i])
        u, v = u + dt_ms / tau_m_ms * (J - u), v + dt_ms / tau_s_ms * (u - v)
        expected[i + 1] = v
    np.testing.assert_allclose(_run(mfm.MODEL, phi, params, -58.0), expected, rtol=0, atol=1e-10)


def test_cfm_is_freeman_of_eq20_input(params):
    rng = np.random.default_rng(8)
    n = 2000
    phi = {s: rng.poisson(1.0, n) / 1000 for s in ("E", "I", "ext")}
    gain_ms, v_syn_mV = _gains(params)
    Vbar_mV = -57.0
    rate = np.vstack([phi["E"], phi["I"], phi["ext"]]) / params.simulation.dt_ms
    J_mV = params.neuron.v_rest_mV - (gain_ms * (Vbar_mV - v_syn_mV)) @ rate
    expected = freeman(
        J_mV, params.simulation.dt_ms, params.neuron.tau_m_ms, params.masses.tau_s_ms, Vbar_mV
    )
    np.testing.assert_allclose(_run(cfm.MODEL, phi, params, Vbar_mV), expected, rtol=0, atol=1e-12)


def test_missing_synapse_type_is_an_error(params):
    with pytest.raises(ValueError, match="ext"):
        _run(cfm.MODEL, {"E": np.zeros(5), "I": np.zeros(5)}, params, -60.0)
