"""A mass model that diverges is flagged, not stored as inf or hidden as zero."""

import subprocess
import sys

import numpy as np
import xarray as xr

from nmmval import store
from nmmval.masses import DIVERGENCE_LIMIT_mV, divergence_step

from conftest import ROOT

CONFIG = str(ROOT / "config" / "config.yaml")
SMALL = ["--set", "network.N=300", "--set", "simulation.T_ms=1000", "--set", "simulation.T0_ms=200"]


def test_divergence_step():
    v = np.array([0.0, 1.0, 2 * DIVERGENCE_LIMIT_mV, np.inf, 3.0])
    assert divergence_step(v) == 2
    assert divergence_step(np.array([0.0, np.nan])) == 1
    assert divergence_step(np.array([-70.0, 540.0])) is None


def _nmmval(*args):
    r = subprocess.run([sys.executable, "-m", "nmmval.cli", *args, *SMALL], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()


def test_diverging_mfm_is_flagged_and_confined(tmp_path):
    net = tmp_path / "network.nc"
    _nmmval("simulate", "--config", CONFIG, "--p", "0.2", "--lam", "0.8", "--seed", "0",
            "--out", str(net))  # fmt: skip
    # synchronous bursts of 5000 excitatory arrivals per neuron every 6 ms: Eq. 24
    # multiplies them by the model's own V and grows without bound (Eq. 20 does not)
    ds = xr.open_dataset(net).load()
    phi = np.zeros(ds.sizes["time_ms"])
    phi[::60] = 5000.0
    ds["phi_E"] = ("time_ms", phi, ds["phi_E"].attrs)
    burst = tmp_path / "burst.nc"
    store.write_dataset(ds, burst)
    masses, compare = tmp_path / "masses.nc", tmp_path / "compare.nc"
    _nmmval("masses", "--config", CONFIG, "--network", str(burst), "--out", str(masses))
    _nmmval("compare", "--config", CONFIG, "--network", str(burst), "--masses", str(masses),
            "--out", str(compare))  # fmt: skip
    m = xr.open_dataset(masses)
    t_div = m["V_mfm"].attrs["diverged_at_ms"]
    assert isinstance(t_div, float) and 0 < t_div < 1000
    assert m["V_cfm"].attrs["diverged_at_ms"] == "none"
    v = m["V_mfm"].values
    k = int(round(t_div / 0.1))
    assert np.isfinite(v[:k]).all() and np.isnan(v[k:]).all()
    assert not np.isinf(v).any()
    c = xr.open_dataset(compare)
    # LIF, CFM, MFM, the ladder, the fitted models: the MFM-fit, fitted to this seed, found
    # gains with which Eq. 24 stays bounded on the same bursts (MODEL.md §5.3)
    assert c["diverged"].values.tolist() == [0, 0, 1, 0, 0, 0, 0, 0]
    assert m["V_mfm_fit"].attrs["fit_source"] == "fitted to this seed alone"
    assert np.isfinite(m["V_mfm_fit"].values).all()
    assert np.isnan(c["power"].sel(model="MFM")).all()
    for name in ("rho_max", "tau_max_ms", "rho_p", "n_eff"):
        assert np.isnan(float(c[name].sel(mass="MFM")))
        assert np.isfinite(float(c[name].sel(mass="CFM")))
    assert np.isfinite(c["power"].sel(model=["LIF", "CFM"])).all()
    assert not np.isinf(c["power"]).any()
