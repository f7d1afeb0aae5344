"""The paper sweep's wall time on this machine: a slice of its grid through the workflow,
projected to the whole sweep (``python benchmarks/bench.py sweep``).

Usage (from the repository root)::

    python benchmarks/bench.py sweep            # λ = 0.8, 0.9, 1 × 21 p, seed 0, N = 10⁴, T = 30 s
    python benchmarks/bench.py sweep --quick    # smoke: N = 1000, T = 1 s, 3 p, λ = 0.8 and 1
    python benchmarks/bench.py sweep --rows 0.6 0.9 1 --seeds 2 --outdir /scratch/sweep

The slice is ``config/paper.yaml`` (``--config``) with its grid cut to the
rows ``--rows`` (λ), the p values ``--p`` (default all) and the seeds
0 … ``--seeds`` − 1, and ``simulation.T_ms`` = ``--T-ms`` (T0 scaled with
T). It runs through the workflow as a user runs it: ``snakemake cube`` (with
``--figures``, every figure too), local, ``--cores`` (default all), one
thread per simulation, in its own folder ``--outdir`` (default
``/tmp/nmmval-sweep``; its ``results/<run>`` is deleted first), with this
checkout's nmmval. Every job's ``nmmval`` is this checkout's under GNU
time (a two-line ``nmmval`` shim first on PATH), which gives its wall and
CPU seconds (user + system) exactly; Snakemake's own ``benchmark:`` files
sample the CPU time (every 0.5 s, after 15 s every 30 s) and miss what a
job spends after the last sample.

Before the timed run, untimed: the same slice with N = 200 and T = 0.2 s
through the workflow (Numba compiles or loads every kernel the slice needs,
Python caches nmmval's bytecode), then the fixed start-up per job
(``benchmarks/startup.py``, median of ``--startup-repeat`` runs). The table
goes to ``benchmarks/out/sweep.md`` (``sweep_quick.md``) and ``.json``, and
into ``--outdir``. How the 1050 cells are projected: :func:`project`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr
import yaml
from bench import emit, f_s, log, machine, md_head
from startup import child_env
from startup import measure as measure_startup

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: goal of issue 19: the whole paper sweep on this machine (s)
GOAL_SWEEP_S = 3 * 3600.0
#: the stages of a cell <p, λ> (fit: one job; the others: one per seed), then the run's
CELL_STAGES = ("simulate", "fit", "masses", "compare")
STAGES = (*CELL_STAGES, "gather", "figures")
#: the smoke run's slice
QUICK = {"N": 1000, "T_ms": 1000.0, "p": [0.0, 0.5, 1.0], "rows": [0.8, 1.0]}
#: the warm-up slice's network and duration
WARMUP = {"N": 200, "T_ms": 200.0}
#: the GNU time line of every job: wall, user, system (s), peak RSS (kB), command
_TIME_FORMAT = "%e %U %S %M %C"
_CELL = re.compile(r"p~(\d\.\d{3})/lam~(\d\.\d{3})(?:/seed~(\d{4}))?")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The options of ``bench.py sweep``."""
    ap.add_argument("--quick", action="store_true", help="smoke run: N = 1000, T = 1 s, 3 p")
    ap.add_argument(
        "--config", default=str(ROOT / "config" / "paper.yaml"), help="the sweep to project"
    )
    ap.add_argument("--rows", type=float, nargs="+", help="λ rows (default 0.8 0.9 1)")
    ap.add_argument("--p", type=float, nargs="+", help="p values (default: all of the grid)")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per cell (default 1)")
    ap.add_argument("--T-ms", type=float, help="simulated time, ms (default: the config's)")
    ap.add_argument("--N", type=int, help="network size (default: the config's)")
    ap.add_argument(
        "--cores", type=int, default=os.cpu_count(), help="Snakemake's --cores (default: all)"
    )
    ap.add_argument("--figures", action="store_true", help="also the figures job")
    ap.add_argument(
        "--startup-repeat",
        type=int,
        default=5,
        help="runs per stage of the start-up (median; default 5; 0 skips it)",
    )
    ap.add_argument(
        "--outdir",
        type=Path,
        default=Path("/tmp/nmmval-sweep"),
        help="the run's folder, outside the repository (default /tmp/nmmval-sweep)",
    )


