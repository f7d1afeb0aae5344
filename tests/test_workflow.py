"""The Snakemake workflow: lint, format, DAG of the paper sweep, tiny end-to-end runs.

The end-to-end runs use ``tests/data/tiny.yaml`` (2 p x 2 lambda x 2 seeds,
N = 400, T = 1 s) in temporary working directories (``snakemake
--directory``), so nothing is written into the repository.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
import yaml

from nmmval import figures

from conftest import CELL_JOBS, SNAKEFILE, TINY, TINY_CELLS, cell_jobs, kill_at
from conftest import ROOT as REPO
from conftest import job_counts as _job_counts
from conftest import snakemake_in as _snakemake

PAPER = REPO / "config" / "paper.yaml"
#: everything ruff lints and formats: the package, the tests, the benchmarks
PY_FILES = ["src", "tests", "benchmarks", "docs"]
FIGURES = [f.name for f in figures.FIGURES]


# ------------------------------------------------------------------ static checks
def test_snakemake_lint_is_clean():
    res = subprocess.run(
        ["snakemake", "--lint"], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "Lints for" not in out, out
    assert "Congratulations" in out


def test_snakefmt_is_clean():
    res = subprocess.run(
        ["snakefmt", "--check", "Snakefile", "workflow"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_is_clean():
    for cmd in (["ruff", "check", *PY_FILES], ["ruff", "format", "--check", *PY_FILES]):
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr


def test_paper_dry_run_builds_the_1050_cell_dag(tmp_path):
    t0 = time.perf_counter()
    res = _snakemake(tmp_path, "-n", "--quiet", "rules", "--configfile", str(PAPER))
    wall = time.perf_counter() - t0
    print(f"paper dry run: {wall:.1f} s", file=sys.stderr)
    assert res.returncode == 0, res.stderr[-3000:]
    counts = _job_counts(res.stdout + res.stderr)
    for rule in CELL_JOBS:
        assert counts.get(rule) == 21 * 5 * 10, counts
    assert counts.get("fit") == 21 * 5, counts  # one per <p, lambda>, all its seeds
    assert counts.get("gather") == 1 and counts.get("figures") == 1, counts
    assert not (tmp_path / "results").exists(), "a dry run must not write results"


def test_default_run_plans_in_another_directory(tmp_path):
    """`snakemake --directory DIR` with no config file (the quick run, results in DIR):
    the Snakefile's config file is found next to it, not in DIR."""
    res = _snakemake(tmp_path, "-n", "--quiet", "rules")
    assert res.returncode == 0, res.stderr[-3000:]
    assert _job_counts(res.stdout + res.stderr).get("figures") == 1


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("network.p_ext", 1.7),  # schema range
        ("simulation.T0_ms", 5000.0),  # cross-key: T0 >= T
        ("analysis.n_surrogates", "many"),  # type
    ],
)
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, key, value):
    cfg = yaml.safe_load(TINY.read_text())
    section, name = key.split(".")
    cfg.setdefault(section, {})[name] = value
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    res = _snakemake(tmp_path, "--configfile", str(bad), "-c", "1", timeout=120)
    assert res.returncode != 0
    err_lines = [ln for ln in res.stderr.splitlines() if key in ln]
    assert err_lines, res.stderr
    assert "rule simulate" not in res.stdout + res.stderr
    assert not (tmp_path / "results").exists()


