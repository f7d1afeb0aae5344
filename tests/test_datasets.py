"""The file layouts declared once (nmmval.datasets): labels, writers, checked reads."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from nmmval import config, datasets, masses, models, store
from nmmval.compare import compare_cell
from nmmval.datasets import COORDS, KINDS, LONG_NAME_MAX, layout
from nmmval.simulation import simulate_dataset

from conftest import ROOT


def _every_var():
    for kind in KINDS:
        for name, var in layout(kind, models.registered()).items():
            yield f"{kind}:{name}", var
    for name, var in COORDS.items():
        yield f"coord:{name}", var


@pytest.mark.parametrize(
    "where,var", list(_every_var()), ids=lambda x: x if isinstance(x, str) else ""
)
def test_every_variable_is_labelled_for_a_plot(where, var):
    assert 0 < len(var.long_name) <= LONG_NAME_MAX, where
    assert (var.units is None) == (var.dtype == "str"), where
    assert all(d in COORDS or d == "spike" for d in var.dims), where
    attrs = var.attrs()
    assert attrs["long_name"] == var.long_name
    if var.flags:  # CF: one flag value or mask per meaning, of the variable's own type
        key = "flag_masks" if var.flag_masks else "flag_values"
        assert len(attrs[key]) == len(var.flags), where
        assert attrs[key].dtype == np.dtype(var.dtype), where
        assert len(attrs["flag_meanings"].split()) == len(var.flags), where


def test_masses_layout_is_the_registry():
    table = layout("masses", models.registered())
    assert list(table)[:2] == ["V_cfm", "V_mfm"]
    for m in models.registered():
        assert table[m.variable].long_name == m.long_name
        assert table[m.variable].dims == ("time_ms",) and table[m.variable].units == "mV"
    for name, var in table.items():  # extra traces: time last (the divergence rule cuts it)
        assert var.dims[-1] == "time_ms" and set(var.dims) <= set(COORDS), name


def _network(n=5):
    values = {name: np.zeros([n if d == "time_ms" else 2 for d in var.dims])
              for name, var in datasets.NETWORK.items()}  # fmt: skip
    return datasets.build("network", values, {"time_ms": np.arange(n) * 0.1}, {"p": 0.1})


def test_build_casts_and_labels_and_refuses_undeclared_variables():
    ds = _network()
    assert ds["V"].dtype == np.float32 and ds["spike_step"].dtype == np.int32
    assert ds["V"].attrs["units"] == "mV" and ds["time_ms"].attrs["units"] == "ms"
    assert ds["phi_E"].encoding["_FillValue"] is None
    with pytest.raises(ValueError, match="phi_E"):
        datasets.build("network", {"V": np.zeros(5)}, {}, {})


def test_reads_are_checked_against_the_layout(tmp_path):
    path = tmp_path / "network.nc"
    store.write_dataset(_network(), path)
    ds = store.open_dataset(path, "network")
    assert datasets.problems(ds, "network") is None
    with xr.open_dataset(path) as raw:
        assert "_FillValue" not in raw["phi_E"].encoding  # φ is written without a fill value
        assert np.isnan(raw["V"].encoding["_FillValue"])
    broken = {
        "missing": ds.drop_vars("phi_I"),
        "dims": ds.assign(phi_I=("spike", np.zeros(2))),
        "dtype": ds.assign(V=ds["V"].astype(np.float64)),
    }
    messages = {
        "missing": "not a complete network file (no phi_I)",
        "dims": "phi_I: dims ('spike',), expected ('time_ms',)",
        "dtype": "V: dtype float64, expected float32",
    }
    for how, bad in broken.items():
        assert datasets.problems(bad, "network") == messages[how]
        store.write_dataset(bad, tmp_path / f"{how}.nc")
        with pytest.raises(store.InputError, match=rf"{how}\.nc: "):
            store.open_dataset(tmp_path / f"{how}.nc", "network")


def test_labels_come_from_the_table():
    assert datasets.label("cube", "tau_max_ms") == f"{datasets.CUBE['tau_max_ms'].long_name} (ms)"
    assert datasets.label("cube", "freq_Hz") == "frequency (Hz)"
    assert datasets.label("cube", "chi2") == datasets.CUBE["chi2"].long_name  # units 1: none


def test_the_python_api_returns_what_the_files_hold(tmp_path):
    """simulate -> masses -> compare as library calls: each Dataset is its file's content."""
    small = ["network.N=200", "simulation.T_ms=300", "simulation.T0_ms=100"]
    params = config.load(ROOT / "config" / "config.yaml", small)
    net = simulate_dataset(params, 0.2, 0.8, 0, threads=1)
    mas = masses.run(net, params)
    cmp = compare_cell(net, mas, params).to_dataset(params)
    for kind, ds in (("network", net), ("masses", mas), ("compare", cmp)):
        assert datasets.problems(ds, kind, models.registered()) is None, kind
        store.write_dataset(ds, tmp_path / f"{kind}.nc")
        back = store.open_dataset(tmp_path / f"{kind}.nc", kind, params)
        xr.testing.assert_identical(back.drop_encoding(), ds.drop_encoding())
