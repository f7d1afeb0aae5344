"""Run the README's test command several times in a row beside busy processes.

Not part of the default ``pytest`` (pytest collects ``test_*.py`` only): a
check that the suite passes every time on a busy machine, as on a cluster
login node or in CI beside other work. Usage, from the repository root::

    python tests/run_under_load.py                 # 3 runs beside 2 busy processes
    python tests/run_under_load.py --fresh-clone   # the same in a fresh clone of HEAD
    python tests/run_under_load.py --runs 1 --busy 2 -- -m "not slow"

It starts ``--busy`` processes (``yes > /dev/null``), runs ``python -m
pytest`` (plus any arguments after ``--``) ``--runs`` times, stops the busy
processes, prints one line per run (exit code, wall time, pytest's summary)
and exits non-zero unless every run passed. Each run's output is kept in
``--log-dir``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="runs of the suite (default 3)")
    ap.add_argument("--busy", type=int, default=2, help="busy processes beside it (default 2)")
    ap.add_argument("--fresh-clone", action="store_true", help="run in a fresh clone of HEAD")
    ap.add_argument(
        "--log-dir", type=Path, default=None, help="where each run's output goes (a temp dir)"
    )
    ap.add_argument("pytest_args", nargs="*", help="arguments for pytest (after --)")
    args = ap.parse_args(argv)

    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="nmmval-under-load-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    where = ROOT
    if args.fresh_clone:
        where = log_dir / "clone"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(where)], check=True)
        # the clone's package, not this checkout's, is what pytest imports
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "-e", f"{where}[test]"],
            check=True,
        )
    busy = [
        subprocess.Popen(["yes"], stdout=subprocess.DEVNULL, start_new_session=True)
        for _ in range(args.busy)
    ]
    results = []
    try:
        for i in range(1, args.runs + 1):
            out = log_dir / f"run{i}.log"
            t0 = time.perf_counter()
            with open(out, "w") as fh:
                code = subprocess.run(
                    [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args.pytest_args],
                    cwd=where,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    env=dict(os.environ, PYTHONUNBUFFERED="1"),
                ).returncode
            wall = time.perf_counter() - t0
            lines = out.read_text().strip().splitlines()
            summary = lines[-1] if lines else "(no output)"
            results.append(code)
            print(
                f"run {i}/{args.runs}: exit {code}, {wall:.0f} s, load average "
                f"{os.getloadavg()[0]:.1f}: {summary} ({out})",
                flush=True,
            )
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    if args.fresh_clone:  # leave this checkout installed, as it was
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", str(ROOT)])
    passed = sum(code == 0 for code in results)
    print(f"{passed} of {len(results)} runs passed beside {args.busy} busy processes")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
