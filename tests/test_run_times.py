"""docs/run_times.py: a run's time per stage from its jobs' benchmark files and logs.

A synthetic run folder holds Snakemake's benchmark files (its real header)
for two simulations and one compare; one simulation's log ends with
nmmval's cost line, whose CPU seconds must replace the benchmark file's
sampled ones, the other's does not. Snakemake's logs of two invocations of
the run and one of another run give the run's elapsed time.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os

import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location("run_times", ROOT / "docs" / "run_times.py")
rt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rt)

HEAD = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time"


def _job(results, stage, cell, wall_s, cpu_s, rss_MB, log_line=None):
    bench = results / "benchmarks" / stage / f"{cell}.tsv"
    bench.parent.mkdir(parents=True, exist_ok=True)
    bench.write_text(f"{HEAD}\n{wall_s}\t0:00:01\t{rss_MB}\t1\t1\t1\t0\t0\t50\t{cpu_s}\n")
    if log_line is not None:
        log = results / "logs" / stage / f"{cell}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"nmmval simulate p=0.5: 100 % (3.0 s, 0.0 s left)\n{log_line}\n")


@pytest.fixture
def run(tmp_path):
    results = tmp_path / "results" / "paper"
    cost = "nmmval simulate: wrote network.nc (CPU 40.5 s, peak 900 MiB)"
    _job(results, "simulate", "p~0.500/lam~0.900/seed~0000", 45.0, 14.0, 880.0, cost)
    _job(results, "simulate", "p~0.500/lam~0.900/seed~0001", 30.0, 12.0, 700.0, "no cost here")
    _job(results, "compare", "p~0.500/lam~0.900/seed~0000", 11.0, 9.5, 420.0)
    return results


def test_cpu_from_the_log_where_it_has_the_cost_line(run):
    t = rt.stage_times(run)
    assert list(t) == ["simulate", "compare"]
    sim = t["simulate"]
    assert sim["jobs"] == 2 and sim["sampled"] == 1
    assert sim["wall_s"] == pytest.approx(75.0)
    assert sim["cpu_s"] == pytest.approx(40.5 + 12.0)
    assert sim["max_rss_MB"] == pytest.approx(880.0)
    assert t["compare"]["cpu_s"] == pytest.approx(9.5) and t["compare"]["sampled"] == 1


def test_a_fit_jobs_log_is_found_beside_its_cell_name(run):
    # a fit job is named by <p, lam> alone: p~0.500/lam~0.900, whose ".900" is no suffix
    cost = "nmmval fit: wrote fit.nc (CPU 13.2 s, peak 1513 MiB)"
    _job(run, "fit", "p~0.500/lam~0.900", 24.0, 9.0, 1450.0, cost)
    (row,) = [r for r in rt.job_rows(run) if r["stage"] == "fit"]
    assert row["job"] == "p~0.500/lam~0.900"
    assert row["cpu_s"] == pytest.approx(13.2) and not row["sampled"]


def test_table_totals_and_command_line(run, capsys):
    assert rt.main([str(run)]) == 0
    out = capsys.readouterr().out
    assert "| simulate | 2 | 75 | 52 | 37.5 | 26.2 | 880 | 1 |" in out
    assert "| all | 3 | 86 | 62 | | | | 2 |" in out


def test_a_benchmark_file_without_numbers_names_itself(run):
    bad = run / "benchmarks" / "compare" / "p~0.500" / "lam~0.900" / "seed~0001.tsv"
    bad.write_text(HEAD + "\n")
    with pytest.raises(ValueError, match="seed~0001.tsv"):
        rt.stage_times(run)


def test_a_folder_without_benchmarks_is_one_line(tmp_path, capsys):
    assert rt.main([str(tmp_path)]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def _snakemake_log(outdir, start, minutes, text):
    log = outdir / ".snakemake" / "log" / f"{start:%Y-%m-%dT%H%M%S.%f}.snakemake.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(text)
    end = (start + dt.timedelta(minutes=minutes)).timestamp()
    os.utime(log, (end, end))


def test_the_runs_elapsed_time_sums_its_own_invocations(run, capsys):
    outdir = run.parent.parent
    t0 = dt.datetime(2026, 12, 7, 9, 52, 3, 269078)
    job = "Shell command: nmmval simulate ... --out results/paper/cells/p~0.500/network.nc"
    _snakemake_log(outdir, t0, 17, job)
    _snakemake_log(outdir, t0 + dt.timedelta(hours=1), 30, "results/highg-10s/cells/x")
    _snakemake_log(outdir, t0 + dt.timedelta(hours=3), 60, job)
    _snakemake_log(outdir, t0 + dt.timedelta(hours=5), 0, "Unlocked working directory.")
    runs = rt.invocations(run)
    assert [start for start, _ in runs] == [t0, t0 + dt.timedelta(hours=3)]
    assert sum((end - start).total_seconds() for start, end in runs) == pytest.approx(77 * 60)
    assert rt.main([str(run)]) == 0
    assert "- the run: 2 Snakemake invocations, 4620 s (1.28 h)" in capsys.readouterr().out


def test_a_parts_folder_gives_the_same_table_as_its_run(run, tmp_path, capsys):
    parts = tmp_path / "parts"
    parts.mkdir()
    rows = rt.job_rows(run)
    rt.write_jobs(parts / "jobs-20261207T000000Z.csv", rows[:2])
    rt.write_jobs(parts / "jobs-20261208T000000Z.csv", rows[2:])
    t0 = dt.datetime(2026, 12, 7, 9, 52, 3)
    rt.add_invocations(parts / rt.INVOCATIONS, [(t0, t0 + dt.timedelta(minutes=10))])
    later = t0 + dt.timedelta(minutes=20)  # the same invocation seen again, and a new one
    again = [(t0, later), (later, later + dt.timedelta(hours=1))]
    rt.add_invocations(parts / rt.INVOCATIONS, again)
    assert rt.aggregate(rt.read_jobs(parts)) == rt.stage_times(run)
    assert rt.main([str(parts)]) == 0
    out = capsys.readouterr().out
    assert "| all | 3 | 86 | 62 | | | | 2 |" in out
    assert "- the run: 2 Snakemake invocations, 4800 s (1.33 h)" in out
