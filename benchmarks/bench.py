"""Benchmark nmmval's network simulator against Brian2 and NEST 3, and its scaling in N.

Usage (from the repository root)::

    python benchmarks/bench.py compare            # nmmval, Brian2, NEST at 1 and 2 threads each
    python benchmarks/bench.py coba               # the COBA benchmark on all three, 1 and 2 threads
    python benchmarks/bench.py scaling            # nmmval alone, N = 1e3, 1e4, 1e5
    python benchmarks/bench.py compare --quick    # smoke run: N = 2000, T = 0.2 s
    python benchmarks/bench.py coba --quick       # smoke run: T = 0.2 s
    python benchmarks/bench.py scaling --quick
    python benchmarks/bench.py revisions REV1 REV2 ...  # nmmval at earlier commits, side by side
    python benchmarks/bench.py busy --before REV  # default vs 1 thread, idle and beside 2 busy
    python benchmarks/bench.py recordings --before REV  # the loop's cost of the recordings
    python benchmarks/bench.py sweep              # the paper sweep's wall time (sweep.py)

``compare`` and ``coba`` create ``benchmarks/.venv-brian2`` (Brian2 + pyyaml,
Brian2 pins numpy) and ``benchmarks/.venv-nest`` (NEST 3 from PyPI + pyyaml)
on first use. Every simulation runs as its own process
(``benchmarks/nmmval_net.py``, ``benchmarks/brian2_net.py``,
``benchmarks/nest_net.py``), so that the whole-process wall time (Python
start, imports, JIT-cache load or code generation and compilation, graph
build, simulation) and the peak RSS are measured the same way for all;
Brian2's process compiles once and runs every cell of one thread count. The
table is printed as Markdown and also written to ``benchmarks/out/<mode>.md``
(with the raw numbers in ``.json``). See benchmarks/README.md for what each
column means.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from procstat import RESULT_PREFIX, parse_cells

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
BRIAN2_VENV = HERE / ".venv-brian2"
BRIAN2_PY = BRIAN2_VENV / "bin" / "python"
#: Brian2 2.9.0 calls ``np.ndarray.ptp``, which numpy 2.4 removed
BRIAN2_REQUIREMENTS = ["brian2==2.9.0", "numpy<2.4", "pyyaml"]
NEST_VENV = HERE / ".venv-nest"
NEST_PY = NEST_VENV / "bin" / "python"
NEST_REQUIREMENTS = ["nest-simulator==3.10.0", "pyyaml"]
#: the order of the rows of a cell: the peers, then nmmval with its ratios
ROW_ORDER = ("brian2", "nest", "nmmval")
SIDE_NAMES = {"nmmval": "nmmval", "brian2": "Brian2", "nest": "NEST"}

#: the compare mode's cells (p, λ) of the paper network: λ = 0.8 across p, and fast synchrony
COMPARE_CELLS = [(0.01, 0.8), (0.1, 0.8), (0.5, 0.8), (1.0, 0.8), (0.5, 0.9)]
QUICK_CELLS = [(0.01, 0.8), (0.5, 0.8), (0.5, 0.9)]
#: goals of issue 19: per-cell cost against the faster peer, COBA whole process, loop/floor
GOAL_PEER_RATIO = 8.0
GOAL_COBA_RATIO = 2.0
GOAL_LOOP_OVER_FLOOR_19 = 1.5
#: published single-core COBA figures, for context (another machine: i7-4770K; Ahmad et
#: al., Spike benchmark data): seconds per 100 s of COBA
COBA_PUBLISHED = "Auryn 12.8 s, Brian2 24.3 s"
SCALING_N = [1_000, 10_000, 100_000]
QUICK_SCALING_N = [500, 1_000, 2_000]
#: goals of issue 6
GOAL_WHOLE_RATIO = 10.0
GOAL_RSS_P1_BYTES = 1e9
GOAL_LOOP_OVER_FLOOR = 2.0
#: goal of issue 14: beside two busy processes, the default thread count no
#: slower than this times one thread
GOAL_BUSY_RATIO = 1.3
#: the busy mode's cells: (label, config, N, T ms, p, λ)
BUSY_CELLS = [
    ("README cell", "config/config.yaml", 2000, 3000.0, 0.3, 0.8),
    ("paper network", "config/paper.yaml", 10_000, 1000.0, 0.01, 0.8),
]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- environment


def ensure_venv(venv: Path, requirements: list[str], module: str) -> str:
    """Create ``venv`` with ``requirements`` if it cannot import ``module``; return its version."""
    py = venv / "bin" / "python"
    check = [str(py), "-c", f"import {module}, yaml; print({module}.__version__)"]
    env = dict(os.environ, PYNEST_QUIET="1")
    if py.exists():
        r = subprocess.run(check, capture_output=True, text=True, env=env)
        if r.returncode == 0:
            return r.stdout.strip().splitlines()[-1]
        log(f"{venv} exists but cannot import {module}; reinstalling")
    else:
        log(f"creating {venv} (python3 -m venv) and installing {' '.join(requirements)}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", *requirements], check=True)
    r = subprocess.run(check, capture_output=True, text=True, check=True, env=env)
    return r.stdout.strip().splitlines()[-1]


def ensure_peers(sides: list[str]) -> dict:
    """The peers' environments (created on first use); their versions for the header."""
    versions = {}
    if "brian2" in sides:
        versions["brian2"] = ensure_venv(BRIAN2_VENV, BRIAN2_REQUIREMENTS, "brian2")
    if "nest" in sides:
        versions["nest"] = ensure_venv(NEST_VENV, NEST_REQUIREMENTS, "nest")
    return versions


def machine() -> dict:
    """CPU model, core count, load average, date, commit: the table's header."""
    model = platform.processor() or "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        fields = dict(
            (k.strip(), v.strip())
            for k, v in (ln.split(":", 1) for ln in out.splitlines() if ":" in ln)
        )
        model = fields.get("Model name", model)
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "-uno", "--", "src"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        commit += " (src/ modified)" if dirty else ""
    except OSError:
        commit = "unknown"
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    return {
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": model,
        "cores": os.cpu_count(),
        "mem_GB": round(mem_gb, 1),
        "load_avg": os.getloadavg(),
        "python": platform.python_version(),
        "commit": commit,
    }


