"""The initial state of a simulation (simulation.v_init_*, g_init_*)."""

import numpy as np
import pytest

from nmmval.sim import lif

from conftest import small_params


def test_default_initial_state_is_uniform_v_and_no_conductance():
    params = small_params()
    neu = params.neuron
    seq = np.random.SeedSequence(7)
    neurons = lif.initial_state(params, seq)
    v = np.random.Generator(np.random.PCG64(seq)).uniform(
        neu.v_reset_mV, neu.v_th_mV, size=params.network.N
    )
    np.testing.assert_array_equal(neurons.v_mV, v)
    assert not neurons.g_nS.any() and not neurons.ref_steps.any()
    assert not np.signbit(neurons.g_nS).any()  # +0.0, not 0 times a negative draw


def test_normal_initial_state_has_the_configured_moments():
    params = small_params(
        network__N=20000,
        simulation__v_init_mean_mV=-65.0,
        simulation__v_init_sd_mV=5.0,
        simulation__g_init_E_mean_nS=40.0,
        simulation__g_init_E_sd_nS=15.0,
        simulation__g_init_I_mean_nS=200.0,
        simulation__g_init_I_sd_nS=120.0,
    )
    neurons = lif.initial_state(params, np.random.SeedSequence(3))
    n = params.network.N
    for x, mean, sd in (
        (neurons.v_mV, -65.0, 5.0),
        (neurons.g_nS[0], 40.0, 15.0),
        (neurons.g_nS[1], 200.0, 120.0),
    ):
        assert x.mean() == pytest.approx(mean, abs=4 * sd / np.sqrt(n))
        assert x.std() == pytest.approx(sd, rel=4 / np.sqrt(2 * n))
    assert not neurons.g_nS[2].any()
    assert (neurons.g_nS[1] < 0).any()  # negative draws are kept, as in the benchmark
