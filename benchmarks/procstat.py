"""Helpers shared by the benchmark sides (no nmmval import: ``brian2_net.py``
and ``nest_net.py`` run in their simulators' own virtual environments)."""

import argparse
import gc
import json
import sys
from pathlib import Path

#: the start of the line that carries one cell's result, which ``bench.py`` reads
RESULT_PREFIX = "BENCH_RESULT "
#: the parameters every side reads by default
PAPER = Path(__file__).resolve().parents[1] / "config" / "paper.yaml"


def add_network_options(ap: argparse.ArgumentParser) -> None:
    """The options of every side's network: the parameter file, N, T and the seed."""
    ap.add_argument("--config", default=str(PAPER))
    ap.add_argument("--N", type=int, default=10_000)
    ap.add_argument("--T-ms", type=float, default=1000.0)
    ap.add_argument("--seed", type=int, default=0)


def emit(result: dict) -> None:
    """Print one cell's result as the line ``bench.py`` reads: ``BENCH_RESULT {json}``."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def exit_frozen(main) -> None:
    """Run ``main()`` and exit with its code, as nmmval's console script does
    (``nmmval.cli.run``) and on every side alike: without the garbage
    collector's passes over the objects the libraries keep for the life of
    the process (benchmarks/README.md)."""
    code = main()
    gc.freeze()
    sys.exit(code)


def vm_hwm_bytes() -> int:
    """Peak resident set size of this process (VmHWM), bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return -1


def parse_cells(items: list[str]) -> list[tuple[float, float]]:
    """Cells ``"P:LAM"`` (connection probability, excitatory fraction) as (p, λ) pairs."""
    cells = []
    for item in items:
        p, sep, lam = item.partition(":")
        if not sep:
            raise ValueError(f"cell {item!r}: expected P:LAM, e.g. 0.5:0.9")
        cells.append((float(p), float(lam)))
    return cells