# ---------------------------------------------------------------- children


def run_process(
    cmd: list[str], label: str, env_extra: dict | None = None
) -> tuple[list[dict], float]:
    """Run one benchmark process; return its BENCH_RESULT lines and its wall time (s)."""
    log(f"{label}: {' '.join(cmd[1:])}")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if "nmmval_net.py" in cmd[1]:
        env.update(NMMVAL_ENV)
    env.update(env_extra or {})
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    OUT.mkdir(exist_ok=True)
    (OUT / f"{label}.log").write_text(r.stdout + "\n--- stderr ---\n" + r.stderr)
    if r.returncode != 0:
        raise RuntimeError(f"{label} failed (exit {r.returncode}); see {OUT / (label + '.log')}")
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if not lines:
        raise RuntimeError(f"{label}: no BENCH_RESULT line; see {OUT / (label + '.log')}")
    return [json.loads(ln.removeprefix(RESULT_PREFIX)) for ln in lines], wall


def derive(res: dict, label: str) -> dict:
    """Add the throughputs and the loop/floor ratio to one result; log it."""
    res["neuron_steps_per_s"] = res["N"] * res["n_steps"] / res["loop_s"]
    res["delivered_per_s"] = (res["delivered_internal"] + res["delivered_external"]) / res["T_s"]
    if "floor_s" in res:
        res["loop_over_floor"] = res["loop_s"] / res["floor_s"]
    log(
        f"{label}: whole {res['whole_s']:.2f} s, loop {res['loop_s']:.2f} s, "
        f"rates {res['rate_E_Hz']:.2f}/{res['rate_I_Hz']:.2f} Hz"
    )
    return res


def run_child(cmd: list[str], label: str, env_extra: dict | None = None) -> dict:
    """Run a one-cell process (nmmval or NEST); return its result plus its wall time.

    ``whole_s`` leaves out what the process does after the simulation for the
    benchmark alone: nmmval's noise floor, NEST's reading back of its counts.
    A sweep runs one such process per cell: ``per_cell_s`` is ``whole_s``."""
    results, wall = run_process(cmd, label, env_extra)
    res = results[-1]
    res["process_wall_s"] = wall
    res["whole_s"] = wall - res.get("floor_section_s", 0.0) - res.get("accounting_s", 0.0)
    res["per_cell_s"] = res["whole_s"]
    return derive(res, label)


def run_brian2_build(cmd: list[str], label: str) -> list[dict]:
    """Run Brian2's process (one build, one run per cell); return the cells' results.

    ``shared_s`` is the process's time outside the cells' runs and the reading
    back of results: interpreter start, import, code generation, compilation,
    exit. Per cell: ``per_cell_s = shared_s / cells + cell_s``, what a sweep
    that reruns the build pays per cell; ``whole_s = shared_s + cell_s``, a
    process that builds and runs that cell alone."""
    results, wall = run_process(cmd, label)
    shared = wall - sum(r["cell_s"] + r["accounting_s"] for r in results)
    for res in results:
        res["process_wall_s"] = wall
        res["shared_s"] = shared
        res["whole_s"] = shared + res["cell_s"]
        res["per_cell_s"] = shared / len(results) + res["cell_s"]
        derive(res, f"{label} p={res['p']:g} lam={res['lam']:g}")
    return results


def best_of(cmd: list[str], label: str, repeat: int, env_extra: dict | None = None) -> dict:
    """Run ``repeat`` times; keep the run with the shortest whole-process time."""
    runs = [
        run_child(cmd, label + (f"_r{i}" if repeat > 1 else ""), env_extra) for i in range(repeat)
    ]
    best = min(runs, key=lambda d: d["whole_s"])
    best["repeats_whole_s"] = [d["whole_s"] for d in runs]
    best["repeats_loop_s"] = [d["loop_s"] for d in runs]
    return best


def best_of_brian2(cmd: list[str], label: str, repeat: int) -> list[dict]:
    """Brian2's build ``repeat`` times; per cell, the run with the shortest per-cell cost."""
    runs = [run_brian2_build(cmd, label + (f"_r{i}" if repeat > 1 else "")) for i in range(repeat)]
    best = []
    for k in range(len(runs[0])):
        cell = min((r[k] for r in runs), key=lambda d: d["per_cell_s"])
        cell["repeats_per_cell_s"] = [r[k]["per_cell_s"] for r in runs]
        cell["repeats_loop_s"] = [r[k]["loop_s"] for r in runs]
        best.append(cell)
    return best


#: the config of this invocation: a snapshot, so that every child reads the same parameters
#: even if config/paper.yaml changes while the benchmark runs
CONFIG_SNAPSHOT = OUT / "config.snapshot.yaml"
#: extra environment variables for the nmmval children (``--nmmval-env``)
NMMVAL_ENV: dict[str, str] = {}


def snapshot_config(path: Path, mode: str) -> dict:
    """Copy the config for this run; return the parameters shown in the header."""
    import yaml

    global CONFIG_SNAPSHOT
    OUT.mkdir(exist_ok=True)
    text = path.read_text()
    CONFIG_SNAPSHOT = OUT / f"{mode}.config.yaml"
    CONFIG_SNAPSHOT.write_text(text)
    cfg = yaml.safe_load(text)
    net, neu = cfg["network"], cfg["neuron"]
    return {
        "config": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
        "params": (
            f"ĝ_E/ĝ_I/ĝ_ext = {net['g_hat_E_nSms']}/{net['g_hat_I_nSms']}/"
            f"{net['g_hat_ext_nSms']} nS·ms, p_ext = {net['p_ext']}, "
            f"Q = {neu['noise_Q_V2ms'] * 1e6:g} mV²·ms, M = {net['M']}, "
            f"ν_ext = {net['nu_ext_Hz']} Hz"
        ),
    }