def slice_config(paper: dict, run: str, p, rows, seeds: int, N: int, T_ms: float) -> dict:
    """The paper config cut to a slice: grid, N, T (T0 in the same proportion)."""
    cfg = json.loads(json.dumps(paper))
    sim = cfg["simulation"]
    cfg["run"] = run
    cfg["grid"].update(p=list(p), lam=list(rows), seeds=list(range(seeds)))
    cfg["network"]["N"] = N
    sim["T0_ms"], sim["T_ms"] = sim["T0_ms"] * T_ms / sim["T_ms"], T_ms
    cfg["figures"]["diagnostic_cells"] = [
        c for c in cfg["figures"]["diagnostic_cells"] if c["p"] in p and c["lam"] in rows
    ]
    return cfg


def write_shim(outdir: Path, times: Path) -> Path:
    """``outdir/bin/nmmval``: this checkout's nmmval under GNU time, a line per job in ``times``."""
    folder = outdir / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "nmmval"
    shim.write_text(
        "#!/bin/sh\n"
        f'exec /usr/bin/time -a -o "{times}" -f "{_TIME_FORMAT}" '
        f'"{sys.executable}" -m nmmval.cli "$@"\n'
    )
    shim.chmod(0o755)
    return folder


def run_workflow(outdir: Path, cfg: dict, cores: int, figures: bool, label: str) -> dict:
    """Run the workflow on ``cfg`` in ``outdir`` from scratch; its wall and CPU seconds."""
    outdir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(outdir / "results" / cfg["run"], ignore_errors=True)
    config = outdir / f"{cfg['run']}.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    times = outdir / f"{cfg['run']}.times"
    times.unlink(missing_ok=True)
    env = child_env(ROOT / "src")
    env["PATH"] = f"{write_shim(outdir, times)}{os.pathsep}{env['PATH']}"
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(outdir)]
    cmd += ["--configfile", str(config), "--cores", str(cores), "all" if figures else "cube"]
    log(f"{label}: {' '.join(cmd[1:])}")
    t0, cpu0 = time.perf_counter(), os.times()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall, cpu1 = time.perf_counter() - t0, os.times()
    (outdir / f"{cfg['run']}.log").write_text(r.stdout + r.stderr)
    if r.returncode != 0:
        raise RuntimeError(f"{label}: snakemake failed; see {outdir / (cfg['run'] + '.log')}")
    cpu = cpu1.children_user - cpu0.children_user + cpu1.children_system - cpu0.children_system
    return {"wall_s": wall, "cpu_s": cpu, "jobs": read_jobs(times)}


def read_jobs(times: Path) -> list[dict]:
    """Every job's stage, cell, wall and CPU seconds and peak RSS from the GNU time lines."""
    jobs = []
    for line in times.read_text().splitlines():
        wall, user, system, rss_kB, *command = line.split()
        stage = command[command.index("nmmval.cli") + 1]
        out = command[command.index("--out") + 1] if "--out" in command else ""
        cell = _CELL.search(out)
        job = {"stage": stage, "wall_s": float(wall), "cpu_s": float(user) + float(system)}
        job["rss_MB"] = int(rss_kB) / 1024
        if cell:
            job["p"], job["lam"] = float(cell[1]), float(cell[2])
            job["seed"] = int(cell[3]) if cell[3] else None
            job["out"] = out
        jobs.append(job)
    return jobs


def per_cell(jobs: list[dict], outdir: Path) -> dict:
    """Per <p, λ>: each stage's mean wall and CPU seconds per job; E rate and loop of the seeds."""
    cells = {}
    for job in jobs:
        if "p" not in job:
            continue
        cell = cells.setdefault((job["p"], job["lam"]), {"rate_E_Hz": [], "loop_s": []})
        cell.setdefault(job["stage"], []).append((job["wall_s"], job["cpu_s"]))
        if job["stage"] == "simulate":
            with xr.open_dataset(outdir / job["out"]) as net:
                cell["rate_E_Hz"].append(float(net["rate_E_Hz"]))
                cell["loop_s"].append(float(net.attrs["loop_s"]))
    for cell in cells.values():
        for stage in CELL_STAGES:
            runs = np.array(cell.get(stage, [(np.nan, np.nan)]))
            cell[stage] = {"wall_s": runs[:, 0].mean(), "cpu_s": runs[:, 1].mean(), "n": len(runs)}
        cell["rate_E_Hz"] = float(np.mean(cell["rate_E_Hz"]))
        cell["loop_s"] = float(np.mean(cell["loop_s"]))
    return cells


