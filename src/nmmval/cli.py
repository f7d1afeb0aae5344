"""The ``nmmval`` command: one subcommand per workflow stage.

Every stage subcommand reads a config (``--config``, default the quick
config; ``--set section.key=value`` overrides), its input files, writes one
NetCDF file atomically (``figures``: a folder of figures) and ends with one
line on stderr naming what it wrote and what the process cost, ``nmmval
<subcommand>: wrote <path> (CPU 12.3 s, peak 553 MiB)``.
Any error ends the process with exit code 1 and one line ``nmmval: <what>``
(and no "wrote" line); a bad command line (unknown option, wrong type,
missing required option) ends it with exit code 2 and one line ``nmmval
<subcommand>: error: <what>``. ``nmmval doctor`` checks what a Slurm run
needs.
"""

from __future__ import annotations

import argparse
import gc
import re
import resource
import sys
from pathlib import Path

from nmmval import __version__, store
from nmmval import config as cfgmod
from nmmval.profiles import ProfileError
from nmmval.store import InputError, OutputError

#: the process's cost at the end of a subcommand's last line (:func:`_wrote`), as
#: docs/run_times.py reads it back: CPU seconds, peak MiB
COST = re.compile(r"\(CPU ([\d.]+) s, peak (\d+) MiB\)$")


def _wrote(command: str, what) -> int:
    """Print the last line of a subcommand to stderr; exit code 0.

    The line names what it wrote and what the process has cost so far: CPU
    seconds (user + system, every thread, imports included) and peak resident
    memory (MiB), so that a job's log records its cost (Snakemake's benchmark
    file samples CPU time only every 30 s after a job's first 15 s).
    """
    use = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = use.ru_utime + use.ru_stime
    peak_MiB = use.ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)  # bytes / KiB
    cost = f"CPU {cpu_s:.1f} s, peak {peak_MiB:.0f} MiB"
    print(f"nmmval {command}: wrote {what} ({cost})", file=sys.stderr, flush=True)
    return 0


def cmd_simulate(args) -> int:
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
    return _wrote(args.command, args.out)


def cmd_fit(args) -> int:
    """Fit the fitted mass models to one cell's seeds; write fit.nc."""
    from nmmval import fit

    params = cfgmod.load(args.config, args.set)
    nets = [store.open_dataset(path, "network", params) for path in args.network]
    store.check_writable(args.out)
    store.write_dataset(fit.run(nets, params), args.out)
    return _wrote(args.command, args.out)


def cmd_masses(args) -> int:
    """Drive every registered mass model with a network's recorded input; write masses.nc."""
    from nmmval import masses

    params = cfgmod.load(args.config, args.set)
    net = store.open_dataset(args.network, "network", params)
    fit = None if args.fit is None else store.open_dataset(args.fit, "fit", params)
    store.check_writable(args.out)
    store.write_dataset(masses.run(net, params, fit), args.out)
    return _wrote(args.command, args.out)


def cmd_compare(args) -> int:
    """Measure the network and every mass model over [T0, T); write compare.nc."""
    from nmmval.compare import compare_cell

    params = cfgmod.load(args.config, args.set)
    net = store.open_dataset(args.network, "network", params)
    mas = store.open_dataset(args.masses, "masses", params)
    store.check_writable(args.out)
    store.write_dataset(compare_cell(net, mas, params).to_dataset(params), args.out)
    return _wrote(args.command, args.out)


def cmd_gather(args) -> int:
    """Gather every cell's compare.nc into the cube."""
    from nmmval.cube import gather

    params = cfgmod.load(args.config, args.set)
    store.check_writable(args.out)
    store.write_dataset(gather(params, Path(args.results)), args.out)
    return _wrote(args.command, args.out)


def cmd_figures(args) -> int:
    """Render the heat maps and diagnostic pages."""
    from nmmval.figures import render_all

    params = cfgmod.load(args.config, args.set)
    cube = store.open_dataset(args.cube, "cube")
    written = render_all(params, cube, Path(args.results), Path(args.outdir))
    return _wrote(args.command, f"{len(written)} files in {args.outdir}")


def cmd_profile(args) -> int:
    """Install a Snakemake profile of this repository into the user's config folder."""
    from nmmval.profiles import install_profile

    dest = install_profile(args.name, force=args.force)
    print(f"nmmval profile: profile {args.name!r} installed in {dest}", file=sys.stderr)
    return 0


def cmd_doctor(args) -> int:
    """Check what a Slurm run needs, one line per item; exit code 1 if an item fails."""
    from nmmval import doctor

    return doctor.report(doctor.run_checks())


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage dump), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