def nmmval_cmd(
    p: float, N: int, T_ms: float, threads: int, floor: bool = True, lam: float = 0.8
) -> list[str]:
    cmd = [sys.executable, str(HERE / "nmmval_net.py"), "--p", repr(p), "--lam", repr(lam)]
    cmd += ["--N", str(N), "--T-ms", repr(T_ms), "--threads", str(threads)]
    cmd += ["--config", str(CONFIG_SNAPSHOT)]
    return cmd + ([] if floor else ["--no-floor"])


def brian2_cmd(
    cells: list[tuple[float, float]], N: int, T_ms: float, threads: int, build_dir: Path
) -> list[str]:
    cmd = [str(BRIAN2_PY), str(HERE / "brian2_net.py"), "--cells"]
    cmd += [f"{p!r}:{lam!r}" for p, lam in cells]
    cmd += ["--N", str(N), "--T-ms", repr(T_ms), "--threads", str(threads)]
    return cmd + ["--build-dir", str(build_dir), "--config", str(CONFIG_SNAPSHOT)]


def nest_cmd(p: float, lam: float, N: int, T_ms: float, threads: int) -> list[str]:
    cmd = [str(NEST_PY), str(HERE / "nest_net.py"), "--p", repr(p), "--lam", repr(lam)]
    cmd += ["--N", str(N), "--T-ms", repr(T_ms), "--threads", str(threads)]
    return cmd + ["--config", str(CONFIG_SNAPSHOT)]


def run_sides(
    sides: list[str],
    cells: list[tuple[float, float]],
    N: int,
    T_ms: float,
    threads: int,
    repeat: int,
    tag: str,
) -> list[dict]:
    """Every side on every cell at ``threads`` threads: rows {cell, threads, side: result}.

    nmmval and NEST run one process per cell (as a sweep runs them); Brian2
    one process for all the cells, compiled once."""
    rows = [{"p": p, "lam": lam, "threads": threads} for p, lam in cells]
    for row in rows:
        name = f"{tag}_N{N}_p{row['p']:g}_lam{row['lam']:g}_thr{threads}"
        if "nmmval" in sides:
            cmd = nmmval_cmd(row["p"], N, T_ms, threads, lam=row["lam"])
            row["nmmval"] = best_of(cmd, f"nmmval_{name}", repeat)
        if "nest" in sides:
            cmd = nest_cmd(row["p"], row["lam"], N, T_ms, threads)
            row["nest"] = best_of(cmd, f"nest_{name}", repeat)
    if "brian2" in sides:
        build = OUT / f"brian2_{tag}_N{N}_thr{threads}"
        cmd = brian2_cmd(cells, N, T_ms, threads, build)
        for row, res in zip(rows, best_of_brian2(cmd, build.name, repeat), strict=True):
            row["brian2"] = res
    return rows


# ---------------------------------------------------------------- formatting


def f_s(x: float) -> str:
    return "—" if x is None or not math.isfinite(x) else (f"{x:.2f}" if x < 100 else f"{x:.0f}")


def f_e(x: float) -> str:
    if x is None or not math.isfinite(x) or x <= 0:
        return "0" if x == 0 else "—"
    e = int(math.floor(math.log10(x)))
    return f"{x / 10**e:.1f}e{e}"


def f_gb(b: float) -> str:
    return f"{b / 1e9:.2f}"


def header(info: dict, extra: str) -> str:
    la = ", ".join(f"{x:.2f}" for x in info["load_avg"])
    return (
        f"{extra}\n\n"
        f"- date: {info['date']}; nmmval commit {info['commit']}\n"
        f"- machine: {info['cpu']}, {info['cores']} cores, {info['mem_GB']} GB RAM, "
        f"Python {info['python']}\n"
        f"- parameters: {info['config']} ({info['params']})\n"
        + (
            f"- peers: {', '.join(f'{SIDE_NAMES[k]} {v}' for k, v in info['peers'].items())}\n"
            if info.get("peers")
            else ""
        )
        + (
            f"- nmmval environment: {' '.join(f'{k}={v}' for k, v in NMMVAL_ENV.items())}\n"
            if NMMVAL_ENV
            else ""
        )
        + f"- load average (1, 5, 15 min) at start: {la}"
        + (
            f"; at end: {', '.join(f'{x:.2f}' for x in info['load_avg_end'])}"
            if "load_avg_end" in info
            else ""
        )
    )


def md_head(cols: list[str]) -> list[str]:
    """The header and rule lines of a Markdown table with columns ``cols``."""
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]


def faster_peer(row: dict, key: str) -> tuple[str, dict] | None:
    """(name, result) of the peer (Brian2 or NEST) with the smaller ``key`` in ``row``."""
    peers = [(SIDE_NAMES[s], row[s]) for s in ("brian2", "nest") if row.get(s)]
    return min(peers, key=lambda x: x[1][key]) if peers else None


def peer_ratio(row: dict, key: str) -> str:
    """nmmval's speed-up on ``key`` against the faster peer, e.g. ``12.3× (NEST)``."""
    peer = faster_peer(row, key)
    if peer is None or not row.get("nmmval"):
        return ""
    return f"{peer[1][key] / row['nmmval'][key]:.1f}× ({peer[0]})"


def cell_label(row: dict) -> str:
    return f"p = {row['p']:g}, λ = {row['lam']:g}"


def side_results(rows: list[dict]):
    """(row, side, result) of every side that ran, rows in order, sides in ROW_ORDER."""
    for r in rows:
        for side in ROW_ORDER:
            if r.get(side) is not None:
                yield r, side, r[side]


def time_cells(side: str, d: dict) -> list[str]:
    """The compile, build and loop columns of one result (s)."""
    compile_s = f_s(d["compile_s"]) if side == "brian2" else "—"
    return [compile_s, f_s(d["build_s"]), f_s(d["loop_s"])]


