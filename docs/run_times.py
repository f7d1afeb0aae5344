"""Print the wall and CPU time per stage of a finished run, from its per-job benchmark files.

Usage::

    python docs/run_times.py RUNS/results/paper
    python docs/run_times.py docs/results/parts/paper

Every simulate, fit, masses and compare job of the workflow writes
Snakemake's benchmark file ``results/<run>/benchmarks/<stage>/….tsv`` (wall
seconds ``s``, CPU seconds ``cpu_time``, peak resident memory ``max_rss`` in
MB), and its log ``results/<run>/logs/<stage>/….log`` ends with nmmval's
line ``… wrote <file> (CPU <s> s, peak <MiB> MiB)``. Per stage: the jobs,
the sums of their wall and CPU seconds, the median per job and the largest
peak memory. A job's CPU seconds come from its log's last line where it has
one (nmmval from 5b1a646 on), else from the benchmark file, whose sampling
(every 0.5 s for a job's first 15 s, then every 30 s) misses the CPU time of
a longer job after its last sample: a lower bound, counted in the table. A
job's wall includes the time it waited for the CPU beside the other jobs (and
any pause of the whole run); its CPU seconds do not.

The run's own wall time comes from Snakemake's logs in
``<outdir>/.snakemake/log/`` (``results`` is ``<outdir>/results/<run>``): each
invocation that worked on the run (its log names ``results/<run>/``) started
at the time in its log's name and ended at the log's last write. A run stopped
and resumed has several; their elapsed times are summed (a pause of a running
invocation counts, an interval between invocations does not).

A run carried across machines in parts (docs/run_parts.py) is read from its
parts folder instead: the jobs' rows and the invocations that each save kept.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import statistics
import sys
from pathlib import Path

from nmmval.cli import COST

#: the stages with a benchmark file per job, in the workflow's order
STAGES = ("simulate", "fit", "masses", "compare")
#: the benchmark file's columns this script reads
COLUMNS = ("s", "cpu_time", "max_rss")
#: in a run's parts folder (docs/run_parts.py): the per-job times, one file per save
JOBS_GLOB = "jobs-*.csv"
#: ... and the Snakemake invocations that worked on the run, one row each
INVOCATIONS = "invocations.csv"


def read_benchmark(path: Path) -> dict[str, float]:
    """One job's :data:`COLUMNS` from its benchmark file; a file without them raises."""
    lines = [line.split("\t") for line in path.read_text().splitlines()]
    row = dict(zip(lines[0], lines[1], strict=True)) if len(lines) > 1 else {}
    try:
        return {k: float(row[k]) for k in COLUMNS}
    except (KeyError, ValueError) as err:
        raise ValueError(f"{path}: no number in column {err}") from None


def logged_cpu_s(log: Path) -> float | None:
    """The CPU seconds on the last line of a job's log, None if it has no such line."""
    if not log.is_file():
        return None
    lines = log.read_text(errors="replace").splitlines()
    m = COST.search(lines[-1]) if lines else None
    return float(m[1]) if m else None


def job_rows(results: Path) -> list[dict]:
    """One row per job of ``results`` (a run's results folder), stage by stage: ``stage``,
    ``job`` (its benchmark file under the stage's folder, without ``.tsv``: the cell),
    ``wall_s``, ``cpu_s``, ``sampled`` (the CPU seconds are the benchmark file's lower
    bound) and ``max_rss_MB``."""
    rows = []
    for stage in STAGES:
        folder = results / "benchmarks" / stage
        for f in sorted(folder.rglob("*.tsv")):
            bench = read_benchmark(f)
            job = f.relative_to(folder).as_posix().removesuffix(".tsv")
            logged = logged_cpu_s(results / "logs" / stage / f"{job}.log")
            rows.append(
                {
                    "stage": stage,
                    "job": job,
                    "wall_s": bench["s"],
                    "cpu_s": bench["cpu_time"] if logged is None else logged,
                    "sampled": logged is None,
                    "max_rss_MB": bench["max_rss"],
                }
            )
    return rows


