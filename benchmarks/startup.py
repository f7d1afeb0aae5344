"""The fixed start-up of a workflow job: what ``nmmval <stage>`` pays before it works.

Usage (from the repository root)::

    python benchmarks/startup.py                 # median of 7 runs per stage
    python benchmarks/startup.py --before REV    # and a commit's, runs interleaved

Each stage's subcommand runs on the inputs of a tiny cell (N = 200,
T = 0.5 s, two seeds, made once and untimed first, which also fills Numba's
cache), ``--repeat`` times in fresh processes: ``python -m nmmval.cli
<stage> …``, as the workflow's jobs run it. Per stage (medians):

- job: wall and CPU seconds of the whole process;
- interpreter: ``python -c pass``;
- imports: ``import nmmval.cli, <the stage's module>``, timed in the process;
- work: the same subcommand's second call in one process (``nmmval.cli.main`` twice):
  the tiny cell's own work, reading and writing included;
- start-up = job − work (wall, and CPU): interpreter, imports, the first call's one-time costs
  (Numba's cache load of the kernels and the SciPy import it triggers,
  the registries Numba loads before its first function);
- rest = start-up − interpreter − imports: the first call's one-time costs and the
  process's exit;
- libraries' floor: a process that imports every module the stage's job has loaded
  when it ends except nmmval's own (the libraries, and the modules Numba and xarray
  load on first use), calls one trivial function from Numba's cache (Numba's
  first-function costs) and exits as nmmval does: what any job built on these
  libraries pays, whatever nmmval's own code does.

The children run as the workflow's one-thread jobs run (the thread counts of
the BLAS and OpenMP pools set to 1, as Snakemake sets them), with
``PYTHONDONTWRITEBYTECODE`` unset, so that nmmval's own
modules are read as cached bytecode, as in an installed package (an
environment that sets it compiles them anew in every process), and Numba's
cache in ``NUMBA_CACHE_DIR`` (default the workflow's, ``~/.cache/nmmval/numba``).
With ``--before REV`` that commit (a git worktree under ``benchmarks/out/``)
is measured too, its runs interleaved with this checkout's. The table goes to
``<outdir>/startup.md`` (+ .json) and ``benchmarks/out/startup.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml
from bench import checkout, machine

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
#: goal of issue 19: fixed start-up per job
GOAL_STARTUP_S = 0.5
#: the tiny cell: config/config.yaml with these changes
TINY = {
    "run": "startup",
    "network": {"N": 200},
    "simulation": {"T_ms": 500.0, "T0_ms": 100.0},
    "analysis": {"welch_segment_ms": 100.0, "max_lag_ms": 50.0},
    "grid": {"p": [0.3], "lam": [0.8], "seeds": [0, 1]},
    "figures": {"diagnostic_cells": [{"p": 0.3, "lam": 0.8}]},
}
#: the module each stage's subcommand imports (nmmval.cli's cmd_<stage>)
STAGE_MODULES = {
    "simulate": "nmmval.simulation",
    "fit": "nmmval.fit",
    "masses": "nmmval.masses",
    "compare": "nmmval.compare",
    "gather": "nmmval.cube",
}


#: what Snakemake sets for a job of one thread (snakemake/shell.py): its BLAS and OpenMP
#: pools one thread (two idle OpenBLAS threads cost a masses or compare job 0.2 s of CPU)
ONE_THREAD = {
    name: "1"
    for name in ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    + ("MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
}


def child_env(src: Path) -> dict:
    """The environment of the timed processes: nmmval from ``src``, bytecode cached, one
    thread as in a workflow job."""
    env = dict(os.environ) | ONE_THREAD
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    env.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "nmmval" / "numba"))
    return env


def tiny_config(outdir: Path) -> Path:
    """Write the tiny cell's config into ``outdir``; return its path."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for key, value in TINY.items():
        if isinstance(value, dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    path = outdir / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def stage_args(outdir: Path, config: Path) -> dict[str, list[list[str]]]:
    """The subcommands of the tiny cell, by stage, in the workflow's order."""
    cell = outdir / "results" / "cells" / "p~0.300" / "lam~0.800"
    net, mas, com = (
        [str(cell / f"seed~{s:04d}" / name) for s in (0, 1)]
        for name in ("network.nc", "masses.nc", "compare.nc")
    )
    fit, c = str(cell / "fit.nc"), ["--config", str(config)]
    args = "--p 0.3 --lam 0.8 --threads 1 --seed".split()
    return {
        "simulate": [["simulate", *c, *args, str(s), "--out", net[s]] for s in (0, 1)],
        "fit": [["fit", *c, "--network", *net, "--out", fit]],
        "masses": [
            ["masses", *c, "--network", n, "--fit", fit, "--out", m]
            for n, m in zip(net, mas, strict=True)
        ],
        "compare": [
            ["compare", *c, "--network", n, "--masses", m, "--out", o]
            for n, m, o in zip(net, mas, com, strict=True)
        ],
        "gather": [
            ["gather", *c, "--results", str(outdir / "results"), "--out", str(outdir / "cube.nc")]
        ],
    }


def timed(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """Run ``cmd``; return its wall and CPU seconds (user + system) and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {r.returncode}):\n{r.stderr}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, r.stdout


#: import the CLI and a stage's module; print the wall seconds it took
_IMPORTS = (
    "import time\n"
    "t0 = time.perf_counter()\n"
    "import nmmval.cli, {}\n"
    "print(time.perf_counter() - t0)\n"
)
#: the stages run one after the other in one process (lever: one process per cell for the
#: analysis, every arrow still a file), the subcommands as a JSON list of argument lists
CHAIN = ("masses", "compare")
_CHAIN = (
    "import gc, json, sys\n"
    "from nmmval import cli\n"
    "codes = [cli.main(argv) for argv in json.loads(sys.argv[1])]\n"
    "gc.freeze()\n"
    "sys.exit(max(codes))\n"
)
#: run a subcommand twice in one process; print the second call's wall and CPU seconds
_WARM = (
    "import sys, time\n"
    "from nmmval import cli\n"
    "cli.main(sys.argv[1:])\n"
    "t0, c0 = time.perf_counter(), time.process_time()\n"
    "cli.main(sys.argv[1:])\n"
    "print(time.perf_counter() - t0, time.process_time() - c0)\n"
)


#: after a subcommand's call, print the names of the modules the process holds that are
#: not nmmval's own (JSON, in import order)
_MODULES = (
    "import json, sys\n"
    "from nmmval import cli\n"
    "cli.main(sys.argv[1:])\n"
    "names = [n for n in sys.modules if n != '__main__' and n.split('.')[0] != 'nmmval']\n"
    "print(json.dumps(names))\n"
)
#: the libraries' floor: import the modules listed in a JSON file (argv[1]), call a trivial
#: function from Numba's cache (module ``floorfn`` in argv[2]) when Numba is among them,
#: exit as nmmval's console script does; print how many modules would not import
_FLOOR = (
    "import gc, importlib, json, sys\n"
    "names = json.load(open(sys.argv[1]))\n"
    "failed = 0\n"
    "for name in names:\n"
    "    try:\n"
    "        importlib.import_module(name)\n"
    "    except Exception:\n"
    "        failed += 1\n"
    "if 'numba' in names:\n"
    "    sys.path.insert(0, sys.argv[2])\n"
    "    import floorfn\n"
    "    floorfn.one(1.0)\n"
    "print(failed)\n"
    "gc.freeze()\n"
)
#: the trivial function of the floor, compiled into Numba's cache by the untimed first run
_FLOORFN = "import numba\n\n\n@numba.njit(cache=True)\ndef one(x):\n    return x + 1.0\n"


def floor_inputs(folder: Path, stages: dict, env: dict) -> dict[str, Path]:
    """Per stage, the JSON list of the non-nmmval modules its job holds at the end; the
    floor's trivial Numba function written to ``folder`` and cached (untimed)."""
    py = sys.executable
    (folder / "floorfn.py").write_text(_FLOORFN)
    lists = {}
    for stage, argvs in stages.items():
        names = timed([py, "-c", _MODULES, *argvs[0]], env)[2].splitlines()[-1]
        lists[stage] = folder / f"modules-{stage}.json"
        lists[stage].write_text(names)
        timed([py, "-c", _FLOOR, str(lists[stage]), str(folder)], env)
    return lists


def measure(outdir: Path, repeat: int, sides: dict[str, Path]) -> dict:
    """Median start-up of every stage (module notes) for each side (label: nmmval's
    source folder), the sides' runs interleaved so that they see the same load; the raw
    runs too."""
    py = sys.executable
    envs = {label: child_env(src) for label, src in sides.items()}
    stages = {}
    for label, env in envs.items():
        folder = outdir / label.replace(" ", "_")
        folder.mkdir(parents=True, exist_ok=True)
        stages[label] = stage_args(folder, tiny_config(folder))
        for argvs in stages[label].values():  # inputs, Numba's cache, bytecode: untimed
            for argv in argvs:
                timed([py, "-m", "nmmval.cli", *argv], env)
    first = next(iter(envs.values()))
    # the floor: the modules of this checkout's jobs (the last side), in its environment
    last = next(reversed(sides))
    floor_dir = outdir / "floor"
    floor_dir.mkdir(parents=True, exist_ok=True)
    floor_lists = floor_inputs(floor_dir, stages[last], envs[last])
    interpreter = statistics.median(timed([py, "-c", "pass"], first)[0] for _ in range(repeat))
    runs = {label: {} for label in sides}
    floors = {}
    for stage in STAGE_MODULES:
        for label in sides:
            runs[label][stage] = {"jobs": [], "imports": [], "work": []}
        floor_cmd, floor_runs = [py, "-c", _FLOOR, str(floor_lists[stage]), str(floor_dir)], []
        for _ in range(repeat):
            wall, _cpu, failed = timed(floor_cmd, envs[last])
            floor_runs.append((wall, int(failed)))
            for label, env in envs.items():
                argv, r = stages[label][stage][0], runs[label][stage]
                r["jobs"].append(timed([py, "-m", "nmmval.cli", *argv], env)[:2])
                imports = _IMPORTS.format(STAGE_MODULES[stage])
                r["imports"].append(float(timed([py, "-c", imports], env)[2]))
                r["work"].append(tuple(map(float, timed([py, "-c", _WARM, *argv], env)[2].split())))
        floors[stage] = {
            "wall_s": statistics.median(w for w, _ in floor_runs),
            "modules": len(json.loads(floor_lists[stage].read_text())),
            "not_imported": max(f for _, f in floor_runs),
            "runs": floor_runs,
        }
    chains = {label: [] for label in sides}
    for _ in range(repeat):
        for label, env in envs.items():
            argvs = json.dumps([stages[label][stage][0] for stage in CHAIN])
            chains[label].append(timed([py, "-c", _CHAIN, argvs], env)[0])
    result = {}
    for label in sides:
        rows = {}
        for stage, r in runs[label].items():
            job_s = statistics.median(w for w, _ in r["jobs"])
            job_cpu_s = statistics.median(c for _, c in r["jobs"])
            work_s = statistics.median(w for w, _ in r["work"])
            imports_s = statistics.median(r["imports"])
            rows[stage] = {
                "job_wall_s": job_s,
                "job_cpu_s": job_cpu_s,
                "imports_s": imports_s,
                "work_s": work_s,
                "startup_s": job_s - work_s,
                "startup_cpu_s": job_cpu_s - statistics.median(c for _, c in r["work"]),
                "rest_s": job_s - work_s - interpreter - imports_s,
                "runs": r,
            }
            log(f"{label}, {stage}: job {job_s:.2f} s, start-up {job_s - work_s:.2f} s")
        chain_s = statistics.median(chains[label])
        separate_s = sum(rows[stage]["job_wall_s"] for stage in CHAIN)
        result[label] = {
            "src": str(sides[label]),
            "stages": rows,
            "chain": {"wall_s": chain_s, "saving_s": separate_s - chain_s, "runs": chains[label]},
        }
    return {"interpreter_s": interpreter, "repeat": repeat, "sides": result, "floor": floors}


def table(result: dict) -> str:
    """The start-up table (Markdown): per stage and side, with the goal's verdict."""
    cols = ["stage", "nmmval", "job wall s", "job CPU s", "interpreter", "imports"]
    cols += ["rest", "work", "start-up s", "start-up CPU s", f"start-up ≤ {GOAL_STARTUP_S:g} s"]
    cols += ["libraries' floor s", "start-up / floor"]
    sides = result["sides"]
    first = next(iter(sides))
    if len(sides) > 1:
        cols.append(f"start-up vs {first}")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for stage in STAGE_MODULES:
        for label, side in sides.items():
            r = side["stages"][stage]
            keys = ("job_wall_s", "job_cpu_s", "imports_s", "rest_s", "work_s", "startup_s")
            keys += ("startup_cpu_s",)
            nums = [f"{r[k]:.2f}" for k in keys]
            cells = [stage, label, *nums[:2], f"{result['interpreter_s']:.2f}", *nums[2:]]
            cells.append("met" if r["startup_s"] <= GOAL_STARTUP_S else "NOT met")
            floor_s = result["floor"][stage]["wall_s"]
            cells += [f"{floor_s:.2f}", f"{r['startup_s'] / floor_s:.2f}"]
            if len(sides) > 1:
                delta = r["startup_s"] - sides[first]["stages"][stage]["startup_s"]
                cells.append("" if label == first else f"{delta:+.2f}")
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for stage, floor in result["floor"].items():
        reach = "reachable" if floor["wall_s"] <= GOAL_STARTUP_S else "out of reach"
        lines.append(
            f"- {stage}: the libraries' floor {floor['wall_s']:.2f} s ({floor['modules']} "
            f"modules, {floor['not_imported']} of them not importable alone): a start-up of "
            f"{GOAL_STARTUP_S:g} s is {reach} on these libraries"
        )
    for label, side in sides.items():
        chain = side["chain"]
        lines.append(
            f"- {label}: {' and '.join(CHAIN)} of one seed in one process "
            f"{chain['wall_s']:.2f} s, against {chain['wall_s'] + chain['saving_s']:.2f} s "
            f"as two jobs: {chain['saving_s']:.2f} s saved per seed"
        )
    return "\n".join(lines)


def log(msg: str) -> None:
    print(f"[startup {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7, help="runs per stage (median; default 7)")
    ap.add_argument(
        "--before", metavar="REV", help="also measure this commit (a git worktree), interleaved"
    )
    ap.add_argument(
        "--outdir",
        type=Path,
        default=Path("/tmp/nmmval-startup"),
        help="folder of the tiny cell's files (default /tmp/nmmval-startup)",
    )
    args = ap.parse_args(argv)
    info = machine()
    sides = {}
    if args.before:
        sha, _subject, path = checkout(args.before)
        sides[f"before ({sha})"] = path / "src"
    sides["this checkout"] = ROOT / "src"
    result = measure(args.outdir, args.repeat, sides)
    info["load_avg_end"] = os.getloadavg()
    result["info"] = info
    md = "\n\n".join(
        [
            f"### Start-up per job: median of {args.repeat} runs per stage (seconds)",
            f"- date: {info['date']}; nmmval commit {info['commit']}\n"
            f"- machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}\n"
            "- load average (1, 5, 15 min) at start: "
            f"{', '.join(f'{x:.2f}' for x in info['load_avg'])}; at end: "
            f"{', '.join(f'{x:.2f}' for x in info['load_avg_end'])}",
            table(result),
            "job: `python -m nmmval.cli <stage>` on a tiny cell (N = 200, T = 0.5 s), the "
            "whole process; work: the same subcommand's second call in one process; "
            "start-up = job − work (and in CPU seconds); interpreter: `python -c pass`; "
            "imports: `import nmmval.cli, <stage module>` timed in the process; "
            "rest = start-up − interpreter − imports (the first call's one-time costs: "
            "Numba's target and cache load and the SciPy import it triggers, the config; "
            "and the exit); libraries' floor: a process importing every module the stage's "
            "job holds at its end except nmmval's own, calling one trivial function from "
            "Numba's cache, exiting as nmmval does (whole process, wall).",
        ]
    )
    for folder in (args.outdir, OUT):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "startup.md").write_text(md + "\n")
        (folder / "startup.json").write_text(json.dumps(result, indent=1))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
