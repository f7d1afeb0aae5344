"""Config loading and validation: one line naming key, value and what is allowed."""

import pytest
import yaml

from nmmval import config

from conftest import ROOT


def raw_quick() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


@pytest.mark.parametrize(
    "override,message",
    [
        ("network.p_ext=1.7", "network.p_ext: 1.7 is not in [0, 1]"),
        ("network.N=1", "network.N: 1 is not in [2, 1000000]"),
        ("neuron.C_pF=0", "neuron.C_pF: 0 is not in (0, 100000]"),
        ("simulation.dt_ms=abc", "simulation.dt_ms: 'abc' is not of type number"),
        ("analysis.n_surrogates=99.5", "analysis.n_surrogates: 99.5 is not of type integer"),
        ("analysis.n_surrogates=98", "analysis.n_surrogates: 98 is not in [99, 100000]"),
        ("network.bogus=1", "network: unknown key(s) 'bogus'"),
        ("grid.p=[]", "grid.p: [] should be non-empty"),
        ("grid.lam=[0.8, 1.2]", "grid.lam.1: 1.2 is not in [0, 1]"),
        ("neuron.v_reset_mV=-45", "neuron.v_reset_mV: -45 must be below neuron.v_th_mV = -50.0"),
        ("simulation.T0_ms=5000", "simulation.T0_ms: 5000 must be below simulation.T_ms = 3000.0"),
        ("grid.p=[0.0125]", "grid.p: 0.0125 has more than 3 decimals"),
        ("masses.pdm_v_min_mV=-60", "masses.pdm_v_min_mV: -60 must be below neuron.v_reset_mV"),
        ("masses.pdm_n_bins=1", "masses.pdm_n_bins: 1 is not in [2, 100000]"),
        ("run=a/b", "run: 'a/b' does not match"),
        (
            "simulation.v_init_sd_mV=5",
            "simulation.v_init_sd_mV: 5 needs simulation.v_init_mean_mV",
        ),
        ("simulation.g_init_I_sd_nS=-1", "simulation.g_init_I_sd_nS: -1 is not in [0, 100000]"),
        ("simulation.g_init_E_mean_nS=-1", "simulation.g_init_E_mean_nS: -1 is not in [0, 100000]"),
    ],
)
def test_bad_values_name_key_and_range(override, message):
    with pytest.raises(config.ConfigError) as err:
        config.load(ROOT / "config" / "config.yaml", [override])
    text = str(err.value)
    assert text.startswith(message)
    assert "\n" not in text


def test_missing_key_is_named():
    raw = raw_quick()
    del raw["grid"]["seeds"]
    with pytest.raises(config.ConfigError, match=r"^grid.seeds: missing, it is required$"):
        config.from_dict(raw)


def test_defaults_filled_from_schema():
    raw = raw_quick()
    del raw["masses"]
    del raw["network"]["tau_I_ms"]
    params = config.from_dict(raw)
    assert params.masses.tau_s_ms == 5.0
    assert params.network.tau_I_ms == 7.0
    assert params.resolved["masses"] == {
        "tau_s_ms": 5.0,
        "pdm_n_bins": 200,
        "pdm_v_min_mV": None,
        "pdm_boundary_correction": True,
        "fit_tau_s_max_ms": 50.0,
        "fit_gain_max": 10.0,
    }


def test_initial_state_defaults_are_model_md(quick_params):
    """Without the initial-state keys: v uniform on [v_reset, v_th), no conductance."""
    sim = quick_params.simulation
    assert sim.v_init_mean_mV is None and sim.v_init_sd_mV == 0.0
    assert (sim.g_init_E_mean_nS, sim.g_init_E_sd_nS) == (0.0, 0.0)
    assert (sim.g_init_I_mean_nS, sim.g_init_I_sd_nS) == (0.0, 0.0)


def test_coba_config_has_no_drive_no_noise_and_the_published_initial_state():
    params = config.load(ROOT / "config" / "coba.yaml")
    net, neu, sim = params.network, params.neuron, params.simulation
    assert net.N == 4000 and params.grid_p == (0.02,) and params.grid_lam == (0.8,)
    assert net.M == 0 and net.p_ext == 0.0 and neu.noise_Q_V2ms == 0.0
    # 6 nS and 67 nS per spike
    assert net.g_hat_E_nSms / net.tau_E_ms == 6.0
    assert net.g_hat_I_nSms / net.tau_I_ms == 67.0
    assert (sim.v_init_mean_mV, sim.v_init_sd_mV) == (-65.0, 5.0)
    assert (sim.g_init_E_mean_nS, sim.g_init_E_sd_nS) == (40.0, 15.0)
    assert (sim.g_init_I_mean_nS, sim.g_init_I_sd_nS) == (200.0, 120.0)


def test_params_are_frozen_and_typed(quick_params):
    assert quick_params.neuron.tau_m_ms == 20.0
    assert quick_params.neuron.noise_Q_mV2ms == pytest.approx(
        1e6 * quick_params.neuron.noise_Q_V2ms
    )
    assert quick_params.simulation.n_steps == 30000
    with pytest.raises(AttributeError):
        quick_params.network.N = 5


def test_paper_config_is_the_papers_grid():
    params = config.load(ROOT / "config" / "paper.yaml")
    assert len(params.grid_p) == 21 and len(params.grid_lam) == 5 and len(params.grid_seeds) == 10
    assert params.network.N == 10000 and params.simulation.T_ms == 30000


def test_config_roundtrips_through_json(quick_params):
    again = config.from_json(quick_params.to_json())
    assert again == quick_params


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(config.ConfigError, match="cannot read config"):
        config.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: [unclosed\n")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load(bad)


def test_override_syntax_error():
    with pytest.raises(config.ConfigError, match="expected section.key=value"):
        config.load(ROOT / "config" / "config.yaml", ["network.N"])


def test_override_reads_exponent_without_dot():
    params = config.load(ROOT / "config" / "config.yaml", ["neuron.noise_Q_V2ms=3e-4"])
    assert params.neuron.noise_Q_V2ms == 3e-4


def test_config_readme_lists_every_key():
    text = (ROOT / "config" / "README.md").read_text()
    assert config.schema_markdown() in text