def work_cells(side: str, d: dict) -> list[str]:
    """The columns that show equal work: neuron-steps/s, delivered spikes/s, peak RSS,
    the E and I rates, and nmmval's noise floor."""
    return [
        f_e(d["neuron_steps_per_s"]),
        f_e(d["delivered_per_s"]),
        f_gb(d["peak_rss_bytes"]),
        f"{d['rate_E_Hz']:.2f}",
        f"{d['rate_I_Hz']:.2f}",
        f_s(d.get("floor_s")) if side == "nmmval" else "",
    ]


def compare_table(rows: list[dict]) -> str:
    cols = [
        "cell",
        "threads",
        "simulator",
        "per cell s",
        "whole process s",
        "compile s",
        "build s",
        "loop s",
        "neuron-steps/s",
        "delivered spikes/s",
        "peak RSS GB",
        "rate E Hz",
        "rate I Hz",
        "noise floor s",
        "loop/floor",
        "nmmval vs faster peer, per cell",
        "nmmval vs faster peer, loop",
    ]
    out = md_head(cols)
    for r, side, d in side_results(rows):
        is_n = side == "nmmval"
        cells = [cell_label(r), str(r["threads"]), SIDE_NAMES[side], f_s(d["per_cell_s"])]
        cells += [f_s(d["whole_s"]), *time_cells(side, d), *work_cells(side, d)]
        cells += [
            f"{d['loop_over_floor']:.2f}" if is_n and "loop_over_floor" in d else "",
            f"**{peer_ratio(r, 'per_cell_s')}**" if is_n and peer_ratio(r, "per_cell_s") else "",
            peer_ratio(r, "loop_s") if is_n else "",
        ]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def profile_parts(side: str, d: dict) -> list[float | None]:
    """import, JIT cache / codegen, compile, build, loop (s) of one result; None: none."""
    if side == "nmmval":
        return [d["import_s"], d["jit_s"], None, d["build_s"], d["loop_s"]]
    if side == "brian2":
        return [d["import_s"], d["codegen_s"], d["compile_s"], d["build_s"], d["loop_s"]]
    return [d["import_s"], None, None, d["build_s"], d["loop_s"]]


def profile_table(rows: list[dict]) -> str:
    cols = ["cell", "threads", "simulator", "whole", "import", "JIT cache / codegen", "compile"]
    cols += ["build", "loop", "rest"]
    out = md_head(cols)
    for r, side, d in side_results(rows):
        parts = profile_parts(side, d)
        rest = d["whole_s"] - sum(x for x in parts if x is not None)
        cells = [cell_label(r), str(r["threads"]), SIDE_NAMES[side], f_s(d["whole_s"])]
        cells += [f_s(x) if x is not None else "—" for x in parts]
        out.append("| " + " | ".join(cells + [f_s(rest)]) + " |")
    return "\n".join(out)


def same_work_warnings(rows: list[dict]) -> list[str]:
    """A line for each peer whose rates differ from nmmval's by more than 25 % + 0.5 Hz."""
    lines = []
    for r in rows:
        n = r.get("nmmval")
        for side in ("brian2", "nest"):
            d = r.get(side)
            if not n or not d:
                continue
            for pop in ("E", "I"):
                rp, rn = d[f"rate_{pop}_Hz"], n[f"rate_{pop}_Hz"]
                if max(rp, rn) > 0 and abs(rp - rn) > 0.25 * max(rp, rn) + 0.5:
                    lines.append(
                        f"- warning: {cell_label(r)}, {r['threads']} thr: rate {pop} differs "
                        f"({SIDE_NAMES[side]} {rp:.2f} Hz, nmmval {rn:.2f} Hz): not the same work"
                    )
    return lines


def compare_goals(rows: list[dict]) -> str:
    lines = []
    for threads in sorted({r["threads"] for r in rows}):
        at = [
            r
            for r in rows
            if r["threads"] == threads and r.get("nmmval") and faster_peer(r, "per_cell_s")
        ]
        if at:
            ratios = [
                (r, faster_peer(r, "per_cell_s")[1]["per_cell_s"] / r["nmmval"]["per_cell_s"])
                for r in at
            ]
            ok = min(x for _, x in ratios) >= GOAL_PEER_RATIO
            lines.append(
                f"- {threads} thread(s) each: per cell ≥ {GOAL_PEER_RATIO:g}× faster than the "
                f"faster of Brian2 and NEST at every row: {'MET' if ok else 'NOT MET'} ("
                + ", ".join(f"{cell_label(r)}: {x:.1f}×" for r, x in ratios)
                + ")"
            )
        for r in rows:
            n = r.get("nmmval")
            if r["threads"] == threads and n and (r["p"], r["lam"]) == (0.01, 0.8):
                if "loop_over_floor" in n:
                    ok = n["loop_over_floor"] <= GOAL_LOOP_OVER_FLOOR_19
                    lines.append(
                        f"- {threads} thread(s): loop at λ = 0.8, p = 0.01 within "
                        f"{GOAL_LOOP_OVER_FLOOR_19:g}× of the noise floor: "
                        f"{'MET' if ok else 'NOT MET'} (loop {n['loop_s']:.2f} s, floor "
                        f"{n['floor_s']:.2f} s, ratio {n['loop_over_floor']:.2f})"
                    )
    return "\n".join(lines + same_work_warnings(rows))


def coba_table(rows: list[dict]) -> str:
    cols = [
        "threads",
        "simulator",
        "whole process s",
        "compile s",
        "build s",
        "loop s",
        "loop s per 100 s",
        "whole s for 100 s",
        "neuron-steps/s",
        "delivered spikes/s",
        "peak RSS GB",
        "rate E Hz",
        "rate I Hz",
        "noise floor s",
        "nmmval vs faster peer, whole",
        "nmmval vs faster peer, loop",
    ]
    out = md_head(cols)
    for r, side, d in side_results(rows):
        is_n = side == "nmmval"
        per_100 = 100.0 / d["T_s"]
        cells = [str(r["threads"]), SIDE_NAMES[side], f_s(d["whole_s"]), *time_cells(side, d)]
        cells += [f_s(d["loop_s"] * per_100), f_s(d["whole_s"] + d["loop_s"] * (per_100 - 1.0))]
        cells += [
            *work_cells(side, d),
            f"**{peer_ratio(r, 'whole_s')}**" if is_n and peer_ratio(r, "whole_s") else "",
            peer_ratio(r, "loop_s") if is_n else "",
        ]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def coba_goals(rows: list[dict]) -> str:
    lines = []
    for r in rows:
        peer = faster_peer(r, "whole_s")
        if peer and r.get("nmmval"):
            x = peer[1]["whole_s"] / r["nmmval"]["whole_s"]
            lines.append(
                f"- {r['threads']} thread(s) each: COBA whole process ≥ {GOAL_COBA_RATIO:g}× "
                f"faster than the faster of Brian2 and NEST: "
                f"{'MET' if x >= GOAL_COBA_RATIO else 'NOT MET'} ({x:.1f}× against {peer[0]})"
            )
    return "\n".join(lines + same_work_warnings(rows))


