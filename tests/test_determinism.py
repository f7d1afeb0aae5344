"""Same <p, λ, seed>, same bits: across runs, thread counts, and alone or inside the sweep.

One cell of the tiny config is computed three times:

- alone, in a fresh ``nmmval`` process, with ``--threads 1``;
- alone, through the CLI entry point in this process, with ``--threads 2``;
- inside the tiny sweep (``snakemake``, the shared reference run of
  ``test_reliability.py``), which runs ``simulate`` with one thread.

network.nc, masses.nc and compare.nc must hold bitwise-identical data
(values, dtypes, dimensions, coordinates) and the same attributes, except
the ones that record when and how fast a file was made (wall_time_s,
build_s, loop_s, history).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from test_reliability import CELL

from nmmval import cli

from conftest import ROOT, pinned_tiny, reference_run

#: attributes that record the making of a file, not its content
VOLATILE = {"wall_time_s", "build_s", "loop_s", "history"}
KINDS = ("network", "masses", "compare")
P, LAM, SEED = "0.1", "0.8", "1"


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    return reference_run(tmp_path_factory)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """The tiny config as the sweep resolved it (see conftest.pinned_tiny)."""
    return pinned_tiny(tmp_path_factory)


def _chain_args(folder, threads, tiny, other_seed):
    """simulate, fit (on ``other_seed``'s network.nc and this one, in the sweep's seed
    order), masses, compare of the cell."""
    f = {k: str(folder / f"{k}.nc") for k in (*KINDS, "fit")}
    common = ["--config", str(tiny)]
    return [
        [
            "simulate",
            *common,
            "--p",
            P,
            "--lam",
            LAM,
            "--seed",
            SEED,
            "--threads",
            str(threads),
            "--out",
            f["network"],
        ],  # fmt: skip
        ["fit", *common, "--network", str(other_seed), f["network"], "--out", f["fit"]],
        ["masses", *common, "--network", f["network"], "--fit", f["fit"], "--out", f["masses"]],
        [
            "compare",
            *common,
            "--network",
            f["network"],
            "--masses",
            f["masses"],
            "--out",
            f["compare"],
        ],  # fmt: skip
    ]


def _bits(a: np.ndarray) -> tuple:
    a = np.ascontiguousarray(a)
    return a.dtype.str, a.shape, a.tobytes()


def _attrs(attrs: dict) -> dict:
    """Attributes as comparable bits (NaN fill values compare equal), volatile ones dropped."""
    out = {}
    for k, v in attrs.items():
        if k in VOLATILE:
            continue
        out[k] = v if isinstance(v, str) else _bits(np.asarray(v))
    return out


def assert_same_bits(path_a, path_b) -> None:
    """Every variable bitwise equal, same attributes apart from the volatile ones."""
    a = xr.open_dataset(path_a, engine="netcdf4", decode_cf=False)
    b = xr.open_dataset(path_b, engine="netcdf4", decode_cf=False)
    try:
        assert set(a.variables) == set(b.variables), (path_a, path_b)
        assert dict(a.sizes) == dict(b.sizes)
        for name in a.variables:
            va, vb = a[name], b[name]
            assert va.dims == vb.dims, name
            assert _bits(va.values) == _bits(vb.values), f"{name} differs: {path_a} vs {path_b}"
            assert _attrs(va.attrs) == _attrs(vb.attrs), name
        assert _attrs(a.attrs) == _attrs(b.attrs), (path_a, path_b)
    finally:
        a.close()
        b.close()


@pytest.mark.slow
def test_same_cell_same_bits_alone_threads_and_sweep(reference, tiny, tmp_path):
    alone_1 = tmp_path / "alone_threads1"
    alone_2 = tmp_path / "alone_threads2"
    for folder in (alone_1, alone_2):
        folder.mkdir()
    # the fit pools the cell's seeds: the other seed's network comes from the sweep
    sweep = reference / "results" / "tiny" / "cells" / CELL
    other_seed = sweep.parent / "seed~0000" / "network.nc"
    # a fresh process, one thread
    for argv in _chain_args(alone_1, 1, tiny, other_seed):
        res = subprocess.run(
            [sys.executable, "-m", "nmmval.cli", *argv], capture_output=True, text=True, cwd=ROOT
        )
        assert res.returncode == 0, res.stderr[-2000:]
    # this process, two threads
    for argv in _chain_args(alone_2, 2, tiny, other_seed):
        assert cli.main(argv) == 0
    for kind in KINDS:
        assert_same_bits(alone_1 / f"{kind}.nc", alone_2 / f"{kind}.nc")
        assert_same_bits(alone_1 / f"{kind}.nc", sweep / f"{kind}.nc")
    assert_same_bits(alone_1 / "fit.nc", alone_2 / "fit.nc")
    assert_same_bits(alone_1 / "fit.nc", sweep.parent / "fit.nc")


def test_assert_same_bits_sees_one_flipped_bit(tmp_path):
    """The comparison itself can fail: one ulp in one value, or one attribute."""
    v = np.linspace(-61, -59, 100, dtype=np.float32)
    base = xr.Dataset({"V": ("t", v, {"units": "mV"})}, attrs={"p": 0.1, "wall_time_s": 1.0})
    base.to_netcdf(tmp_path / "a.nc", engine="netcdf4")
    same = base.copy(deep=True)
    same.attrs["wall_time_s"] = 2.0  # volatile: ignored
    same.to_netcdf(tmp_path / "b.nc", engine="netcdf4")
    assert_same_bits(tmp_path / "a.nc", tmp_path / "b.nc")
    flipped = base.copy(deep=True)
    flipped["V"].values[37] = np.nextafter(v[37], np.float32(0))
    flipped.to_netcdf(tmp_path / "c.nc", engine="netcdf4")
    with pytest.raises(AssertionError, match="V differs"):
        assert_same_bits(tmp_path / "a.nc", tmp_path / "c.nc")
    other = base.copy(deep=True)
    other.attrs["p"] = 0.2
    other.to_netcdf(tmp_path / "d.nc", engine="netcdf4")
    with pytest.raises(AssertionError):
        assert_same_bits(tmp_path / "a.nc", tmp_path / "d.nc")