def _source(cells: dict, p: float, lam: float, stage: str, key: str) -> float:
    """A stage's cost at <p, λ> from the measured cells: the nearest measured row in λ (a
    tie: the larger λ), linear in p between its measured p (flat beyond them)."""
    rows = sorted({r for _, r in cells})
    row = min(rows, key=lambda r: (abs(r - lam), -r))
    ps = sorted(q for q, r in cells if r == row)
    return float(np.interp(p, ps, [cells[(q, row)][stage][key] for q in ps]))


def _scaled(cost: float, startup_s: float, factor: float) -> float:
    """A job's cost with its work (cost − start-up, at least 0) scaled by ``factor``."""
    startup_s = min(startup_s, cost)
    return startup_s + (cost - startup_s) * factor


def project(cells: dict, slice_jobs: list[dict], startup: dict, grid: dict) -> dict:
    """The whole sweep's job-seconds per stage (wall and CPU; the wall per λ row too),
    from the measured slice.

    - simulate, masses, compare: each <p, λ> of the grid costs what the measured
      cell costs per seed (:func:`_source`: the nearest measured λ row, linear in p), times
      the grid's seeds;
    - fit: per <p, λ> the same way, its work (the measured job minus the stage's start-up)
      scaled by the grid's seeds over the slice's seeds (the fit pools the seeds' samples);
    - gather: once, its work scaled by the compare.nc files it reads;
    - figures: once, as measured (if the slice ran it).
    """
    n_seeds, k = len(grid["seeds"]), _slice_seeds(slice_jobs)
    total = {}
    for stage in CELL_STAGES:
        t = total[stage] = {"wall_s": 0.0, "cpu_s": 0.0, "jobs": 0, "by_row": {}}
        for p in grid["p"]:
            for lam in grid["lam"]:
                for key in ("wall_s", "cpu_s"):
                    cost = _source(cells, p, lam, stage, key)
                    if stage == "fit":
                        cost = _scaled(cost, startup.get(stage, 0.0), n_seeds / k)
                    else:
                        cost *= n_seeds
                    t[key] += cost
                    if key == "wall_s":
                        t["by_row"][lam] = t["by_row"].get(lam, 0.0) + cost
                t["jobs"] += 1 if stage == "fit" else n_seeds
    read = sum(1 for j in slice_jobs if j["stage"] == "compare")
    for stage in ("gather", "figures"):
        runs = [j for j in slice_jobs if j["stage"] == stage]
        if runs:
            factor = len(grid["p"]) * len(grid["lam"]) * n_seeds / read
            if stage == "figures":
                factor = 1.0
            total[stage] = {"jobs": 1}
            for key in ("wall_s", "cpu_s"):
                total[stage][key] = _scaled(runs[0][key], startup.get(stage, 0.0), factor)
    return total


def _slice_seeds(jobs: list[dict]) -> int:
    """Seeds per cell of the slice."""
    return len({j["seed"] for j in jobs if j["stage"] == "simulate"})


def projected_wall(total: dict, measured: dict) -> tuple[float, float]:
    """Projected wall (s) of the sweep, and the jobs the slice ran at a time on average.

    The jobs but gather and figures run side by side, as many at a time as in the slice:
    their job-seconds over the slice's (its wall without gather and figures over their
    job-seconds: Snakemake's gaps between jobs and the slice's tail included); gather and
    figures run alone, after them.
    """
    serial = ("gather", "figures")
    jobs = measured["jobs"]
    parallel_s = sum(j["wall_s"] for j in jobs if j["stage"] not in serial)
    serial_s = sum(j["wall_s"] for j in jobs if j["stage"] in serial)
    at_a_time = parallel_s / (measured["wall_s"] - serial_s)
    projected = sum(v["wall_s"] for s, v in total.items() if s not in serial) / at_a_time
    return projected + sum(total[s]["wall_s"] for s in serial if s in total), at_a_time


