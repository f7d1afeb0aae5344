"""The cost model of the kernel's spike delivery: scatter against dense count.

A step's arrivals are counted either by scattering every spike along its
stored target list (``nmmval.sim.kernel.scatter_arrivals``: one increment per
arrival) or densely (``nmmval.sim.kernel.dense_arrivals``: per word of 64
sources with a spike, one popcount per target). ``nmmval.sim.kernel._deliver``
picks the dense count when ``DENSE_COST`` · words · targets is below the
arrivals (a word: 8 sources, ``nmmval.sim.network.WORD_BITS``). This script
measures both on the paper network's graph (N = 10 000, λ = 0.8, one
thread, one part) for steps of 1 to 8 000 spikes at several p,
checks that they give the same counts, and reports each pair's cost per
unit: ns per arrival (scatter) and ns per (word, target) pair (dense), their
ratio, and which way ``DENSE_COST`` sends the step against which was faster.

Run: ``python benchmarks/delivery.py [--N 10000] [--repeat 7]``; writes
``benchmarks/out/delivery.md`` and ``delivery.json``. About a minute.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numba
import numpy as np

from nmmval.sim.kernel import (
    CHUNK_NEURONS,
    DENSE_COST,
    chunk_count,
    dense_arrivals,
    scatter_arrivals,
    spike_rows,
    wire,
)
from nmmval.sim.network import WORD_BITS, bipartite, erdos_renyi, in_edge_bits

OUT = Path(__file__).parent / "out"


@numba.njit(cache=True)
def _time_scatter(spikes, n_spikes, targets, split, n_E, arr_E, arr_I, reps):
    """``reps`` scatters of the same step (the counts add up)."""
    for _ in range(reps):
        scatter_arrivals(spikes, n_spikes, targets, split, 0, n_E, arr_E, arr_I)


@numba.njit(cache=True)
def _time_dense(bits, words, n_E, arr_E, arr_I, reps):
    """``reps`` dense counts of the same step, listing its words each time
    as the kernel does (the counts add up)."""
    rows = np.zeros((2, words.size), dtype=np.int64)
    vals = np.zeros((2, words.size), dtype=np.uint8)
    for _ in range(reps):
        n_E_rows, n_I_rows = spike_rows(words, n_E, rows, vals)
        dense_arrivals(bits, rows, vals, n_E_rows, n_I_rows, arr_E, arr_I, 0, arr_E.size)


def _step(rng, N, n_spk):
    """A step's spikes in the kernel's layout (per chunk, in neuron order)
    and as a bitset of words."""
    ids = np.sort(rng.choice(N, n_spk, replace=False))
    n_chunks = chunk_count(N)
    spikes = np.zeros((n_chunks, CHUNK_NEURONS), dtype=np.int32)
    n_spikes = np.zeros((n_chunks, 2), dtype=np.int64)
    for i in ids:
        c = i // CHUNK_NEURONS
        spikes[c, n_spikes[c, 0]] = i
        n_spikes[c, 0] += 1
    words = np.zeros((N + WORD_BITS - 1) // WORD_BITS, dtype=np.uint8)
    bit = np.left_shift(np.uint8(1), (ids % WORD_BITS).astype(np.uint8))
    np.bitwise_or.at(words, ids // WORD_BITS, bit)
    return spikes, n_spikes, words


def _best(fn, args, reps, repeat):
    """The shortest of ``repeat`` timings of ``fn(*args, reps)``, per call (s)."""
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args, reps)
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=10_000)
    ap.add_argument("--lam", type=float, default=0.8)
    ap.add_argument("--p", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.3, 0.5])
    ap.add_argument("--spikes", type=int, nargs="+", default=[1, 4, 16, 64, 256, 1024, 4000, 8000])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    numba.set_num_threads(1)
    N = args.N
    n_E = round(args.lam * N)
    rng = np.random.default_rng(0)
    ext = bipartite(1, n_E, 0.0, np.random.SeedSequence(1))
    rows = []
    for p in args.p:
        graph = erdos_renyi(N, p, np.random.SeedSequence(2))
        wiring = wire(graph, ext, n_E, 1)
        bits = in_edge_bits(graph)
        for n_spk in args.spikes:
            spikes, n_spikes, words = _step(rng, N, n_spk)
            n_words = int(np.count_nonzero(words))
            counts = [np.zeros((2, N), dtype=np.int32) for _ in range(2)]
            _time_scatter(spikes, n_spikes, wiring.targets, wiring.split, n_E, *counts[0], 1)
            _time_dense(bits, words, n_E, *counts[1], 1)
            if not np.array_equal(counts[0], counts[1]):
                raise SystemExit(f"p={p} spikes={n_spk}: scatter and dense counts differ")
            arrivals = int(counts[0].sum())
            reps = max(1, int(2e7 // max(arrivals + n_words * N, 1)))
            scatter = (spikes, n_spikes, wiring.targets, wiring.split, n_E, *counts[0])
            t_sc = _best(_time_scatter, scatter, reps, args.repeat)
            t_de = _best(_time_dense, (bits, words, n_E, *counts[1]), reps, args.repeat)
            ns_arrival = 1e9 * t_sc / max(arrivals, 1)
            ns_pair = 1e9 * t_de / max(n_words * N, 1)
            rows.append(
                {
                    "p": p,
                    "spikes": n_spk,
                    "arrivals": arrivals,
                    "words": n_words,
                    "scatter_ms": 1e3 * t_sc,
                    "dense_ms": 1e3 * t_de,
                    "ns_per_arrival": ns_arrival,
                    "ns_per_pair": ns_pair,
                    "ratio": ns_pair / ns_arrival if arrivals else float("nan"),
                    "model_dense": DENSE_COST * n_words * N < arrivals,
                    "dense_faster": t_de < t_sc,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "delivery.json").write_text(json.dumps(rows, indent=1))
    lines = [
        f"N = {N}, λ = {args.lam}, one thread; DENSE_COST = {DENSE_COST}",
        "",
        "| p | spikes | arrivals | words | scatter ms | dense ms | ns/arrival | ns/pair "
        "| ratio | model | faster |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['p']:g} | {r['spikes']} | {r['arrivals']} | {r['words']} "
            f"| {r['scatter_ms']:.3f} "
            f"| {r['dense_ms']:.3f} | {r['ns_per_arrival']:.2f} | {r['ns_per_pair']:.3f} "
            f"| {r['ratio']:.2f} | {'dense' if r['model_dense'] else 'scatter'} "
            f"| {'dense' if r['dense_faster'] else 'scatter'} |"
        )
    (OUT / "delivery.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
