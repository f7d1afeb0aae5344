"""The ``nmmval`` command: one subcommand per workflow stage.

Every subcommand reads a config (``--config``, with ``--set section.key=value``
overrides), its input files, and writes one NetCDF file atomically. Any
error ends the process with exit code 1 and one line ``nmmval: <what>``; a
bad command line (unknown option, wrong type, missing required option) ends
it with exit code 2 and one line ``nmmval <subcommand>: error: <what>``.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

from nmmval import config as cfgmod
from nmmval import store
from nmmval.profiles import ProfileError
from nmmval.store import InputError, OutputError


def cmd_simulate(args) -> None:
    """Simulate one cell and write network.nc."""
    from nmmval import faults
    from nmmval.sim.lif import BLOCK_STEPS
    from nmmval.simulation import simulate_dataset

    params = cfgmod.load(args.config, args.set)
    for name, value in (("--p", args.p), ("--lam", args.lam)):
        if not 0.0 <= value <= 1.0:
            raise cfgmod.ConfigError(f"{name}: {value!r} is not in [0, 1]")
    if args.seed < 0:
        raise cfgmod.ConfigError(f"--seed: {args.seed!r} must be >= 0")
    if args.threads is not None and args.threads < 1:
        raise cfgmod.ConfigError(f"--threads: {args.threads!r} must be >= 1")
    store.check_writable(args.out)
    ds = simulate_dataset(
        params,
        args.p,
        args.lam,
        args.seed,
        threads=args.threads,
        progress=True,
        # the test-only kill point "block=K", after the K-th block (nmmval.faults)
        on_block=lambda step, *_: faults.reached("block", -(-step // BLOCK_STEPS)),
    )
    store.write_dataset(ds, args.out)


def cmd_fit(args) -> None:
    """Fit the fitted mass models to one cell's seeds; write fit.nc."""
    from nmmval import fit

    params = cfgmod.load(args.config, args.set)
    nets = [store.open_dataset(path, "network", params) for path in args.network]
    store.check_writable(args.out)
    store.write_dataset(fit.run(nets, params), args.out)


def cmd_masses(args) -> None:
    """Drive every registered mass model with a network's recorded input; write masses.nc."""
    from nmmval import masses

    params = cfgmod.load(args.config, args.set)
    net = store.open_dataset(args.network, "network", params)
    fit = None if args.fit is None else store.open_dataset(args.fit, "fit", params)
    store.check_writable(args.out)
    store.write_dataset(masses.run(net, params, fit), args.out)


def cmd_compare(args) -> None:
    """Measure the network and every mass model over [T0, T); write compare.nc."""
    from nmmval.compare import compare_cell

    params = cfgmod.load(args.config, args.set)
    net = store.open_dataset(args.network, "network", params)
    mas = store.open_dataset(args.masses, "masses", params)
    store.check_writable(args.out)
    store.write_dataset(compare_cell(net, mas, params).to_dataset(params), args.out)


def cmd_gather(args) -> None:
    """Gather every cell's compare.nc into the cube."""
    from nmmval.cube import gather

    params = cfgmod.load(args.config, args.set)
    store.check_writable(args.out)
    store.write_dataset(gather(params, Path(args.results)), args.out)


def cmd_figures(args) -> None:
    """Render the heat maps and diagnostic pages."""
    from nmmval.figures import render_all

    params = cfgmod.load(args.config, args.set)
    cube = store.open_dataset(args.cube, "cube")
    render_all(params, cube, Path(args.results), Path(args.outdir))


def cmd_profile(args) -> None:
    """Install a Snakemake profile of this repository into the user's config folder."""
    from nmmval.profiles import install_profile

    dest = install_profile(args.name, force=args.force)
    print(f"nmmval: profile {args.name!r} installed in {dest}")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage dump), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``nmmval``."""
    parser = _Parser(
        prog="nmmval", description="Validity of neural mass models (Deschle et al. 2021)."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, func, help_text):
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(func=func)
        if name != "profile":
            sp.add_argument("--config", required=True, help="YAML config (config/config.yaml)")
            sp.add_argument(
                "--set",
                action="append",
                default=[],
                metavar="SECTION.KEY=VALUE",
                help="override one config key (repeatable)",
            )
        return sp

    sp = add("simulate", cmd_simulate, "simulate one cell <p, lam, seed> of the LIF network")
    sp.add_argument("--p", type=float, required=True, help="connection probability")
    sp.add_argument("--lam", type=float, required=True, help="fraction of excitatory cells")
    sp.add_argument("--seed", type=int, required=True, help="repetition index")
    sp.add_argument(
        "--threads",
        type=int,
        default=None,
        help="most Numba threads (default: the CPUs this process may use: its affinity mask, "
        "cgroup quota, SLURM_CPUS_PER_TASK); fewer while the cores are oversubscribed",
    )
    sp.add_argument("--out", required=True, help="network.nc to write")

    sp = add("fit", cmd_fit, "fit the fitted Freeman models to the seeds of one cell <p, lam>")
    sp.add_argument("--network", required=True, nargs="+", help="network.nc of every seed")
    sp.add_argument("--out", required=True, help="fit.nc to write")

    sp = add("masses", cmd_masses, "drive every mass model with a network's recorded input")
    sp.add_argument("--network", required=True)
    sp.add_argument(
        "--fit",
        default=None,
        help="the cell's fit.nc (default: fit the fitted models to this network alone)",
    )
    sp.add_argument("--out", required=True, help="masses.nc to write")

    sp = add("compare", cmd_compare, "compare the network and the mass models of one cell")
    sp.add_argument("--network", required=True)
    sp.add_argument("--masses", required=True)
    sp.add_argument("--out", required=True, help="compare.nc to write")

    sp = add("gather", cmd_gather, "gather all cells into the cube")
    sp.add_argument("--results", required=True, help="results/{run}")
    sp.add_argument("--out", required=True, help="cube.nc to write")

    sp = add("figures", cmd_figures, "render the figures of a cube")
    sp.add_argument("--cube", required=True)
    sp.add_argument("--results", required=True, help="results/{run} (for diagnostic pages)")
    sp.add_argument("--outdir", required=True)

    sp = add("profile", cmd_profile, "install a Snakemake profile (profiles/NAME) for the user")
    sp.add_argument("action", choices=["install"])
    sp.add_argument("name", help="profile name, e.g. slurm")
    sp.add_argument("--force", action="store_true", help="overwrite a different existing profile")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nmmval`` console script."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (cfgmod.ConfigError, InputError, OutputError, ProfileError) as exc:
        print(f"nmmval: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. figures into a read-only folder: name the path
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"nmmval: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def run() -> None:
    """The console script: :func:`main`, then exit without the collector's final passes.

    When ``main`` returns, every file it wrote is closed. Freezing the garbage
    collector then makes interpreter exit skip its passes over the ~10⁵
    objects Numba keeps for the life of the process, 0.15 s of every
    process (benchmarks/README.md). Not in ``main``, which tests call in
    their own process.
    """
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