# ---------------------------------------------------------------- modes


def cmd_compare(args) -> int:
    N, T_ms, cells = (2000, 200.0, QUICK_CELLS) if args.quick else (10_000, 1000.0, COMPARE_CELLS)
    if args.cells:
        cells = parse_cells(args.cells)
    info = machine() | snapshot_config(Path(args.config), "compare" + ("_quick" * args.quick))
    sides = args.sides.split(",")
    info["peers"] = ensure_peers(sides)
    rows = []
    for threads in args.threads:
        rows += run_sides(sides, cells, N, T_ms, threads, args.repeat, "compare")
    info["load_avg_end"] = os.getloadavg()
    title = (
        f"### nmmval vs Brian2 (cpp_standalone) and NEST (iaf_cond_exp) at equal threads: "
        f"N = {N}, T = {T_ms / 1000:g} s, dt = 0.1 ms"
        + (" — QUICK smoke run" if args.quick else "")
    )
    note = (
        f"Brian2 compiles once per thread count and runs its {len(cells)} cells from that "
        "build (run_args: p and the number of E cells); its 'per cell' is the shared part of "
        "its process (start, import, code generation, compilation, exit) divided over the "
        "cells plus the cell's own run, its 'whole process' the shared part plus the cell's "
        "run (a process for that cell alone). nmmval and NEST run one process per cell: "
        "'per cell' = 'whole process'. Ratios: the faster peer's time / nmmval's."
    )
    md = "\n\n".join(
        [
            header(info, title),
            compare_table(rows),
            note,
            "Where the time goes (seconds; Brian2: a process for the cell alone):",
            profile_table(rows),
            "Goals (issue 19):",
            compare_goals(rows),
        ]
    )
    return emit("compare" + ("_quick" if args.quick else ""), md, {"info": info, "rows": rows})


def cmd_coba(args) -> int:
    import yaml

    config = Path(args.config)
    info = machine() | snapshot_config(config, "coba" + ("_quick" * args.quick))
    cfg = yaml.safe_load(config.read_text())
    N = int(cfg["network"]["N"])
    cells = [(float(cfg["grid"]["p"][0]), float(cfg["grid"]["lam"][0]))]
    T_ms = 200.0 if args.quick else args.T_ms
    sides = args.sides.split(",")
    info["peers"] = ensure_peers(sides)
    rows = []
    for threads in args.threads:
        rows += run_sides(sides, cells, N, T_ms, threads, args.repeat, "coba")
    info["load_avg_end"] = os.getloadavg()
    title = (
        f"### COBA (Brette et al. 2007, benchmark 1): nmmval, Brian2 and NEST at equal "
        f"threads, N = {N}, p = {cells[0][0]:g}, λ = {cells[0][1]:g}, T = {T_ms / 1000:g} s, "
        "dt = 0.1 ms" + (" — QUICK smoke run" if args.quick else "")
    )
    note = (
        "No external drive, no membrane noise; the published initial state. Each side one "
        "process (Brian2's compilation included in its whole process). 'loop s per 100 s' = "
        "loop × 100 s / T; 'whole s for 100 s' = whole + loop × (100 s / T − 1), the "
        "process for a 100 s run. For context only (another machine, i7-4770K, one core; "
        f"Ahmad et al., Spike benchmark data), per 100 s of COBA: {COBA_PUBLISHED}. "
        "Ratios: the faster peer's time / nmmval's."
    )
    md = "\n\n".join(
        [
            header(info, title),
            coba_table(rows),
            note,
            "Where the time goes (seconds):",
            profile_table(rows),
            "Goals (issue 19):",
            coba_goals(rows),
        ]
    )
    return emit("coba" + ("_quick" if args.quick else ""), md, {"info": info, "rows": rows})


