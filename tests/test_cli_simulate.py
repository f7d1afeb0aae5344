"""``nmmval simulate``: the network file, its attributes, and failures."""

import os
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from conftest import ROOT

SMALL = ["--set", "network.N=300", "--set", "simulation.T_ms=400", "--set", "simulation.T0_ms=100"]


def nmmval(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "nmmval.cli", *args], capture_output=True, text=True, cwd=cwd
    )


def simulate_args(out, *extra):
    return [
        "simulate", "--config", str(ROOT / "config" / "config.yaml"),
        "--p", "0.2", "--lam", "0.8", "--seed", "1", "--out", str(out), *SMALL, *extra,
    ]  # fmt: skip


def test_simulate_writes_a_complete_file(tmp_path):
    out = tmp_path / "network.nc"
    r = nmmval(*simulate_args(out))
    assert r.returncode == 0, r.stderr
    ds = xr.open_dataset(out, engine="netcdf4")
    assert ds["V"].dtype == np.float32 and ds["V"].attrs["units"] == "mV"
    assert ds.sizes["time_ms"] == 4000
    assert ds["time_ms"].attrs["units"] == "ms"
    for name in ("phi_E", "phi_I", "phi_ext", "spike_neuron", "spike_step", "synchrony"):
        assert name in ds and "long_name" in ds[name].attrs
    assert ds["spike_neuron"].dtype == np.int32
    for attr in ("n_E", "n_I", "n_edges", "n_ext_edges", "config", "nmmval_version", "wall_time_s"):
        assert attr in ds.attrs
    assert ds.attrs["n_E"] == 240
    assert ds.encoding["source"] == str(out)
    assert [f for f in os.listdir(tmp_path)] == ["network.nc"]
    ds.close()


def test_store_spikes_off_keeps_synchrony(tmp_path):
    on, off = tmp_path / "on.nc", tmp_path / "off.nc"
    assert nmmval(*simulate_args(on)).returncode == 0
    assert nmmval(*simulate_args(off, "--set", "simulation.store_spikes=false")).returncode == 0
    a, b = xr.open_dataset(on), xr.open_dataset(off)
    assert b.sizes["spike"] == 0 and a.sizes["spike"] > 0
    assert float(a["synchrony"]) == float(b["synchrony"])
    np.testing.assert_array_equal(a["V"], b["V"])


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--set", "network.p_ext=1.7"], "nmmval: network.p_ext: 1.7 is not in [0, 1]"),
        (["--p", "1.5"], "nmmval: --p: 1.5 is not in [0, 1]"),
        (["--threads", "0"], "nmmval: --threads: 0 must be >= 1"),
        (["--set", "nonsense"], "nmmval: --set 'nonsense': expected section.key=value"),
    ],
)
def test_bad_input_one_line_nonzero_no_file(tmp_path, extra, message):
    out = tmp_path / "network.nc"
    r = nmmval(*simulate_args(out, *extra))
    assert r.returncode != 0
    assert r.stderr.strip() == message
    assert list(tmp_path.iterdir()) == []


def test_bad_argument_type_is_rejected_by_argparse(tmp_path):
    r = nmmval(*simulate_args(tmp_path / "n.nc", "--seed", "one"))
    assert r.returncode == 2
    assert "--seed: invalid int value" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_missing_config_file(tmp_path):
    r = nmmval("simulate", "--config", str(tmp_path / "no.yaml"), "--p", "0", "--lam", "1",
               "--seed", "0", "--out", str(tmp_path / "n.nc"))  # fmt: skip
    assert r.returncode == 1
    assert r.stderr.strip().startswith(f"nmmval: {tmp_path / 'no.yaml'}: cannot read config")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_output_folder_named(tmp_path):  # pragma: no cover - root on CI
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    r = nmmval(*simulate_args(ro / "network.nc"))
    assert r.returncode == 1 and str(ro / "network.nc") in r.stderr
