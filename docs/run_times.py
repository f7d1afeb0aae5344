"""Print the wall and CPU time per stage of a finished run, from its per-job benchmark files.

Usage::

    python docs/run_times.py RUNS/results/paper

Every simulate, fit, masses and compare job of the workflow writes
Snakemake's benchmark file ``results/<run>/benchmarks/<stage>/….tsv`` (wall
seconds ``s``, CPU seconds ``cpu_time``, peak resident memory ``max_rss`` in
MB). Per stage: the jobs, the sums of their wall and CPU seconds, the
median per job and the largest peak memory. A job's wall includes the time
it waited for the CPU beside the other jobs (and any pause of the whole run);
its CPU seconds do not. The run's own wall time is in the log of
docs/paper_runs.sh (GNU time of each invocation that ended; a run stopped and
resumed has several).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

#: the stages with a benchmark file per job, in the workflow's order
STAGES = ("simulate", "fit", "masses", "compare")


#: the benchmark file's columns this script reads
COLUMNS = ("s", "cpu_time", "max_rss")


def read_benchmark(path: Path) -> dict[str, float]:
    """One job's :data:`COLUMNS` from its benchmark file; a file without them raises."""
    lines = [line.split("\t") for line in path.read_text().splitlines()]
    row = dict(zip(lines[0], lines[1], strict=True)) if len(lines) > 1 else {}
    try:
        return {k: float(row[k]) for k in COLUMNS}
    except (KeyError, ValueError) as err:
        raise ValueError(f"{path}: no number in column {err}") from None


def stage_times(results: Path) -> dict[str, dict[str, float]]:
    """Per stage of ``results`` (a run's results folder): jobs, Σ and median wall and CPU
    seconds, largest peak memory (MB)."""
    out = {}
    for stage in STAGES:
        jobs = [read_benchmark(f) for f in sorted((results / "benchmarks" / stage).rglob("*.tsv"))]
        if not jobs:
            continue
        wall = [j["s"] for j in jobs]
        cpu = [j["cpu_time"] for j in jobs]
        out[stage] = {
            "jobs": len(jobs),
            "wall_s": sum(wall),
            "cpu_s": sum(cpu),
            "median_wall_s": statistics.median(wall),
            "median_cpu_s": statistics.median(cpu),
            "max_rss_MB": max(j["max_rss"] for j in jobs),
        }
    return out


def table(times: dict[str, dict[str, float]]) -> str:
    """The per-stage table (Markdown) with a total row."""
    head = ["stage", "jobs", "Σ wall s", "Σ CPU s", "median wall s", "median CPU s", "peak MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for stage, t in times.items():
        lines.append(
            f"| {stage} | {t['jobs']} | {t['wall_s']:.0f} | {t['cpu_s']:.0f} | "
            f"{t['median_wall_s']:.1f} | {t['median_cpu_s']:.1f} | {t['max_rss_MB']:.0f} |"
        )
    jobs = sum(t["jobs"] for t in times.values())
    wall = sum(t["wall_s"] for t in times.values())
    cpu = sum(t["cpu_s"] for t in times.values())
    lines.append(f"| all | {jobs} | {wall:.0f} | {cpu:.0f} | | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, help="the run's results folder (RUNS/results/<run>)")
    args = ap.parse_args(argv)
    if not (args.results / "benchmarks").is_dir():
        print(f"run_times: {args.results / 'benchmarks'} is not a folder", file=sys.stderr)
        return 1
    times = stage_times(args.results)
    print(f"### Time per stage: {args.results.name}\n\n{table(times)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
