"""Reliability of the workflow: kills, corrupt inputs, full or read-only disks, long runs.

The workflow runs use ``tests/data/tiny.yaml`` (2 p x 2 λ x 2 seeds, N = 400,
T = 1 s) in temporary working directories (``snakemake --directory``). One
uninterrupted run, shared with ``test_determinism.py`` through
:func:`reference_run`, is the reference every interrupted or repaired run
must reproduce (the cube's data variables, exactly).

The resume command is the README's: after a SIGKILL, Snakemake's lock is
left behind and the same command refuses (``LockException``, or
``IncompleteFilesException`` if a job was killed between renaming its file
into place and Snakemake's record of it); ``--unlock``, then the same command
with ``--rerun-incomplete`` resumes. The runs are killed at points the tests
name (:mod:`nmmval.faults`), not at times.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from nmmval import cli, config, store
from nmmval.sim.lif import simulate

from conftest import CELL_JOBS, ROOT, TINY, job_counts, kill_at, reference_run
from conftest import TINY_CELLS as N_CELLS
from conftest import TINY_FITS as N_FITS
from conftest import cell_jobs as _cell_jobs
from conftest import tiny_command as _command

PAPER = ROOT / "config" / "paper-highg.yaml"  # the more violent of the two paper sets
#: the file each of CELL_JOBS writes in its cell's folder
CELL_FILES = ("network.nc", "masses.nc", "compare.nc")
#: the cell the corruption and determinism tests pick on
CELL = "p~0.100/lam~0.800/seed~0001"
#: a small, fast network for the CLI-level tests
SMALL = ["--set", "network.N=100", "--set", "simulation.T_ms=300", "--set", "simulation.T0_ms=100"]
A_CELL = ["--p", "0.1", "--lam", "0.8", "--seed", "0"]


# ------------------------------------------------------------------ helpers
def _run(workdir: Path, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        _command(workdir, *extra), capture_output=True, text=True, timeout=timeout, cwd=workdir
    )


def _job_counts(text: str) -> dict[str, int]:
    """Rule -> count from the first 'Job stats' table of Snakemake's output (the plan)."""
    return job_counts(text, first=True)


def _results(workdir: Path) -> Path:
    return workdir / "results" / "tiny"


def _finished(workdir: Path) -> dict[Path, int]:
    """Final cell outputs and benchmark files -> mtime (ns); a killed job's
    temporary (``*.tmp.nc``, removed when the job reruns) is not one."""
    res = _results(workdir)
    cells = [p for p in (res / "cells").rglob("*.nc") if not p.name.endswith(".tmp.nc")]
    files = cells + list((res / "benchmarks").rglob("*.tsv"))
    return {p: p.stat().st_mtime_ns for p in files}


def _benchmark(cell_file: Path) -> Path:
    """The benchmark file of the job that writes ``cell_file`` (a cell's network.nc, ...,
    or a <p, lambda>'s fit.nc)."""
    if cell_file.name == "fit.nc":
        cells = cell_file.parents[2]
        return cells.parent / "benchmarks" / "fit" / f"{cell_file.parent.relative_to(cells)}.tsv"
    cells = cell_file.parents[3]
    rule = CELL_JOBS[CELL_FILES.index(cell_file.name)]
    return cells.parent / "benchmarks" / rule / f"{cell_file.parent.relative_to(cells)}.tsv"


def _temporaries(workdir: Path) -> list[Path]:
    return sorted(_results(workdir).rglob("*.tmp.nc"))


def _refusal(workdir: Path) -> set[Path]:
    """Run the same command after a kill: it must refuse. The files it calls incomplete.

    Snakemake checks for incomplete files before it takes its lock: a file in
    place whose job was killed before Snakemake recorded it done (with ``-c 2``
    the job beside the one that fired may be anywhere) gives
    ``IncompleteFilesException`` naming it; else the lock left behind gives
    ``LockException``.
    """
    same = _run(workdir)
    assert same.returncode != 0, "the same command ran after a kill"
    if "IncompleteFilesException" in same.stderr:
        listed = same.stderr.split("Incomplete files:\n", 1)[1].splitlines()
        return {workdir / name for name in itertools.takewhile(str.strip, listed)}
    assert "LockException" in same.stderr, same.stderr[-2000:]
    return set()


def _unlock(workdir: Path) -> None:
    unlock = _run(workdir, "--unlock", timeout=120)
    assert unlock.returncode == 0, unlock.stderr[-2000:]


