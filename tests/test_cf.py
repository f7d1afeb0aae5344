"""Every kind of file nmmval writes passes the CF checker (issue #18).

One cell of a tiny sweep (N = 300, T = 500 ms) runs through the command's
stages in this process, simulate -> fit -> masses -> compare -> gather, and
``cfchecks`` (cfchecker 4.1, CF-1.8, the version the files declare) checks
network.nc, fit.nc, masses.nc, compare.nc and cube.nc offline, with the
bundled tables of tests/data/cf. Any ERROR fails the test; the checker's
warnings (a character-array label coordinate is 2-D, "possible incorrect
declaration of a coordinate variable") are allowed.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
import xarray as xr
import yaml

from nmmval import cli, store

from conftest import ROOT

CELL = {"p": 0.2, "lam": 0.8, "seed": 0}
TINY = {
    "run": "cf",
    "grid": {"p": [CELL["p"]], "lam": [CELL["lam"]], "seeds": [CELL["seed"]]},
    "network": {"N": 300},
    "simulation": {"T_ms": 500.0, "T0_ms": 100.0, "record_closures": True},
    "figures": {"diagnostic_cells": []},
}
TABLES = ROOT / "tests" / "data" / "cf"


def _checker() -> str:
    """The cfchecks command, or skip: it needs the UDUNITS-2 C library (cfunits)."""
    exe = shutil.which("cfchecks")
    if exe is None:
        pytest.skip("cfchecks not installed (pip install '.[test]')")
    probe = subprocess.run(["python", "-c", "import cfunits"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cfchecks cannot load UDUNITS-2 (apt install libudunits2-0): {probe.stderr}")
    return exe


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cf")
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for section, values in TINY.items():
        cfg[section] = {**cfg[section], **values} if isinstance(values, dict) else values
    config = root / "cf.yaml"
    config.write_text(yaml.safe_dump(cfg))
    cell = store.cell_dir(root, **CELL)
    out = {k: cell / f"{k}.nc" for k in ("network", "masses", "compare")}
    out["fit"] = store.fit_path(root, CELL["p"], CELL["lam"])
    out["cube"] = root / "cube.nc"
    common = ["--config", str(config)]
    where = ["--p", str(CELL["p"]), "--lam", str(CELL["lam"]), "--seed", str(CELL["seed"])]
    for argv in (
        ["simulate", *common, *where, "--threads", "1", "--out", str(out["network"])],
        ["fit", *common, "--network", str(out["network"]), "--out", str(out["fit"])],
        ["masses", *common, "--network", str(out["network"]), "--fit", str(out["fit"]),
         "--out", str(out["masses"])],
        ["compare", *common, "--network", str(out["network"]), "--masses", str(out["masses"]),
         "--out", str(out["compare"])],
        ["gather", *common, "--results", str(root), "--out", str(out["cube"])],
    ):  # fmt: skip
        assert cli.main(argv) == 0, argv[0]
    return out


def _check(path) -> tuple[str, list[str]]:
    """The checker's report of one file and its ERROR lines."""
    res = subprocess.run(
        [_checker(), "-v", "1.8", "-s", str(TABLES / "standard-name-table.xml"),
         "-a", str(TABLES / "area-type-table.xml"),
         "-r", str(TABLES / "standardized-region-list.xml"), str(path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    report = res.stdout + res.stderr
    return report, [line for line in report.splitlines() if line.startswith("ERROR:")]


@pytest.mark.parametrize("kind", ["network", "fit", "masses", "compare", "cube"])
def test_every_file_kind_passes_the_cf_checker(files, kind):
    report, errors = _check(files[kind])
    assert "Traceback" not in report, report[-3000:]
    assert errors == [], "\n".join(errors)
    assert re.search(r"ERRORS detected: 0", report), report[-3000:]


def test_the_checker_sees_what_the_files_avoid(tmp_path):
    """The check can fail: a file as nmmval wrote them before (cell_methods over a
    dimension the variable lacks, a label in a variable-length string) has errors."""
    ds = xr.Dataset(
        {"rho": (("mass",), np.array([0.5, 0.7]), {"units": "1", "long_name": "rho",
                                                  "cell_methods": "seed: mean"})},
        coords={"mass": ("mass", np.array(["CFM", "MFM"], dtype=object))},
        attrs={"Conventions": "CF-1.8"},
    )  # fmt: skip
    ds.to_netcdf(tmp_path / "bad.nc", encoding={"mass": {"dtype": str}})
    _, errors = _check(tmp_path / "bad.nc")
    assert any("cell_methods" in e for e in errors), errors