# ------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_tiny_run_produces_the_cube_and_every_figure(tiny_run):
    cube = xr.open_dataset(tiny_run / "cube.nc", engine="netcdf4")
    params = yaml.safe_load(TINY.read_text())
    grid = params["grid"]
    assert dict(cube.sizes) | {} == {
        "p": 2,
        "lam": 2,
        "seed": 2,
        "model": 8,
        "mass": 7,
        "freq_Hz": cube.sizes["freq_Hz"],
        "lag_ms": 2001,
        "welch_freq_Hz": cube.sizes["welch_freq_Hz"],
        "held_out_freq_Hz": cube.sizes["held_out_freq_Hz"],
        "population": 2,
        "synapse": 3,
        "fitted": 2,
    }
    np.testing.assert_allclose(cube["p"], grid["p"])
    np.testing.assert_allclose(cube["lam"], grid["lam"])
    masses = ["CFM", "MFM", "CBM", "CBM-R", "PDM", "CFM-fit", "MFM-fit"]
    assert list(cube["model"].values) == ["LIF", *masses]
    assert list(cube["mass"].values) == masses
    assert list(cube["fitted"].values) == ["CFM-fit", "MFM-fit"]
    # the held-out half (400 ms) of the 800 ms window: one 400 ms Welch segment, 2.5 Hz bins
    np.testing.assert_allclose(np.diff(cube["held_out_freq_Hz"].values), 2.5)
    # 800 ms window at 0.1 ms: rfft bins every 1.25 Hz up to 1000 Hz
    np.testing.assert_allclose(np.diff(cube["freq_Hz"].values), 1.25)
    assert cube["freq_Hz"].values[-1] <= 1000.0
    # Welch segments of 400 ms: bins every 2.5 Hz
    np.testing.assert_allclose(np.diff(cube["welch_freq_Hz"].values), 2.5)

    expected = {
        ("p", "lam", "seed"): ["synchrony", "rate_E_Hz", "rate_I_Hz", "Vbar_mV"],
        ("p", "lam", "model", "freq_Hz"): ["spectrum"],
        ("p", "lam", "model"): ["median_freq_Hz", "spectrum_above_fmax"],
        ("p", "lam", "seed", "model"): ["median_freq_Hz_seed"],
        ("p", "lam", "mass"): [
            "chi2",
            "chi2_p_paper",
            "tau_max_ms",
            "rho",
            "rho_p",
            "difference_p",
            "equivalence_bound",
            "verdict",
            "verdict_reasons",
        ],
        ("p", "lam", "seed", "mass"): [
            "tau_max_ms_seed",
            "rho_seed",
            "rho_p_seed",
            "n_eff_seed",
            "chi2_welch_seed",
            "diverged_at_ms",
        ],
        ("p", "lam"): ["equivalence_margin", "chi2_floor", "rho_ceiling"],
        ("p", "lam", "seed", "population"): ["closure_error_mV", "pdm_rate_rel_error_seed"],
        ("p", "lam", "population"): ["pdm_rate_rel_error", "pdm_rate_corr"],
        ("p", "lam", "mass", "lag_ms"): ["xcorr"],
    }
    for dims, names in expected.items():
        for name in names:
            assert cube[name].dims == dims, name
    for name, var in cube.variables.items():
        assert "long_name" in var.attrs, name
        if var.dtype.kind != "U" and var.dtype.kind != "O":
            assert "units" in var.attrs, name
    assert cube.attrs["Conventions"].startswith("CF-")
    assert "nmmval_version" in cube.attrs
    assert yaml.safe_load(cube.attrs["config"])["run"] == "tiny"
    # no cell of the tiny grid is silent: no constant-potential cell is flagged
    assert cube.attrs["constant_potential_cells"] == "none"
    assert cube["spectrum"].attrs["zero_cells"] == "none"

    # NaN only where flagged, and only where a quantity may be undefined: synchrony (no
    # train with two spikes), no divergence, no closure recordings (tiny.yaml records none),
    # a zero noise ceiling (whole window or held-out half), the PDM's rate check of an empty
    # (lam = 1) or silent population
    may_be_nan = ("synchrony", "diverged_at_ms", "closure_error_mV", "rho_over_ceiling",
                  "rho_over_ceiling_held_out", "pdm_rate_rel_error", "pdm_rate_corr",
                  "pdm_rate_rel_error_seed", "pdm_rate_corr_seed")  # fmt: skip
    for name, var in cube.data_vars.items():
        if name not in may_be_nan:
            assert not var.isnull().any(), f"unexpected NaN in {name}"
        elif var.isnull().any():
            assert var.attrs.get("nan_cells"), f"{name} NaN not flagged"
    # spectra normalised over the whole band (stored bins + lumped tail)
    total = cube["spectrum"].sum("freq_Hz") + cube["spectrum_above_fmax"]
    np.testing.assert_allclose(total, 1.0, rtol=1e-10)
    assert ((cube["chi2"] >= 0) & (cube["chi2"] <= 2)).all()
    for name in ("chi2_p_paper", "rho_p", "rho_p_seed", "difference_p", "rho_surrogate_p"):
        assert ((cube[name] >= 0) & (cube[name] <= 1)).all(), name
    # two seeds: the exact paired test cannot go below 2^(1 - k) = 0.5
    assert (cube["difference_p"] >= 0.5).all()
    assert set(np.unique(cube["verdict"].values)) <= {-1, 0, 1}
    # seed combinations (MODEL.md section 6)
    rho_seed = cube["rho_seed"].values
    np.testing.assert_allclose(
        cube["rho"].values, np.tanh(np.arctanh(rho_seed).mean(axis=2)), rtol=1e-10
    )
    np.testing.assert_allclose(
        cube["tau_max_ms"].values, np.median(cube["tau_max_ms_seed"].values, axis=2)
    )
    cube.close()

    figdir = tiny_run / "figures"
    names = FIGURES + ["diagnostic_p0.100_lam0.800"]
    for name in names:
        for ext in ("pdf", "png"):
            path = figdir / f"{name}.{ext}"
            assert path.is_file() and path.stat().st_size > 1000, path
    assert (tiny_run / "config.resolved.yaml").is_file()
    for kind in CELL_JOBS:
        assert len(list((tiny_run / "benchmarks" / kind).rglob("*.tsv"))) == 8, kind
    assert len(list((tiny_run / "benchmarks" / "fit").rglob("*.tsv"))) == 4