def cmd_scaling(args) -> int:
    if args.quick:
        Ns, T_ms, T_big, k = QUICK_SCALING_N, 200.0, 200.0, 50
    else:
        Ns, T_ms, T_big, k = SCALING_N, 1000.0, args.T_large_ms, 100
    p_fixed = 0.01
    info = machine() | snapshot_config(Path(args.config), "scaling" + ("_quick" * args.quick))
    series = []
    for label, p_of in (
        (f"fixed in-degree k = {k}", lambda n: k / n),
        (f"fixed p = {p_fixed}", None),
    ):
        pts = []
        for N in Ns:
            p = p_of(N) if p_of else p_fixed
            T = T_big if N >= 100_000 else T_ms
            res = best_of(
                nmmval_cmd(p, N, T, args.threads, floor=False),
                f"scaling_N{N}_p{p:g}_T{T:g}",
                args.repeat,
            )
            res["T_ms"] = T
            res["in_degree"] = p * (N - 1)
            rate = (res["rate_E_Hz"] * res["n_E"] + res["rate_I_Hz"] * (N - res["n_E"])) / N
            res["rate_Hz"] = rate
            dt_ms = res["T_s"] * 1e3 / res["n_steps"]
            res["x_formula"] = rate * 1e-3 * res["in_degree"] * dt_ms
            res["step_s"] = res["loop_s"] / res["n_steps"]
            res["unit_s"] = res["step_s"] / (N * (1 + res["x_formula"]))
            pts.append(res)
        series.append((label, pts))
    cols = [
        "series",
        "N",
        "p",
        "in-degree",
        "T s",
        "whole s",
        "build s",
        "loop s",
        "peak RSS GB",
        "rate Hz",
        "rate·k·dt",
        "arrivals/neuron/step (meas.)",
        "time/step µs",
        "time/step / (N(1+rate·k·dt)) ns",
    ]
    lines = md_head(cols)
    verdicts = []
    for label, pts in series:
        for r in pts:
            cells = [
                label,
                str(r["N"]),
                f"{r['p']:g}",
                f"{r['in_degree']:.0f}",
                f"{r['T_s']:g}",
                f_s(r["whole_s"]),
                f_s(r["build_s"]),
                f_s(r["loop_s"]),
                f_gb(r["peak_rss_bytes"]),
                f"{r['rate_Hz']:.2f}",
                f"{r['x_formula']:.3f}",
                f"{r['arrivals_per_neuron_step']:.3f}",
                f"{r['step_s'] * 1e6:.1f}",
                f"{r['unit_s'] * 1e9:.2f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        # growth exponent of time/step against the work N(1 + rate k dt), largest two N
        a, b = pts[-2], pts[-1]
        wa = a["N"] * (1 + a["x_formula"])
        wb = b["N"] * (1 + b["x_formula"])
        expo = math.log(b["step_s"] / a["step_s"]) / math.log(wb / wa)
        ratio = b["unit_s"] / a["unit_s"]
        verdicts.append(
            f"- {label}: time per unit of work at N = {b['N']} is {ratio:.2f}× that at "
            f"N = {a['N']} (time/step ∝ work^{expo:.2f}); growth no faster than linear "
            f"(ratio ≤ 1.25): {'MET' if ratio <= 1.25 else 'NOT MET'}"
        )
    title = f"### nmmval scaling in N ({args.threads} threads): λ = 0.8, dt = 0.1 ms" + (
        " — QUICK smoke run" if args.quick else ""
    )
    note = (
        "time/step = loop / steps; rate = mean rate of all N cells over the run; "
        "rate·k·dt = internal arrivals per neuron per step the formula predicts; the measured "
        "arrivals also count the external drive."
    )
    md = "\n\n".join([header(info, title), "\n".join(lines), note, "\n".join(verdicts)])
    return emit("scaling" + ("_quick" if args.quick else ""), md, {"info": info, "series": series})


def checkout(rev: str) -> tuple[str, str, Path]:
    """A detached worktree of ``rev`` under benchmarks/out/ (reused if present).

    Returns (short hash, subject, worktree path)."""

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, check=True, capture_output=True, text=True)

    sha, subject = git("log", "-1", "--format=%h%x09%s", rev).stdout.strip().split("\t", 1)
    path = OUT / f"rev-{sha}"
    if not (path / "src" / "nmmval").is_dir():
        OUT.mkdir(exist_ok=True)
        git("worktree", "add", "--detach", "--force", str(path), sha)
    return sha, subject, path


def cmd_revisions(args) -> int:
    N, T_ms = (2000, 200.0) if args.quick else (10_000, 1000.0)
    ps = args.p or ([0.01] if args.quick else [0.01, 0.5, 1.0])
    info = machine() | snapshot_config(Path(args.config), "revisions")
    revs = [checkout(r) for r in args.revs]
    rows = []
    # one round of every revision per p, repeated: each row sees the same load
    for sha, _subject, path in revs:  # compile each revision's kernels once, untimed
        run_child(
            nmmval_cmd(0.5, 500, 10.0, args.threads, floor=False),
            f"rev_{sha}_warmup",
            {"PYTHONPATH": str(path / "src")},
        )
    for p in ps:
        for sha, subject, path in revs:
            res = best_of(
                nmmval_cmd(p, N, T_ms, args.threads, floor=False),
                f"rev_{sha}_N{N}_p{p:g}",
                args.repeat,
                {"PYTHONPATH": str(path / "src")},
            )
            rows.append({"p": p, "sha": sha, "subject": subject, **res})
    info["load_avg_end"] = os.getloadavg()
    cols = [
        "p",
        "commit",
        "change",
        "loop s",
        "whole s",
        "rate E Hz",
        "internal arrivals",
        "loop vs first",
    ]
    lines = md_head(cols)
    for r in rows:
        first = next(x for x in rows if x["p"] == r["p"])
        lines.append(
            f"| {r['p']:g} | {r['sha']} | {r['subject'][:70]} | {f_s(r['loop_s'])} "
            f"| {f_s(r['whole_s'])} | {r['rate_E_Hz']:.2f} "
            f"| {r['delivered_internal']:.4g} | {first['loop_s'] / r['loop_s']:.2f}× |"
        )
    title = (
        f"### nmmval at {len(revs)} commits: N = {N}, λ = 0.8, T = {T_ms / 1000:g} s, "
        f"{args.threads} threads, best of {args.repeat}"
    )
    note = (
        "Same parameters and seed at every commit; equal rates and delivered spikes mean the "
        "same work (and, for commits that keep the numbers, the same bits). "
        "'loop vs first' = loop time of the first commit listed / this commit's."
    )
    md = "\n\n".join(
        [
            header(info, title),
            "\n".join(lines),
            note,
        ]
    )
    return emit("revisions", md, {"info": info, "rows": rows})


def busy_processes(n: int) -> list[subprocess.Popen]:
    """Start ``n`` busy processes (``yes > /dev/null``), one core's worth each."""
    return [
        subprocess.Popen(["yes"], stdout=subprocess.DEVNULL, start_new_session=True)
        for _ in range(n)
    ]