def _resume(
    workdir: Path, finished: dict[Path, int]
) -> tuple[subprocess.CompletedProcess, set[Path]]:
    """The README's resume after a kill: the same command refuses; ``--unlock``;
    the same command with ``--rerun-incomplete``.

    Of the files ``finished`` (:func:`_finished`) before, exactly those the
    refusal called incomplete are redone, and at most their jobs' benchmark
    files. Returns the resumed run and the files called incomplete.
    """
    incomplete = _refusal(workdir)
    _unlock(workdir)
    res = _run(workdir, "--rerun-incomplete")
    assert res.returncode == 0, res.stderr[-3000:]
    redone = {p for p, t in finished.items() if p.stat().st_mtime_ns != t}
    cell_files = incomplete & finished.keys()
    assert {p for p in redone if p.suffix == ".nc"} == cell_files, (redone, incomplete)
    assert redone <= cell_files | {_benchmark(p) for p in cell_files}, (redone, incomplete)
    return res, incomplete


def _assert_same_cube(workdir: Path, reference: Path) -> None:
    with (
        xr.open_dataset(_results(workdir) / "cube.nc", engine="netcdf4") as got,
        xr.open_dataset(_results(reference) / "cube.nc", engine="netcdf4") as want,
    ):
        xr.testing.assert_equal(got, want)  # data variables and coordinates, not attributes


@pytest.fixture(scope="session")
def reference(tmp_path_factory) -> Path:
    return reference_run(tmp_path_factory)


def _copy_run(src: Path, dst: Path) -> Path:
    """A finished run elsewhere, Snakemake's metadata and every mtime included."""
    shutil.copytree(src, dst, symlinks=True)
    (dst / "DONE").unlink(missing_ok=True)
    return dst