def aggregate(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per stage of :func:`job_rows`: jobs, Σ and median wall and CPU seconds, largest peak
    memory (MB), and the jobs whose CPU seconds are the sampled lower bound (``sampled``)."""
    out = {}
    for stage in STAGES:
        jobs = [r for r in rows if r["stage"] == stage]
        if not jobs:
            continue
        wall = [r["wall_s"] for r in jobs]
        cpu = [r["cpu_s"] for r in jobs]
        out[stage] = {
            "jobs": len(jobs),
            "sampled": sum(bool(r["sampled"]) for r in jobs),
            "wall_s": sum(wall),
            "cpu_s": sum(cpu),
            "median_wall_s": statistics.median(wall),
            "median_cpu_s": statistics.median(cpu),
            "max_rss_MB": max(r["max_rss_MB"] for r in jobs),
        }
    return out


def stage_times(results: Path) -> dict[str, dict[str, float]]:
    """:func:`aggregate` of the jobs of ``results`` (a run's results folder)."""
    return aggregate(job_rows(results))


def invocations(results: Path) -> list[tuple[dt.datetime, dt.datetime]]:
    """(start, end) of each Snakemake invocation that worked on the run in ``results``, from
    the logs in ``<outdir>/.snakemake/log`` (module docstring), in order of start."""
    marker = f"results/{results.name}/"
    out = []
    for log in sorted((results.parent.parent / ".snakemake" / "log").glob("*.snakemake.log")):
        if marker in log.read_text(errors="replace"):
            start = dt.datetime.strptime(log.name.split(".snakemake")[0], "%Y-%m-%dT%H%M%S.%f")
            out.append((start, dt.datetime.fromtimestamp(log.stat().st_mtime)))
    return out


def add_invocations(path: Path, runs: list[tuple[dt.datetime, dt.datetime]]) -> None:
    """Keep each invocation once (by its start), with the latest end seen."""
    known = dict(read_invocations(path))
    known.update(runs)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["start", "end"])
        w.writerows((s.isoformat(), e.isoformat()) for s, e in sorted(known.items()))


def read_invocations(path: Path) -> list[tuple[dt.datetime, dt.datetime]]:
    """The (start, end) rows of an :data:`INVOCATIONS` file; none if it does not exist."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [
            (dt.datetime.fromisoformat(r["start"]), dt.datetime.fromisoformat(r["end"]))
            for r in csv.DictReader(f)
        ]


def write_jobs(path: Path, rows: list[dict]) -> None:
    """Write :func:`job_rows` rows as CSV (docs/run_parts.py keeps them with a run's parts)."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def read_jobs(parts: Path) -> list[dict]:
    """The rows of every :data:`JOBS_GLOB` file in ``parts`` (:func:`job_rows`' layout)."""
    rows = []
    for path in sorted(parts.glob(JOBS_GLOB)):
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                rows.append(
                    {
                        **r,
                        **{k: float(r[k]) for k in ("wall_s", "cpu_s", "max_rss_MB")},
                        "sampled": r["sampled"] == "True",
                    }
                )
    return rows


def table(times: dict[str, dict[str, float]]) -> str:
    """The per-stage table (Markdown) with a total row."""
    head = ["stage", "jobs", "Σ wall s", "Σ CPU s", "median wall s", "median CPU s", "peak MB"]
    head.append("CPU sampled (jobs)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for stage, t in times.items():
        lines.append(
            f"| {stage} | {t['jobs']} | {t['wall_s']:.0f} | {t['cpu_s']:.0f} | "
            f"{t['median_wall_s']:.1f} | {t['median_cpu_s']:.1f} | {t['max_rss_MB']:.0f} | "
            f"{t['sampled']} |"
        )
    total = {k: sum(t[k] for t in times.values()) for k in ("jobs", "wall_s", "cpu_s", "sampled")}
    lines.append(
        f"| all | {total['jobs']} | {total['wall_s']:.0f} | {total['cpu_s']:.0f} | | | | "
        f"{total['sampled']} |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "results",
        type=Path,
        help="the run's results folder (RUNS/results/<run>) or its parts folder",
    )
    folder = ap.parse_args(argv).results
    if (folder / "benchmarks").is_dir():
        times, runs = stage_times(folder), invocations(folder)
    elif any(folder.glob(JOBS_GLOB)):
        times, runs = aggregate(read_jobs(folder)), read_invocations(folder / INVOCATIONS)
    else:
        print(f"run_times: {folder} holds neither benchmarks/ nor {JOBS_GLOB}", file=sys.stderr)
        return 1
    print(f"### Time per stage: {folder.name}\n\n{table(times)}")
    if runs:
        elapsed_s = sum((end - start).total_seconds() for start, end in runs)
        print(
            f"\n- the run: {len(runs)} Snakemake invocation{'s' * (len(runs) > 1)}, "
            f"{elapsed_s:.0f} s ({elapsed_s / 3600:.2f} h) elapsed in them, "
            f"{runs[0][0]:%Y-%m-%d %H:%M} to {runs[-1][1]:%Y-%m-%d %H:%M}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