def cmd_busy(args) -> int:
    """The thread-count cliff: nmmval's default thread count against one
    thread, on an idle machine and beside two busy processes started and
    ended here, each cell's runs interleaved so that they see the same load;
    with ``--before REV``, that commit's default too (the cliff before)."""
    cells = BUSY_CELLS[:1] if args.quick else BUSY_CELLS
    info = machine()
    info["config"], info["params"] = "see the cells", "λ = 0.8, seed 0"
    sides = [("default", ROOT, 0), ("1 thread", ROOT, 1)]
    if args.before:
        sha, _subject, path = checkout(args.before)
        sides.append((f"default at {sha}", path, 0))
    for label, path, threads in sides:  # compile each side's kernels once, untimed
        run_child(
            nmmval_net_cmd(path, "config/paper.yaml", 500, 10.0, 0.5, 0.8, threads),
            f"busy_warmup_{label.replace(' ', '_')}",
            {"PYTHONPATH": str(path / "src")},
        )
    rows = []
    for n_busy in (0, 2):
        procs = busy_processes(n_busy)
        try:
            time.sleep(0.5)
            for cell in cells:
                runs = {label: [] for label, _, _ in sides}
                for i in range(args.repeat):
                    for label, path, threads in sides:
                        res = run_child(
                            nmmval_net_cmd(path, *cell[1:], threads),
                            f"busy{n_busy}_{cell[2]}_{label.replace(' ', '_')}_r{i}",
                            {"PYTHONPATH": str(path / "src")},
                        )
                        runs[label].append(res)
                for label, _, _ in sides:
                    rows.append({"busy": n_busy, "cell": cell, "side": label, "runs": runs[label]})
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
    info["load_avg_end"] = os.getloadavg()

    def med(row, key):
        return sorted(r[key] for r in row["runs"])[len(row["runs"]) // 2]

    cols = ["busy processes", "cell", "nmmval", "whole s (median)", "loop s (median)"]
    cols += ["loop s (all runs)", "steps by threads", "loop vs 1 thread"]
    lines = md_head(cols)
    verdicts = []
    for row in rows:
        one = next(
            r for r in rows if r["busy"] == row["busy"] and r["cell"] == row["cell"]
            and r["side"] == "1 thread"
        )  # fmt: skip
        ratio = med(row, "loop_s") / med(one, "loop_s")
        steps = row["runs"][-1]["steps_by_threads"]
        lines.append(
            f"| {row['busy']} | {row['cell'][0]} (N = {row['cell'][2]}, p = {row['cell'][4]:g}) "
            f"| {row['side']} | {f_s(med(row, 'whole_s'))} | {f_s(med(row, 'loop_s'))} "
            f"| {', '.join(f_s(r['loop_s']) for r in row['runs'])} "
            f"| {', '.join(f'{k}: {v}' for k, v in sorted(steps.items()))} | {ratio:.2f}× |"
        )
        if row["side"] == "default" and row["busy"] == 2:
            met = "met" if ratio <= GOAL_BUSY_RATIO else "NOT met"
            verdicts.append(
                f"- {row['cell'][0]}, beside 2 busy processes: default / 1 thread = "
                f"{ratio:.2f}× (goal ≤ {GOAL_BUSY_RATIO}×): {met}"
            )
        if row["side"].startswith("default at") and row["busy"] == 0:
            now = next(
                r for r in rows if r["busy"] == 0 and r["cell"] == row["cell"]
                and r["side"] == "default"
            )  # fmt: skip
            ratio = med(now, "loop_s") / med(row, "loop_s")
            met = "met" if ratio <= 1.03 else "NOT met"
            verdicts.append(
                f"- {row['cell'][0]}, idle: default now / {row['side']} = {ratio:.2f}× "
                f"(goal: no slower, within 3 % noise): {met}"
            )
    title = (
        f"### Busy machine: the default thread count against one thread, median of "
        f"{args.repeat} interleaved runs"
    )
    md = "\n\n".join([header(info, title), "\n".join(lines), "\n".join(verdicts)])
    return emit("busy" + ("_quick" if args.quick else ""), md, {"info": info, "rows": rows})


def nmmval_net_cmd(
    root: Path,
    config: str,
    N: int,
    T_ms: float,
    p: float,
    lam: float,
    threads: int,
    overrides: tuple[str, ...] = (),
) -> list[str]:
    """benchmarks/nmmval_net.py of this checkout (nmmval from ``root``) on one
    cell, without the noise floor; ``threads`` 0 is nmmval's own default;
    ``overrides`` are config ``KEY=VALUE`` settings."""
    cmd = [sys.executable, str(HERE / "nmmval_net.py"), "--config", str(root / config)]
    cmd += ["--N", str(N), "--T-ms", repr(T_ms), "--p", repr(p), "--lam", repr(lam)]
    cmd += [f"--set={o}" for o in overrides]
    return cmd + ["--threads", str(threads), "--no-floor"]


#: the recordings mode's cells: (label, p, λ) of the paper network, N = 10 000
RECORDING_CELLS = [
    ("near silent", 0.01, 0.8),
    ("fast synchrony", 0.5, 0.9),
    ("complement delivery", 1.0, 0.9),
]


def cmd_recordings(args) -> int:
    """The loop's cost of the recordings of MODEL.md §4: a commit before them
    (``--before``) against this checkout with the closures off (the cheap
    default record: per-population arrivals and spike counts, split halves)
    and on, on the paper network, runs interleaved so that each sees the
    same load; median loop time of ``--repeat`` runs."""
    N, T_ms = (2000, 200.0) if args.quick else (10_000, 1000.0)
    info = machine()
    info["config"], info["params"] = "config/paper.yaml", f"N = {N}, T = {T_ms:g} ms, seed 0"
    sha, _subject, before = checkout(args.before)
    sides = [
        (f"before ({sha})", before, ()),
        ("closures off", ROOT, ("simulation.record_closures=false",)),
        ("closures on", ROOT, ("simulation.record_closures=true",)),
    ]
    for label, path, over in sides:  # compile each side's kernels once, untimed
        run_child(
            nmmval_net_cmd(path, "config/paper.yaml", 500, 10.0, 0.5, 0.8, args.threads, over),
            f"rec_warmup_{label.split()[0]}_{len(over)}{over[:1]}".replace(" ", "_"),
            {"PYTHONPATH": str(path / "src")},
        )
    rows = []
    for name, p, lam in RECORDING_CELLS:
        runs = {label: [] for label, _, _ in sides}
        for i in range(args.repeat):
            for label, path, over in sides:
                res = run_child(
                    nmmval_net_cmd(path, "config/paper.yaml", N, T_ms, p, lam, args.threads, over),
                    f"rec_p{p:g}_lam{lam:g}_{label.split()[0]}{'_'.join(over)[-5:]}_r{i}",
                    {"PYTHONPATH": str(path / "src")},
                )
                runs[label].append(res)
        for label, _, _ in sides:
            loops = sorted(r["loop_s"] for r in runs[label])
            rows.append(
                {
                    "cell": name,
                    "p": p,
                    "lam": lam,
                    "side": label,
                    "loop_s": loops[len(loops) // 2],
                    "loops": loops,
                    "rate_E_Hz": runs[label][-1]["rate_E_Hz"],
                }
            )
    info["load_avg_end"] = os.getloadavg()
    cols = ["cell", "nmmval", "rate E Hz", "loop s (median)", "loop s (all)", "vs before"]
    lines = md_head(cols)
    for row in rows:
        first = next(r for r in rows if r["cell"] == row["cell"])
        lines.append(
            f"| {row['cell']} (p = {row['p']:g}, λ = {row['lam']:g}) | {row['side']} "
            f"| {row['rate_E_Hz']:.1f} | {f_s(row['loop_s'])} "
            f"| {', '.join(f_s(x) for x in row['loops'])} "
            f"| {row['loop_s'] / first['loop_s']:.3f}× |"
        )
    title = (
        f"### Recordings: the loop with and without them, {args.threads} threads, "
        f"median of {args.repeat} interleaved runs"
    )
    note = (
        "'before' records V, φ and the spikes only; 'closures off' adds the per-population "
        "arrivals and spike counts and the split-half means (always recorded); 'closures on' "
        "adds the closure sums (simulation.record_closures). 'vs before' = loop time / "
        "the before commit's."
    )
    md = "\n\n".join([header(info, title), "\n".join(lines), note])
    return emit("recordings" + ("_quick" if args.quick else ""), md, {"info": info, "rows": rows})


def emit(name: str, md: str, raw: dict) -> int:
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.md").write_text(md + "\n")
    (OUT / f"{name}.json").write_text(json.dumps(raw, indent=1, default=str))
    print(md, flush=True)
    log(f"written {OUT / (name + '.md')} and .json")
    return 0


def add_common(
    parser: argparse.ArgumentParser, repeat: int = 1, config: str = "paper.yaml"
) -> None:
    """The options of every mode. Each mode gets its own copies (not argparse
    parents, whose actions the modes would share with their defaults)."""
    parser.add_argument("--quick", action="store_true", help="smoke run: small N, T = 0.2 s")
    parser.add_argument(
        "--repeat",
        type=int,
        default=repeat,
        help=f"runs per row; the fastest is kept (default {repeat})",
    )
    parser.add_argument(
        "--config",
        default=str(ROOT / "config" / config),
        help=f"parameters, for every side (default config/{config})",
    )
    parser.add_argument(
        "--nmmval-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment variable for the nmmval processes (e.g. OMP_WAIT_POLICY=passive)",
    )


def add_peers(parser: argparse.ArgumentParser) -> None:
    """The options of the modes that run nmmval beside its peers."""
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1, 2],
        help="thread counts, every side at each (default 1 2)",
    )
    parser.add_argument(
        "--sides", default="nmmval,brian2,nest", help="comma-separated subset of nmmval,brian2,nest"
    )