def report(args, info, cfg, measured, cells, startup, total, grid) -> str:
    """The Markdown of the sweep mode: measured cells, stages, projection, method."""
    cores = args.cores
    lines = [
        f"### The paper sweep on this machine: a slice through the workflow, projected "
        f"({'QUICK smoke run' if args.quick else 'full'})",
        "",
        f"- date: {info['date']}; nmmval commit {info['commit']}",
        f"- machine: {info['cpu']}, {info['cores']} cores, {info['mem_GB']} GB RAM, "
        f"Python {info['python']}",
        f"- slice: {args.config} with N = {cfg['network']['N']}, T = "
        f"{cfg['simulation']['T_ms'] / 1000:g} s (T0 = {cfg['simulation']['T0_ms'] / 1000:g} s), "
        f"λ = {', '.join(f'{x:g}' for x in cfg['grid']['lam'])}, "
        f"{len(cfg['grid']['p'])} p, seeds {cfg['grid']['seeds']}; `snakemake "
        f"{'all' if args.figures else 'cube'} --cores {cores}` in {args.outdir}",
        "- load average (1, 5, 15 min) at start: "
        f"{', '.join(f'{x:.2f}' for x in info['load_avg'])}; at end: "
        f"{', '.join(f'{x:.2f}' for x in info['load_avg_end'])}",
        "",
        f"The slice took **{f_s(measured['wall_s'])} s** wall ({measured['wall_s'] / 60:.1f} min), "
        f"{f_s(measured['cpu_s'])} s CPU (Snakemake and every job).",
        "",
        "Per measured cell, per job (mean over the seeds; seconds):",
        "",
    ]
    cols = ["λ", "p", "rate E Hz", "simulate wall", "simulate CPU", "loop", "fit wall"]
    cols += ["masses wall", "masses CPU", "compare wall", "compare CPU"]
    lines += md_head(cols)
    for (p, lam), c in sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        nums = [c["simulate"]["wall_s"], c["simulate"]["cpu_s"], c["loop_s"], c["fit"]["wall_s"]]
        nums += [c["masses"]["wall_s"], c["masses"]["cpu_s"]]
        nums += [c["compare"]["wall_s"], c["compare"]["cpu_s"]]
        lines.append(
            f"| {lam:g} | {p:g} | {c['rate_E_Hz']:.1f} | " + " | ".join(map(f_s, nums)) + " |"
        )
    lines += ["", "Per stage, the slice (seconds):", ""]
    cols = ["stage", "jobs", "wall Σ", "CPU Σ", "wall per job", "start-up per job"]
    cols.append("start-up / wall")
    lines += md_head(cols)
    for stage in STAGES:
        runs = [j for j in measured["jobs"] if j["stage"] == stage]
        if not runs:
            continue
        wall = sum(j["wall_s"] for j in runs)
        su = startup.get(stage)
        walls = [j["wall_s"] for j in runs]
        lines.append(
            f"| {stage} | {len(runs)} | {f_s(wall)} | {f_s(sum(j['cpu_s'] for j in runs))} "
            f"| {f_s(min(walls))}–{f_s(max(walls))} | {f_s(su) if su else '—'} "
            f"| {f'{100 * su * len(runs) / wall:.0f} %' if su else '—'} |"
        )
    sweep_wall, at_a_time = projected_wall(total, measured)
    n_cells = len(grid["p"]) * len(grid["lam"]) * len(grid["seeds"])
    size = (cfg["network"]["N"], cfg["simulation"]["T_ms"])
    lines += [
        "",
        f"Projected: the whole sweep ({len(grid['p'])} p × {len(grid['lam'])} λ × "
        f"{len(grid['seeds'])} seeds = {n_cells} cells; seconds)"
        + (
            f", at the slice's N = {size[0]} and T = {size[1] / 1000:g} s, not the sweep's "
            f"N = {grid['N']}, T = {grid['T_ms'] / 1000:g} s: a test of the mode, not a "
            "projection of the paper's cost"
            if size != (grid["N"], grid["T_ms"])
            else ""
        )
        + ":",
        "",
    ]
    lines += md_head(["stage", "jobs", "job wall Σ", "CPU Σ", "start-up Σ (jobs × start-up)"])
    for stage in STAGES:
        if stage not in total:
            continue
        t = total[stage]
        su = startup.get(stage)
        lines.append(
            f"| {stage} | {t['jobs']} | {f_s(t['wall_s'])} | {f_s(t['cpu_s'])} "
            f"| {f_s(su * t['jobs']) if su else '—'} |"
        )
    job_s = sum(t["wall_s"] for t in total.values())
    rows_md = md_head(["λ", "measured as λ", *(f"{s} wall Σ" for s in CELL_STAGES)])
    measured_rows = sorted({lam for _, lam in cells})
    for lam in grid["lam"]:
        source = min(measured_rows, key=lambda r: (abs(r - lam), -r))
        walls = [total[s]["by_row"][lam] for s in CELL_STAGES]
        rows_md.append(f"| {lam:g} | {source:g} | " + " | ".join(map(f_s, walls)) + " |")
    startup_s = sum(startup.get(s, 0.0) * t["jobs"] for s, t in total.items())
    ok = "MET" if sweep_wall <= GOAL_SWEEP_S else "NOT MET"
    lines += [
        f"| all | {sum(t['jobs'] for t in total.values())} | {f_s(job_s)} "
        f"| {f_s(sum(t['cpu_s'] for t in total.values()))} | {f_s(startup_s)} |",
        "",
        "Per λ row of the sweep (job-seconds):",
        "",
        *rows_md,
        "",
        f"- the whole sweep on {cores} cores: **{sweep_wall / 3600:.2f} h** wall "
        f"(job-seconds over {at_a_time:.2f}, the jobs the slice ran at a time on average; "
        f"gather{' and figures' if 'figures' in total else ''} after); "
        f"goal ≤ {GOAL_SWEEP_S / 3600:g} h: {ok}"
        + ("" if "figures" in total else " (figures not run: `--figures` adds them)"),
        f"- fixed start-up: {f_s(startup_s)} job-seconds, {f_s(startup_s / at_a_time / 60)} min "
        f"of the wall ({100 * startup_s / job_s:.1f} % of the job-seconds)"
        if startup
        else "- fixed start-up: not measured (`--startup-repeat 0`): the fit and gather jobs "
        "scaled whole, start-up included (an overestimate)",
    ]
    if "chain" in startup:
        saved = startup["chain"] * len(grid["p"]) * len(grid["lam"]) * len(grid["seeds"])
        lines.append(
            f"- lever, masses and compare of a seed in one process (every arrow still a file): "
            f"{startup['chain']:.2f} s saved per seed (measured on the tiny cell), "
            f"{f_s(saved)} job-seconds, {f_s(saved / at_a_time / 60)} min of the wall"
        )
    lines += [
        "",
        "Method: every job's wall and CPU seconds from GNU time around its `nmmval`; the "
        f"jobs run up to {cores} at a time, one thread each, as a user's local run does, so a "
        "job's wall includes what the others cost it. Per <p, λ> of the grid, a stage costs "
        "what the measured cell costs per seed: the nearest measured λ row (a tie: the larger "
        "λ, which fires more), linear in p between the measured p; times the grid's seeds. "
        "The fit's work (job − start-up) scales with the seeds it pools; gather's with the "
        "compare.nc files it reads; figures once as measured. The sweep's wall: the projected "
        "job-seconds of the cell jobs over the jobs the slice ran at a time, then gather "
        "(and figures). Start-up per job: `benchmarks/startup.py` (median of runs on a tiny "
        "cell, the same nmmval, outside Snakemake).",
    ]
    return "\n".join(lines)


