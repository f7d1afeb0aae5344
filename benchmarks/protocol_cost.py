"""The analysis' cost per paper cell: compare (every measure, the protocol's
surrogates included) and the cube's combination, against the simulation.

Usage (from the repository root)::

    python benchmarks/protocol_cost.py            # paper time grid, 10 seeds
    python benchmarks/protocol_cost.py --quick    # T = 3 s, 3 seeds (smoke run)

The cost of compare depends on the samples in the window [T0, T) and on the
registered models, not on N: the seeds are simulated at the paper's time grid
(dt, T, T0 of config/paper.yaml) with a small network (``--N``, default 500),
driven through the mass models, and then compared (timed, CPU and wall, per
stage and per measure); the cube's combination of the seeds is timed on
their compare.nc values, as :func:`nmmval.cube.gather` runs it. For scale,
one paper-size (N = 10 000) near-silent cell of the same grid is simulated
too (``--simulate-p``, default 0.01; λ = 0.8), the cheapest simulation of
the sweep. The table goes to ``benchmarks/out/protocol_cost.md`` (+ .json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from nmmval import compare, config, cube, masses, simulation
from nmmval.analysis import measures
from nmmval.datasets import COMPARE

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class Clock:
    """Wall and CPU seconds of a ``with`` block, summed over uses."""

    def __init__(self):
        self.wall_s = 0.0
        self.cpu_s = 0.0

    def __enter__(self):
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall_s += time.perf_counter() - self._w
        self.cpu_s += time.process_time() - self._c


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="T = 3 s, 3 seeds")
    ap.add_argument("--N", type=int, default=500, help="network size of the seeds (default 500)")
    ap.add_argument("--seeds", type=int, default=10, help="seeds per cell (default 10)")
    ap.add_argument("--simulate-p", type=float, default=0.01, help="p of the paper-size cell")
    ap.add_argument("--threads", type=int, default=1, help="simulation threads (default 1)")
    args = ap.parse_args(argv)
    over = [f"network.N={args.N}"]
    if args.quick:
        over += ["simulation.T_ms=3000", "simulation.T0_ms=300"]
        args.seeds = 3
    params = config.load(ROOT / "config" / "paper.yaml", over)
    p, lam = 0.3, 0.8
    clocks = {name: Clock() for name in ("simulate (small N)", "masses", "compare", "combine")}
    per_measure = {m.name: Clock() for m in measures.MEASURES}
    per_measure["diagnostics"] = Clock()
    per_seed = {name: [] for name in COMPARE}
    for seed in range(args.seeds):
        with clocks["simulate (small N)"]:
            net = simulation.simulate_dataset(params, p, lam, seed, threads=args.threads)
        with clocks["masses"]:
            mas = masses.run(net, params)
        with clocks["compare"]:
            result = compare.compare_cell(net, mas, params)
        # the same per-seed work again, measure by measure (compare_cell's loop)
        tr = compare.traces(net, mas, params)
        for m in measures.MEASURES:
            with per_measure[m.name]:
                m.per_seed(tr, params)
        with per_measure["diagnostics"]:
            compare.diagnostics(net, mas, params)
        ds = result.to_dataset(params)
        for name in per_seed:
            per_seed[name].append(ds[name].values)
    coords = cube.coordinates(params)
    seeds = measures.Seeds(
        values={name: np.stack(v) for name, v in per_seed.items()},
        freq_Hz=np.append(coords["freq_Hz"], coords["freq_above_Hz"]),
        n_samples=coords["n_samples"],
        analysis=params.analysis,
        sign_rng=lambda k: measures.sign_rng(params, p, lam, k),
    )
    with clocks["combine"]:
        cube.combine(seeds)

    big = config.load(ROOT / "config" / "paper.yaml", over[1:])
    sim = Clock()
    with sim:
        rec = simulation.simulate_dataset(big, args.simulate_p, 0.8, 0, threads=args.threads)
    n = params.simulation.n_steps - params.simulation.n0_steps
    scale = 10 / args.seeds  # per paper cell of 10 seeds
    rows = [
        (name, c.wall_s * scale, c.cpu_s * scale)
        for name, c in clocks.items()
        if name != "simulate (small N)"
    ]
    lines = [
        f"### Analysis cost per paper cell (10 seeds × {n} samples, models: "
        f"{', '.join(str(m) for m in result.coords['mass'])}), one process",
        "",
        "| stage | wall s per cell | CPU s per cell | CPU per seed |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {w:.2f} | {c:.2f} | {c / 10:.2f} |" for a, w, c in rows]
    lines += [
        "",
        "| compare, by measure | CPU s per cell |",
        "|---|---|",
    ]
    lines += [f"| {name} | {c.cpu_s * scale:.2f} |" for name, c in per_measure.items()]
    sim_cpu_cell = sim.cpu_s * 10
    analysis_cpu = sum(c for _, _, c in rows)
    lines += [
        "",
        f"One paper-size cell (N = {big.network.N}, p = {args.simulate_p:g}, λ = 0.8, "
        f"{args.threads} thread(s), rate {float(rec['rate_E_Hz']):.2f} Hz), one seed: "
        f"simulate {sim.wall_s:.1f} s wall, {sim.cpu_s:.1f} s CPU; 10 seeds ≈ "
        f"{sim_cpu_cell:.0f} s CPU. Analysis (masses + compare + combine) per cell: "
        f"{analysis_cpu:.1f} s CPU = {analysis_cpu / sim_cpu_cell:.2f} × the cheapest "
        "simulation of the sweep.",
    ]
    md = "\n".join(lines)
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    name = "protocol_cost" + ("_quick" if args.quick else "")
    (out / f"{name}.md").write_text(md + "\n")
    raw = {
        "rows": rows,
        "per_measure_cpu_s": {k: c.cpu_s * scale for k, c in per_measure.items()},
        "simulate_paper_cell_seed": {"wall_s": sim.wall_s, "cpu_s": sim.cpu_s},
    }
    (out / f"{name}.json").write_text(json.dumps(raw, indent=1))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