@pytest.mark.slow
def test_killed_run_resumes_only_missing_jobs_and_matches(tiny_run, tmp_path):
    """Killed once the first masses job has written its temporary file."""
    workdir = tmp_path / "killed"
    workdir.mkdir()
    cells = workdir / "results" / "tiny" / "cells"
    cmd = [
        "snakemake", "-s", str(SNAKEFILE), "--directory", str(workdir),
        "--configfile", str(TINY), "-c", "2",
    ]  # fmt: skip
    kill_at(cmd, "written=masses.nc", tmp_path / "first.log")
    assert not (workdir / "results" / "tiny" / "cube.nc").exists()

    outputs = sorted(p for p in cells.rglob("*.nc") if not p.name.endswith(".tmp.nc"))
    before = {p: p.stat().st_mtime_ns for p in outputs}
    # no masses job got past writing its temporary; the network and fit it read are done
    assert {p.name for p in before} == {"network.nc", "fit.nc"}, before
    networks = [p for p in before if p.name == "network.nc"]
    # a SIGKILL leaves Snakemake's lock behind: unlock, then resume (as the README says)
    res = _snakemake(workdir, "--configfile", str(TINY), "--unlock", timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    res = _snakemake(
        workdir, "--configfile", str(TINY), "-c", "2", "--rerun-incomplete", timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    rewritten = [p for p, t in before.items() if p.stat().st_mtime_ns != t]
    # only a file the job beside the one that fired renamed into place just before the
    # kill, unrecorded by Snakemake, may be redone (and, if a network, its cell's fit)
    assert len([p for p in rewritten if p.name == "network.nc"]) <= 1, rewritten
    assert len(rewritten) <= 2, rewritten
    counts = _job_counts(res.stdout + res.stderr)
    n_cell_jobs = cell_jobs(counts)
    redone = len([p for p in rewritten if p.name == "network.nc"])
    assert n_cell_jobs == 3 * TINY_CELLS - len(networks) + redone, counts
    assert list(cells.rglob("*.tmp.nc")) == [], "temporary files of killed writers left behind"

    resumed = xr.open_dataset(workdir / "results" / "tiny" / "cube.nc")
    reference = xr.open_dataset(tiny_run / "cube.nc")
    xr.testing.assert_equal(resumed, reference)
    resumed.close()
    reference.close()
    shutil.rmtree(workdir, ignore_errors=True)