def main(argv: list[str] | None = None) -> int:
    import sweep  # benchmarks/sweep.py, which uses this module's helpers

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("compare", help="nmmval, Brian2 and NEST on the paper network")
    add_common(c)
    add_peers(c)
    c.add_argument(
        "--cells",
        nargs="+",
        metavar="P:LAM",
        help="cells to run (default: λ = 0.8 at p = 0.01, 0.1, 0.5, 1, and p = 0.5, λ = 0.9)",
    )
    c.set_defaults(func=cmd_compare)
    cb = sub.add_parser("coba", help="the COBA benchmark on nmmval, Brian2 and NEST")
    add_common(cb, config="coba.yaml")
    add_peers(cb)
    cb.add_argument("--T-ms", type=float, default=10_000.0, help="simulated time (default 10 s)")
    cb.set_defaults(func=cmd_coba)
    modes = [
        ("scaling", cmd_scaling, 1, "nmmval alone, N = 1e3, 1e4, 1e5"),
        ("revisions", cmd_revisions, 1, "nmmval at several commits (git worktrees), side by side"),
        ("busy", cmd_busy, 3, "default vs 1 thread, idle and beside 2 busy processes"),
        ("recordings", cmd_recordings, 5, "the loop's cost of the recordings (A/B)"),
    ]
    parsers = {}
    for name, func, repeat, text in modes:
        parsers[name] = sub.add_parser(name, help=text)
        add_common(parsers[name], repeat=repeat)
        parsers[name].add_argument(
            "--threads", type=int, default=2, help="nmmval threads (default 2)"
        )
        parsers[name].set_defaults(func=func)
    parsers["scaling"].add_argument(
        "--T-large-ms", type=float, default=1000.0, help="T for N = 1e5 (default 1000 ms)"
    )
    parsers["revisions"].add_argument(
        "revs", nargs="+", help="commits to compare, the reference first"
    )
    parsers["revisions"].add_argument(
        "--p", type=float, nargs="+", help="connection probabilities to run"
    )
    parsers["busy"].add_argument(
        "--before", help="also run this commit's default (the cliff before)"
    )
    parsers["recordings"].add_argument(
        "--before", required=True, help="a commit before the recordings"
    )
    sw = sub.add_parser("sweep", help="a slice of the paper sweep through the workflow, projected")
    sweep.add_arguments(sw)
    sw.set_defaults(func=sweep.run, nmmval_env=[])
    args = ap.parse_args(argv)
    for item in args.nmmval_env:
        key, _, value = item.partition("=")
        NMMVAL_ENV[key] = value
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