def run(args) -> int:
    """``bench.py sweep``: warm up, measure the start-up, run the slice, project, report."""
    paper = yaml.safe_load(Path(args.config).read_text())
    grid = dict(paper["grid"], N=paper["network"]["N"], T_ms=paper["simulation"]["T_ms"])
    rows = args.rows or (QUICK["rows"] if args.quick else [0.8, 0.9, 1.0])
    ps = args.p or (QUICK["p"] if args.quick else grid["p"])
    N = args.N or (QUICK["N"] if args.quick else grid["N"])
    T_ms = args.T_ms or (QUICK["T_ms"] if args.quick else grid["T_ms"])
    name = "sweep" + ("_quick" if args.quick else "")
    info = machine()
    warm = slice_config(paper, "warmup", sorted({ps[0], 0.5, ps[-1]}), rows, 1, **WARMUP)
    run_workflow(args.outdir, warm, args.cores, False, "warm-up (untimed)")
    startup = {}
    if args.startup_repeat > 0:
        su = measure_startup(args.outdir / "startup", args.startup_repeat, {"sweep": ROOT / "src"})
        startup = {s: r["startup_s"] for s, r in su["sides"]["sweep"]["stages"].items()}
        startup["chain"] = su["sides"]["sweep"]["chain"]["saving_s"]
    cfg = slice_config(paper, name, ps, rows, args.seeds, N, T_ms)
    info["load_avg"] = os.getloadavg()
    measured = run_workflow(args.outdir, cfg, args.cores, args.figures, name)
    info["load_avg_end"] = os.getloadavg()
    cells = per_cell(measured["jobs"], args.outdir)
    total = project(cells, measured["jobs"], startup, grid)
    md = report(args, info, cfg, measured, cells, startup, total, grid)
    raw = {"info": info, "config": cfg, "measured": measured, "startup": startup}
    raw |= {"cells": {f"p={p:g} lam={lam:g}": c for (p, lam), c in cells.items()}}
    raw["projection"] = total
    (args.outdir / f"{name}.md").write_text(md + "\n")
    return emit(name, md, raw)