CONFIG_HELP = (
    "YAML config file (default: the quick config, the package's copy of config/config.yaml; "
    "config/README.md lists every key)"
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``nmmval``: every option of every subcommand has a help text."""
    parser = _Parser(
        prog="nmmval", description="Validity of neural mass models (Deschle et al. 2021)."
    )
    parser.add_argument(
        "--version", action="version", version=f"nmmval {__version__}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, func, help_text, config=True):
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(func=func)
        if config:
            sp.add_argument("--config", default=None, metavar="YAML", help=CONFIG_HELP)
            sp.add_argument(
                "--set",
                action="append",
                default=[],
                metavar="SECTION.KEY=VALUE",
                help="override one config key, e.g. network.N=1000 (repeatable)",
            )
        return sp

    sp = add("simulate", cmd_simulate, "simulate one cell <p, lam, seed> of the LIF network")
    sp.add_argument("--p", type=float, required=True, help="connection probability, in [0, 1]")
    sp.add_argument(
        "--lam", type=float, required=True, help="fraction of excitatory neurons, in [0, 1]"
    )
    sp.add_argument(
        "--seed", type=int, required=True, help="repetition index, >= 0 (a new graph and noise)"
    )
    sp.add_argument(
        "--threads",
        type=int,
        default=None,
        help="most Numba threads (default: the CPUs this process may use: its affinity mask, "
        "cgroup quota, SLURM_CPUS_PER_TASK); fewer while the cores are oversubscribed",
    )
    sp.add_argument("--out", required=True, metavar="NC", help="network.nc to write")

    sp = add("fit", cmd_fit, "fit the fitted Freeman models to the seeds of one cell <p, lam>")
    sp.add_argument(
        "--network",
        required=True,
        nargs="+",
        metavar="NC",
        help="network.nc of every seed of the cell (nmmval simulate)",
    )
    sp.add_argument("--out", required=True, metavar="NC", help="fit.nc to write")

    sp = add("masses", cmd_masses, "drive every mass model with a network's recorded input")
    sp.add_argument(
        "--network",
        required=True,
        metavar="NC",
        help="network.nc whose recorded input drives the models (nmmval simulate)",
    )
    sp.add_argument(
        "--fit",
        default=None,
        metavar="NC",
        help="the cell's fit.nc (nmmval fit; default: fit the fitted models to this network alone)",
    )
    sp.add_argument("--out", required=True, metavar="NC", help="masses.nc to write")

    sp = add("compare", cmd_compare, "compare the network and the mass models of one cell")
    sp.add_argument(
        "--network", required=True, metavar="NC", help="the seed's network.nc (nmmval simulate)"
    )
    sp.add_argument(
        "--masses",
        required=True,
        metavar="NC",
        help="the same seed's masses.nc (nmmval masses)",
    )
    sp.add_argument("--out", required=True, metavar="NC", help="compare.nc to write")

    sp = add("gather", cmd_gather, "gather all cells into the cube")
    sp.add_argument(
        "--results",
        required=True,
        metavar="DIR",
        help="the run's folder, results/{run}: its cells/p~*/lam~*/seed~*/compare.nc are read",
    )
    sp.add_argument("--out", required=True, metavar="NC", help="cube.nc to write")

    sp = add("figures", cmd_figures, "render the figures of a cube")
    sp.add_argument("--cube", required=True, metavar="NC", help="the run's cube.nc (nmmval gather)")
    sp.add_argument(
        "--results",
        required=True,
        metavar="DIR",
        help="the run's folder, results/{run}, whose cells the diagnostic pages read",
    )
    sp.add_argument(
        "--outdir",
        required=True,
        metavar="DIR",
        help="folder to write the figures to, PDF and PNG (created if missing)",
    )

    sp = add(
        "profile",
        cmd_profile,
        "install a Snakemake profile (profiles/NAME) for the user",
        config=False,
    )
    sp.add_argument("action", choices=["install"], help="what to do: install")
    sp.add_argument("name", help="profile name, e.g. slurm (installed in ~/.config/snakemake/NAME)")
    sp.add_argument("--force", action="store_true", help="overwrite a different existing profile")

    add(
        "doctor",
        cmd_doctor,
        "check what a Slurm run needs (executor plugin, profile, sbatch/sacct, Numba's cache "
        "and threading layer, cores): one line per item with its fix; exit code 1 if one fails",
        config=False,
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nmmval`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (cfgmod.ConfigError, InputError, OutputError, ProfileError) as exc:
        print(f"nmmval: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. figures into a read-only folder: name the path
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"nmmval: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1


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
