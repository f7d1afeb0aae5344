"""The noise floor: nmmval's normal generators against NumPy's, per normal and per thread.

Usage (from the repository root)::

    python benchmarks/noise_floor.py floor          # the table, N = 10 000, 1 and 2 threads
    python benchmarks/noise_floor.py floor --quick  # smoke run
    python benchmarks/noise_floor.py gof            # the goodness-of-fit test's false-positive rate

``floor`` times, in one process, the N·steps standard normals of the membrane
noise drawn

- by nmmval's generator as :func:`nmmval.sim.kernel.run_block` drew them
  before :func:`nmmval.sim.rng.fill_standard_normal`: one xoshiro256**
  stream per chunk of ``CHUNK_NEURONS`` neurons,
  :func:`nmmval.sim.rng.standard_normal` per non-refractory neuron in neuron
  order, each thread a fixed run of chunks (as the kernel's parts), a step
  over all its chunks before the next step;
- by :func:`nmmval.sim.rng.fill_standard_normal`, ``LANES`` streams per
  chunk, a normal for every neuron whether refractory or not, in the same
  layout: as the kernel draws them now, and as ``bench.py``'s noise floor
  measures them (``nmmval_net._floor_kernel``);
- by NumPy's ``Generator.standard_normal`` with the PCG64, SFC64 and Philox
  bit generators, in blocks of ``--numpy-block`` numbers into one buffer
  (its best case: no Python call per chunk). A Generator is one thread; at
  2 threads, two Generators (``SeedSequence.spawn``) in two Python threads,
  each drawing half (NumPy releases the GIL while it fills a buffer).

Each row is the shortest of ``--repeat`` timed runs (other load only ever
lengthens one); the JIT is excluded. The kernel's generator today is also
timed with 80 % of the neurons refractory (``--refractory``; fast synchrony
at ~160 Hz and τ_ref = 5 ms): it then draws for 20 % of the neurons only.
The table gives ns per neuron-step: the wall time over N·steps (and times
the thread count), whatever the number of neurons that drew.

``gof`` runs the goodness-of-fit test of ``tests/test_rng.py``
(``normal_gof``: χ² on 1/256-wide bins and Kolmogorov-Smirnov on their
edges, 10⁸ draws) ``--repeat`` times on NumPy's normals (PCG64, one seed
each) to measure how often the test rejects a sound generator, and on
nmmval's two generators (``--repeat-nmmval`` seeds each).

Both write the table as Markdown and all numbers as JSON to
``benchmarks/out/noise_floor_<mode>.md`` / ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import numba
import numpy as np
from bench import OUT, ROOT, machine
from nmmval_net import _floor_kernel
from numba import prange
from scipy import stats

from nmmval.sim.kernel import CHUNK_NEURONS, chunk_count
from nmmval.sim.rng import (
    LANES,
    ZIGGURAT,
    seed_chunk_lanes,
    seed_states,
    standard_normal,
)

NUMPY_BIT_GENERATORS = ("PCG64", "SFC64", "Philox")
TODAY = "nmmval before, a stream per chunk (standard_normal)"
FILL = f"nmmval, {LANES} streams per chunk (fill_standard_normal, the kernel and bench.py's floor)"


# ---------------------------------------------------------------- generators


@numba.njit(parallel=True, cache=True)
def _chunk_streams(states, ref, n_steps, n_parts, zig):
    """The kernel's noise today: one stream per chunk, a draw per
    non-refractory neuron in neuron order, parts of whole chunks."""
    N = ref.size
    kn, wn, fn = zig[0], zig[1], zig[2]
    n_chunks = states.shape[0]
    xbuf = np.zeros((n_chunks, CHUNK_NEURONS))
    sums = np.zeros(n_parts)
    for t in prange(n_parts):
        acc = 0.0
        for b in range(n_steps):
            for c in range(t * n_chunks // n_parts, (t + 1) * n_chunks // n_parts):
                lo = c * CHUNK_NEURONS
                m = min(CHUNK_NEURONS, N - lo)
                xb = xbuf[c]
                s0, s1, s2, s3 = states[c, 0], states[c, 1], states[c, 2], states[c, 3]
                for jj in range(m):
                    if ref[np.uint64(lo + jj)] <= 0:
                        xb[np.uint64(jj)], s0, s1, s2, s3 = standard_normal(
                            s0, s1, s2, s3, kn, wn, fn
                        )
                states[c, 0], states[c, 1], states[c, 2], states[c, 3] = s0, s1, s2, s3
                acc += xb[b % m]
        sums[t] = acc
    return sums.sum()


def _refractory(N: int, fraction: float) -> np.ndarray:
    """``ref_steps`` with ``fraction`` of the neurons (at random) refractory."""
    ref = np.zeros(N, dtype=np.int32)
    ref[np.random.default_rng(0).random(N) < fraction] = 1
    return ref


def _best(run, args: tuple, repeat: int) -> float:
    """Shortest wall time of ``repeat`` calls ``run(*args)`` (after one untimed call)."""
    run(*args)
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        run(*args)
        best = min(best, time.perf_counter() - t0)
    return best


def _numpy_runner(name: str, n: int, threads: int, block: int):
    """A call that draws ``n`` normals with ``threads`` NumPy Generators of
    bit generator ``name``, in blocks of ``block`` into one buffer each."""
    gens = [
        np.random.Generator(getattr(np.random, name)(s))
        for s in np.random.SeedSequence(0).spawn(threads)
    ]
    bufs = [np.empty(block) for _ in gens]
    share = n // threads

    def draw(k):
        for _ in range(share // block):
            gens[k].standard_normal(out=bufs[k])

    def run():
        if threads == 1:
            draw(0)
            return
        workers = [threading.Thread(target=draw, args=(k,)) for k in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    return run


def floor(args) -> dict:
    N, n_steps = args.N, args.steps
    n = N * n_steps
    seq = np.random.SeedSequence(0)
    chunk_states = seed_states(seq, chunk_count(N))
    lane_states = seed_chunk_lanes(seq, chunk_count(N))
    rows = []
    for threads in args.threads:
        numba.set_num_threads(threads)
        for frac in (0.0, args.refractory):
            ref = _refractory(N, frac)
            kargs = (chunk_states, ref, n_steps, threads, ZIGGURAT)
            best = _best(_chunk_streams, kargs, args.repeat)
            rows.append(_row(TODAY, threads, float(np.mean(ref <= 0)), n, best))
        best = _best(_floor_kernel, (lane_states, N, n_steps, threads), args.repeat)
        rows.append(_row(FILL, threads, 1.0, n, best))
        for name in NUMPY_BIT_GENERATORS:
            run = _numpy_runner(name, n, threads, args.numpy_block)
            rows.append(_row(f"NumPy {name}", threads, 1.0, n, _best(run, (), args.repeat)))
    return {"N": N, "steps": n_steps, "rows": rows}


def _row(label: str, threads: int, active: float, n: int, seconds: float) -> dict:
    return {
        "generator": label,
        "threads": threads,
        "active": active,
        "neuron_steps": n,
        "s": seconds,
        "ns_per_neuron_step": seconds / n * 1e9,
        "ns_per_neuron_step_per_thread": seconds / n * 1e9 * threads,
    }


def floor_table(res: dict) -> str:
    rows = res["rows"]
    base = {(r["threads"], r["active"]): r["s"] for r in rows if r["generator"] == TODAY}
    lines = [
        f"N = {res['N']}, {res['steps']} steps: {res['N'] * res['steps']:.0e} neuron-steps "
        "per run; 'active': the neurons that draw (the previous generator drew for the "
        "non-refractory ones only); ns per neuron-step",
        "",
        "| generator | threads | active | s | ns | ns × threads | before / this |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = base.get((r["threads"], r["active"]), base[(r["threads"], 1.0)])
        lines.append(
            f"| {r['generator']} | {r['threads']} | {r['active']:.2f} | {r['s']:.3f} | "
            f"{r['ns_per_neuron_step']:.2f} | {r['ns_per_neuron_step_per_thread']:.2f} | "
            f"{b / r['s']:.2f}× |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- goodness of fit


def _gof_module():
    """``tests/test_rng.py``: the test whose false-positive rate is measured."""
    sys.path.insert(0, str(ROOT / "tests"))
    import test_rng

    return test_rng


def gof(args) -> dict:
    t = _gof_module()
    batch, n_batches = 10**7, 10
    p = {"NumPy PCG64": [], FILL: [], TODAY: []}
    for seed in range(args.first_seed, args.first_seed + args.repeat):
        gen = np.random.Generator(np.random.PCG64(seed))
        p["NumPy PCG64"].append(t.normal_gof(gen.standard_normal(batch) for _ in range(n_batches)))
    for seed in range(args.repeat_nmmval):
        p[FILL].append(t.normal_gof(t._lane_normals(seed, 10_000, batch // 10_000, n_batches)))
        state = seed_states(np.random.SeedSequence(seed), 1)[0]
        p[TODAY].append(t.normal_gof(t.normals(state, batch) for _ in range(n_batches)))
    return {"alpha": t.ALPHA, "p": {k: [list(x[:2]) for x in v] for k, v in p.items()}}


def gof_table(res: dict) -> str:
    alpha = res["alpha"]
    lines = [
        "Goodness of fit on 10⁸ draws (tests/test_rng.py normal_gof), rejection rates "
        f"over seeds; the test fails if either p < {alpha / 2:g}",
        "",
        "| generator | seeds | χ² p < 0.05 | χ² p < 0.01 | KS p < 0.05 | KS p < 0.01 | "
        "test fails | smallest p (χ², KS) | χ² p-values uniform (KS p) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, ps in res["p"].items():
        if not ps:
            continue
        a = np.array(ps)
        fails = np.mean(a.min(axis=1) < alpha / 2)
        lines.append(
            f"| {name} | {len(a)} | {np.mean(a[:, 0] < 0.05):.3f} | {np.mean(a[:, 0] < 0.01):.3f} "
            f"| {np.mean(a[:, 1] < 0.05):.3f} | {np.mean(a[:, 1] < 0.01):.3f} | {fails:.3f} | "
            f"{a[:, 0].min():.3g}, {a[:, 1].min():.3g} | "
            f"{stats.kstest(a[:, 0], 'uniform').pvalue:.2f} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    f = sub.add_parser("floor", help="ns per neuron-step: nmmval's generators and NumPy's")
    f.add_argument("--N", type=int, default=10_000)
    f.add_argument("--steps", type=int, default=1000)
    f.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    f.add_argument("--repeat", type=int, default=7)
    f.add_argument("--refractory", type=float, default=0.8)
    f.add_argument("--numpy-block", type=int, default=2**16)
    f.add_argument("--quick", action="store_true", help="N = 2000, 200 steps, 3 repeats")
    g = sub.add_parser("gof", help="the goodness-of-fit test's rejection rates")
    g.add_argument("--repeat", type=int, default=100, help="seeds of NumPy's normals")
    g.add_argument("--first-seed", type=int, default=0, help="the first of NumPy's seeds")
    g.add_argument("--repeat-nmmval", type=int, default=20, help="seeds of nmmval's")
    args = ap.parse_args(argv)
    if args.mode == "floor" and args.quick:
        args.N, args.steps, args.repeat = 2000, 200, 3

    info = machine()
    res = floor(args) if args.mode == "floor" else gof(args)
    info["load_avg_end"] = os.getloadavg()
    table = floor_table(res) if args.mode == "floor" else gof_table(res)
    la = ", ".join(f"{x:.2f}" for x in info["load_avg"])
    le = ", ".join(f"{x:.2f}" for x in info["load_avg_end"])
    text = (
        f"- date: {info['date']}; nmmval commit {info['commit']}\n"
        f"- machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, "
        f"NumPy {np.__version__}, Numba {numba.__version__}\n"
        f"- load average (1, 5, 15 min) at start: {la}; at end: {le}\n\n{table}\n"
    )
    print(text)
    OUT.mkdir(exist_ok=True)
    stem = OUT / f"noise_floor_{args.mode}"
    stem.with_suffix(".md").write_text(text)
    stem.with_suffix(".json").write_text(json.dumps({"info": info, **res}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