# ------------------------------------------------------------------ kill and resume
@pytest.mark.slow
def test_killed_during_simulate_then_compare_resumes_and_matches(reference, tmp_path):
    """Two kills in one sweep: as a simulate job first ends its 3rd block of steps,
    then, resumed, as a compare job first has written its temporary file."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    res_dir = _results(workdir)

    kill_at(_command(workdir), "block=3", tmp_path / "first.log")
    # no simulate job got past its 3rd block: no cell file, none incomplete
    assert _finished(workdir) == {}
    assert _refusal(workdir) == set()
    _unlock(workdir)

    kill_at(_command(workdir, "--rerun-incomplete"), "written=compare.nc", tmp_path / "second.log")
    assert _cell_jobs(_job_counts((tmp_path / "second.log").read_text())) == 3 * N_CELLS
    # no compare job got past writing its temporary; the cell it compared is done
    middle = _finished(workdir)
    done_nc = [p for p in middle if p.suffix == ".nc" and p.name != "fit.nc"]
    assert {p.name for p in middle if p.suffix == ".nc"} == {"network.nc", "fit.nc", "masses.nc"}
    assert any(p.name.startswith(".compare.nc.") for p in _temporaries(workdir))
    assert not (res_dir / "cube.nc").exists()

    res, incomplete = _resume(workdir, middle)
    # at most the job beside the one that fired was caught between rename and record
    assert len(incomplete) <= 1
    counts = _job_counts(res.stdout + res.stderr)
    assert _cell_jobs(counts) == 3 * N_CELLS - len(done_nc) + len(incomplete), counts
    assert counts.get("gather") == 1 and counts.get("figures") == 1, counts
    assert len(list((res_dir / "benchmarks").rglob("*.tsv"))) == 3 * N_CELLS + N_FITS
    assert _temporaries(workdir) == [], "temporary files of killed writers left behind"
    _assert_same_cube(workdir, reference)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["written", "renamed"])
def test_killed_during_gather_resumes_only_gather_and_figures(reference, tmp_path, point):
    """Killed once gather, running alone, has written the cube's temporary (the same
    command then refuses with LockException) or renamed it into place (with
    IncompleteFilesException naming the cube)."""
    workdir = _copy_run(reference, tmp_path / "run")
    res_dir = _results(workdir)
    cube = res_dir / "cube.nc"
    cube.unlink()
    before = _finished(workdir)

    kill_at(_command(workdir), f"{point}=cube.nc", tmp_path / "first.log")
    renamed = point == "renamed"
    assert cube.exists() == renamed
    assert len(list(res_dir.glob(".cube.nc.*.tmp.nc"))) == (0 if renamed else 1)
    res, incomplete = _resume(workdir, before)
    assert incomplete == ({cube} if renamed else set())
    counts = _job_counts(res.stdout + res.stderr)
    assert counts == {"gather": 1, "figures": 1, "all": 1, "total": 3}, counts
    assert list(res_dir.glob(".cube.nc.*")) == []
    _assert_same_cube(workdir, reference)


# ------------------------------------------------------------------ corrupt input
def _corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "random":
        path.write_bytes(np.random.default_rng(8).bytes(len(data)))
    elif how == "scribbled":  # a run of garbage in the middle, the header intact
        mid = len(data) // 2
        junk = np.random.default_rng(8).bytes(4096)
        path.write_bytes(data[:mid] + junk + data[mid + len(junk) :])
    else:  # pragma: no cover
        raise ValueError(how)


@pytest.mark.parametrize("how", ["truncated", "random", "scribbled"])
def test_corrupt_network_file_is_named_in_one_line(tmp_path, capsys, how):
    common = ["--config", str(TINY), *SMALL]
    net, out = tmp_path / "network.nc", tmp_path / "masses.nc"
    assert cli.main(["simulate", *common, *A_CELL, "--out", str(net)]) == 0
    capsys.readouterr()
    _corrupt(net, how)
    code = cli.main(["masses", *common, "--network", str(net), "--out", str(out)])
    lines = capsys.readouterr().err.splitlines()
    assert code == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"nmmval: {net}: corrupt network file ("), lines[0]
    assert lines[0].endswith(")")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["network.nc"]


@pytest.mark.slow
def test_corrupt_cell_fails_its_job_and_a_rerun_redoes_that_cell_only(reference, tmp_path):
    workdir = _copy_run(reference, tmp_path / "run")
    res_dir = _results(workdir)
    net = res_dir / "cells" / CELL / "network.nc"
    _corrupt(net, "truncated")
    before = _finished(workdir)
    pair = CELL.rsplit("/", 1)[0]  # p~…/lam~…: the fit reads every seed's network.nc
    seeds = sorted((res_dir / "cells" / pair).glob("seed~*"))

    # the corrupt file is newer than its <p, lambda>'s fit.nc: fit reruns on it and fails
    res = _run(workdir)
    assert res.returncode != 0
    assert "Error in rule fit" in res.stdout + res.stderr
    log = res_dir / "logs" / "fit" / f"{pair}.log"
    lines = log.read_text().splitlines()
    rel = f"results/tiny/cells/{CELL}/network.nc"
    assert len(lines) == 1 and lines[0].startswith(f"nmmval: {rel}: corrupt network file ("), lines

    # the same command fails again on the same file (it stays newer than fit.nc); the fit
    # and every seed of the pair downstream of it wait on it
    n = len(seeds)
    chain = {"simulate": 1, "fit": 1, "masses": n, "compare": n, "gather": 1, "figures": 1}
    chain["all"] = 1
    dry = _run(workdir, "-n", timeout=120)
    assert dry.returncode == 0
    again = _job_counts(dry.stdout + dry.stderr)
    assert again.get("fit") == 1 and again.get("masses") == n and "simulate" not in again, again

    # deleting files is NOT enough: the cube is up to date, and Snakemake does not
    # remake missing inputs of an existing output (network.nc, or the whole cell)
    cell = res_dir / "cells" / CELL
    shutil.move(cell, tmp_path / "broken_cell")
    dry = _run(workdir, "-n", timeout=120)
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr
    shutil.move(tmp_path / "broken_cell", cell)

    # the fix: --forcerun on the broken file redoes that cell, its pair's fit and what the
    # fit feeds (masses, compare of the pair's seeds), then gather and figures; no other cell
    res = _run(workdir, "--forcerun", rel)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _job_counts(res.stdout + res.stderr) == chain | {"total": sum(chain.values())}
    redone = {p for p, t in before.items() if p.exists() and p.stat().st_mtime_ns != t}
    this_pair = {cell / "network.nc", res_dir / "cells" / pair / "fit.nc"}
    this_pair |= {s / f"{r}.nc" for s in seeds for r in ("masses", "compare")}
    this_pair |= {_benchmark(f) for f in this_pair}
    assert redone == this_pair, redone ^ this_pair
    assert {p for p in before if not p.exists()} == set(), "a file of another cell was lost"
    assert all((cell / f"{k}.nc").is_file() for k in ("network", "masses", "compare"))
    _assert_same_cube(workdir, reference)


# ------------------------------------------------------------------ disk
def _mount_tmpfs(folder: Path, options: str) -> None:
    folder.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip() or res.returncode})")


def _umount(folder: Path) -> None:
    # lazily: after a failed write HDF5 may still hold the (deleted) file open
    if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_read_only_folder_reports_the_path_and_leaves_nothing(tmp_path, capsys):
    ro = tmp_path / "ro"
    _mount_tmpfs(ro, "ro,size=1m")
    try:
        out = ro / "cell" / "network.nc"
        t0 = time.perf_counter()
        assert (
            cli.main(["simulate", "--config", str(TINY), *SMALL, *A_CELL, "--out", str(out)]) == 1
        )
        lines = capsys.readouterr().err.splitlines()
        # checked before simulating: no progress line, no time lost
        assert time.perf_counter() - t0 < 5.0
        assert lines == [f"nmmval: {out}: cannot write (Read-only file system)"], lines
        assert list(ro.rglob("*")) == []
        out2 = ro / "masses.nc"
        with pytest.raises(store.OutputError, match=rf"^{out2}: cannot write \("):
            store.write_dataset(xr.Dataset({"a": ("t", np.arange(3.0))}), out2)
        assert list(ro.rglob("*")) == []
    finally:
        _umount(ro)


def test_full_disk_leaves_no_file_and_no_temporary(tmp_path, capsys):
    full = tmp_path / "full"
    _mount_tmpfs(full, "size=64k")
    try:
        out = full / "network.nc"
        noise = np.random.default_rng(0).standard_normal(200_000)  # 1.6 MB, incompressible
        ds = xr.Dataset({"V": ("time_ms", noise, {"units": "mV", "long_name": "noise"})})
        with pytest.raises(store.OutputError) as err:
            store.write_dataset(ds, out)
        text = str(err.value)
        assert text.startswith(f"{out}: cannot write (no space left on device") and "\n" not in text
        assert list(full.iterdir()) == [], "a partial or temporary file was left"
        # through the CLI: exit 1, one line naming the file, nothing left
        # through the CLI, the disk nearly full (a small network file no longer fits)
        filler = full / "filler"
        filler.write_bytes(b"\0" * 56 * 1024)
        argv = ["simulate", "--config", str(TINY), *SMALL, *A_CELL, "--out", str(out)]
        assert cli.main(argv) == 1
        err = capsys.readouterr().err.splitlines()
        lines = [ln for ln in err if not ln.startswith("nmmval simulate p=")]  # progress lines
        assert lines == [
            f"nmmval: {out}: cannot write (no space left on device: NetCDF: HDF error)"
        ]
        assert list(full.iterdir()) == [filler]
        filler.unlink()
        # the disk is usable again after the failures: nothing leaked space
        small = xr.Dataset({"a": ("t", np.arange(10.0))})
        store.write_dataset(small, out)
        assert [p.name for p in full.iterdir()] == ["network.nc"]
    finally:
        _umount(full)


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    out = tmp_path / "compare.nc"
    host = store._HOST
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".compare.nc.{host}~{dead.pid}~abcd1234.tmp.nc"
    alive = tmp_path / f".compare.nc.{host}~{os.getpid()}~abcd1234.tmp.nc"
    other_host = tmp_path / f".compare.nc.{host}x~{dead.pid}~abcd1234.tmp.nc"
    other_file = tmp_path / f".masses.nc.{host}~{dead.pid}~abcd1234.tmp.nc"
    for f in (stale, alive, other_host, other_file):
        f.write_bytes(b"partial")
    store.write_dataset(xr.Dataset({"a": ("t", np.arange(3.0))}), out)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(p.name for p in (out, alive, other_host, other_file))


# ------------------------------------------------------------------ long run
@pytest.mark.slow
def test_paper_length_run_at_the_most_violent_corner_stays_bounded():
    """N = 10 000, T = 30 s, p = 1, λ = 1: V finite; v of free cells in [v_I, v_th]."""
    params = config.load(PAPER)
    v_I, v_th = params.network.v_I_mV, params.neuron.v_th_mV
    seen = {"blocks": 0, "min": np.inf, "max": -np.inf}

    def check(step, v_mV, refractory_steps):
        assert np.isfinite(v_mV).all(), f"non-finite v at step {step}"
        free = refractory_steps == 0
        v_free = v_mV[free]
        if v_free.size:
            lo, hi = float(v_free.min()), float(v_free.max())
            assert v_I <= lo and hi <= v_th, f"step {step}: v in [{lo}, {hi}] mV"
            seen["min"], seen["max"] = min(seen["min"], lo), max(seen["max"], hi)
        seen["blocks"] += 1

    rec = simulate(params, 1.0, 1.0, 0, threads=2, on_block=check)
    n_steps = params.simulation.n_steps
    assert seen["blocks"] == -(-n_steps // 200)
    assert np.isfinite(rec.V_mV).all() and rec.V_mV.size == n_steps
    assert v_I <= rec.V_mV.min() and rec.V_mV.max() <= v_th
    assert rec.rate_E_Hz > 0 and rec.n_I == 0
    print(f"long run: v of free cells in [{seen['min']:.3f}, {seen['max']:.3f}] mV")
