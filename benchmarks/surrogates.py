"""The protocol's surrogates (MODEL.md §6.3): their cost per seed and model, by FFT batch size.

Usage (from the repository root)::

    python benchmarks/surrogates.py             # the paper's window: 270 000 samples
    python benchmarks/surrogates.py --quick     # 27 000 samples (smoke run)

:func:`nmmval.analysis.protocol.seed_rho_surrogates` makes ``analysis.n_surrogates``
phase-randomised surrogates of a model's V and lag-searches each one's
correlation with the network's V, in batches of rows of at most
``protocol._BATCH_ELEMENTS`` samples, each batch through one 2-D
``scipy.fft`` call per transform. This times it (best of ``--repeat``, one
thread) at several batch sizes, from one surrogate per call to all of them
in one, on two traces of the window's length (a smoothed random walk and
the same plus noise: the cost depends on the length, not on the values),
and checks that every batch size gives the same bits as the default. Then,
in the same run, the route the circular correlation replaced: the same
surrogates made (:func:`~nmmval.analysis.protocol.phase_randomised`) and
correlated with zero padding (``_max_lagged_rows``), its time and largest
difference. The table goes to
``benchmarks/out/surrogates.md`` (+ .json).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from bench import emit, machine, md_head

from nmmval.analysis import protocol

#: the paper's analysis window [T0, T) at dt = 0.1 ms, the lag search's reach, the surrogates
N_SAMPLES, DT_MS, MAX_LAG_MS, N_SURROGATES = 270_000, 0.1, 100.0, 99


def traces(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two correlated traces of ``n`` samples: a smoothed random walk and it plus noise."""
    rng = np.random.default_rng(0)
    walk = np.convolve(np.cumsum(rng.standard_normal(n)), np.ones(50) / 50, mode="same")
    return walk, walk + rng.standard_normal(n)


def best(repeat: int, func, *args) -> tuple[float, object]:
    """The shortest wall time of ``repeat`` calls (s) and the last call's result."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = func(*args)
        times.append(time.perf_counter() - t0)
    return min(times), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="27 000 samples")
    ap.add_argument("--repeat", type=int, default=3, help="calls per batch size (best of)")
    args = ap.parse_args(argv)
    n = N_SAMPLES // 10 if args.quick else N_SAMPLES
    lif, model = traces(n)
    default = protocol._BATCH_ELEMENTS
    batches = sorted({n, 2**20, 2**21, 2**22, default, 2**23, 2**24, N_SURROGATES * (n + 1000)})

    def surrogates():
        return protocol.seed_rho_surrogates(lif, model, DT_MS, MAX_LAG_MS, N_SURROGATES, 1)[2]

    reference = surrogates()
    rows = []
    try:
        for batch in batches:
            protocol._BATCH_ELEMENTS = batch
            wall, rho = best(args.repeat, surrogates)
            rows.append(
                {
                    "batch_elements": batch,
                    "rows_per_batch": min(N_SURROGATES, max(1, batch // n)),
                    "wall_s": wall,
                    "same_bits": bool(np.array_equal(rho, reference)),
                }
            )
    finally:
        protocol._BATCH_ELEMENTS = default
    # the route before the circular correlation, on the same draws: the surrogates made
    # (phase_randomised), then correlated with zero padding (_max_lagged_rows)
    std = protocol._standardise_rows
    rows_per_batch = min(N_SURROGATES, max(1, default // n))

    def zero_padded():
        rng = np.random.default_rng(1)
        return np.concatenate(
            [
                protocol._max_lagged_rows(
                    std(lif),
                    protocol.phase_randomised(
                        std(model), min(rows_per_batch, N_SURROGATES - s), rng
                    ),
                    DT_MS,
                    MAX_LAG_MS,
                )[0]
                for s in range(0, N_SURROGATES, rows_per_batch)
            ]
        )

    padded_s, padded = best(args.repeat, zero_padded)
    circular_s = next(r["wall_s"] for r in rows if r["batch_elements"] == default)
    info = machine()
    lines = [
        f"### Surrogates of one seed and model: {N_SURROGATES} surrogates of {n} samples, "
        f"lag search ±{MAX_LAG_MS:g} ms, best of {args.repeat}",
        "",
        f"- date: {info['date']}; nmmval commit {info['commit']}; {info['cpu']}; "
        f"load average {', '.join(f'{x:.2f}' for x in info['load_avg'])}",
        "",
        *md_head(["samples per batch", "surrogates per FFT call", "wall s", "same bits"]),
    ]
    for r in rows:
        mark = " (default)" if r["batch_elements"] == default else ""
        lines.append(
            f"| {r['batch_elements']}{mark} | {r['rows_per_batch']} | {r['wall_s']:.3f} "
            f"| {'yes' if r['same_bits'] else 'NO'} |"
        )
    lines += [
        "",
        f"At the default batch: the circular correlation (two inverse FFTs of n per "
        f"surrogate) {circular_s:.3f} s against the zero-padded one it replaced (three "
        f"FFTs of n + K) {padded_s:.3f} s on the same surrogates: "
        f"{padded_s / circular_s:.2f}×; largest |Δρ| {np.abs(padded - reference).max():.1e}.",
    ]
    raw = {"info": info, "n": n, "rows": rows, "circular_s": circular_s}
    raw["zero_padded_s"] = padded_s
    raw["max_abs_diff"] = float(np.abs(padded - reference).max())
    return emit("surrogates" + ("_quick" if args.quick else ""), "\n".join(lines), raw)


if __name__ == "__main__":
    sys.exit(main())
