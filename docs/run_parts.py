"""Carry a run longer than a machine's stay across machines, in parts kept with the repository.

Usage::

    python docs/run_parts.py missing PARTS --configfile config/paper.yaml
    python docs/run_parts.py save RUNS/results/paper PARTS
    python docs/run_parts.py merge PARTS --configfile config/paper.yaml --out CUBE
    python docs/run_parts.py diagnostic PARTS --configfile config/paper.yaml
    python docs/run_parts.py figures PARTS --configfile config/paper.yaml \\
        --results RUNS/results/paper --outdir FIGURES

A Snakemake run continues from its finished cells only on a machine that kept
them. The paper's sweep takes longer than one stay on a small machine, so
docs/paper_runs.sh saves what each stay finishes as *parts* in a folder of the
repository (``PARTS``, e.g. ``docs/results/parts/paper``), and a later stay, on
any machine, runs only the cells that no part holds:

- ``save``: every cell ⟨p, λ⟩ of the run whose ``fit.nc`` and every seed's
  ``compare.nc`` exist and that no part holds yet is gathered as
  ``nmmval gather`` gathers the whole grid, one λ at a time (a cell's cube
  values depend on its own files only: MODEL.md §6), and written as
  ``lam<λ>-<UTC time>.nc``, a summary cube (docs/results_tables.py) of at
  most its cells' share of the 20 MB that the run's summary may take (so the
  spectra are dropped, the correlation curves kept). The jobs' wall and CPU
  seconds go to ``jobs-<UTC time>.csv`` and the run's Snakemake invocations
  to ``invocations.csv``, for docs/run_times.py.
- ``missing``: the target files (``results/<run>/cells/…/compare.nc`` and
  ``…/fit.nc``) of the cells that no part holds, one line per batch of at most
  ``--cells`` cells (default 7) of one λ: a batch's cells finish together
  (its fits wait for all its simulations), so a stay that ends loses at most
  the batch it was running.
- ``merge``: the parts of a whole grid as the run's summary cube, the same
  values as the summary of the cube that ``nmmval gather`` makes on one
  machine; refuses parts of another config, a cell held twice and a missing
  cell.
- ``diagnostic`` and ``figures``: the diagnostic pages need the spectra and
  traces that the parts do not keep, so the diagnostic cells are run again
  (``diagnostic`` prints their targets); ``figures`` checks that they give
  their parts' values to the bit and draws every figure of ``nmmval
  figures`` from the merged parts and them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr
import yaml
from results_tables import SUMMARY_MAX_BYTES, summary
from run_times import INVOCATIONS, add_invocations, invocations, job_rows, write_jobs
from snakemake.utils import update_config

from nmmval import config as cfgmod
from nmmval import store
from nmmval.cube import gather, mark_nan
from nmmval.figures import render_all


def _stamp() -> str:
    """The UTC second of a save, as its files' names give it."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def _key(p: float, lam: float) -> tuple[str, str]:
    return store.format_p(p), store.format_p(lam)


def load_params(configfiles: list[Path]) -> cfgmod.Params:
    """The run's parameters from its config files, later files overriding earlier keys (as
    ``snakemake --configfile A B`` reads them)."""
    raw: dict = {}
    for path in configfiles:
        update_config(raw, yaml.safe_load(Path(path).read_text()) or {})
    return cfgmod.from_dict(raw)


def held_cells(parts: Path) -> dict[tuple[str, str], Path]:
    """The part holding each cell ⟨p, λ⟩ (keys as the paths write them, ``"0.050"``).

    Raises
    ------
    ValueError
        If two parts hold the same cell.
    """
    held: dict[tuple[str, str], Path] = {}
    for path in sorted(parts.glob("lam*.nc")):
        with xr.open_dataset(path) as ds:
            for p in ds["p"].values:
                for lam in ds["lam"].values:
                    key = _key(p, lam)
                    if key in held:
                        raise ValueError(
                            f"{path}: cell p={key[0]} lam={key[1]} is also in {held[key]}"
                        )
                    held[key] = path
    return held


def finished_cells(results: Path, params: cfgmod.Params) -> list[tuple[float, float]]:
    """The cells ⟨p, λ⟩ of the grid whose fit.nc and every seed's compare.nc exist."""
    return [
        (p, lam)
        for lam in params.grid_lam
        for p in params.grid_p
        if store.fit_path(results, p, lam).is_file()
        and all(
            (store.cell_dir(results, p, lam, s) / "compare.nc").is_file() for s in params.grid_seeds
        )
    ]


def _cell_of(job: str) -> tuple[str, str]:
    """⟨p, λ⟩ of a job named by its benchmark file (``p~0.050/lam~0.800[/seed~0003]``)."""
    p, lam = job.split("/")[:2]
    return p.removeprefix("p~"), lam.removeprefix("lam~")


def gather_cells(results: Path, ps: list[float], lam: float) -> xr.Dataset:
    """The cube of the cells ⟨p, λ⟩ for p in ``ps`` of the run in ``results``, gathered as
    ``nmmval gather`` gathers the whole grid (on its config with this sub-grid, no
    diagnostic cells)."""
    sub = cfgmod.load(
        results / "config.resolved.yaml",
        [f"grid.p={ps!r}", f"grid.lam=[{lam!r}]", "figures.diagnostic_cells=[]"],
    )
    return gather(sub, results)


def save(results: Path, parts: Path) -> list[Path]:
    """Write the finished cells that no part holds as parts (module docstring).

    Returns
    -------
    list of Path
        The part files written, one per λ with new cells (none if nothing is new).
    """
    params = cfgmod.load(results / "config.resolved.yaml")
    held = held_cells(parts)
    new = [c for c in finished_cells(results, params) if _key(*c) not in held]
    if not new:
        return []
    parts.mkdir(parents=True, exist_ok=True)
    base = _stamp()
    stamp, n = base, 1
    while any(parts.glob(f"*-{stamp}.*")):  # a save in the same second: never overwrite
        n += 1
        stamp = f"{base}-{n}"
    n_grid = len(params.grid_p) * len(params.grid_lam)
    written = []
    for lam in dict.fromkeys(lam for _, lam in new):
        ps = [p for p, lam_ in new if lam_ == lam]
        out = parts / f"lam{store.format_p(lam)}-{stamp}.nc"
        summary(gather_cells(results, ps, lam), out, SUMMARY_MAX_BYTES * len(ps) // n_grid)
        written.append(out)
    keys = {_key(*c) for c in new}
    write_jobs(
        parts / f"jobs-{stamp}.csv", [r for r in job_rows(results) if _cell_of(r["job"]) in keys]
    )
    add_invocations(parts / INVOCATIONS, invocations(results))
    return written


def targets(params: cfgmod.Params, p: float, lam: float) -> list[str]:
    """The files that finish a cell ⟨p, λ⟩: its fit.nc and every seed's compare.nc, as paths
    of the workflow's working folder (``results/<run>/cells/…``)."""
    results = Path("results") / params.run
    return [store.fit_path(results, p, lam).as_posix()] + [
        (store.cell_dir(results, p, lam, s) / "compare.nc").as_posix() for s in params.grid_seeds
    ]


def missing(parts: Path, params: cfgmod.Params, cells_per_batch: int = 7) -> list[list[str]]:
    """The targets of the cells no part holds, in batches of at most ``cells_per_batch``
    cells of one λ, in the grid's order."""
    held = held_cells(parts) if parts.is_dir() else {}
    batches = []
    for lam in params.grid_lam:
        todo = [p for p in params.grid_p if _key(p, lam) not in held]
        for i in range(0, len(todo), cells_per_batch):
            batch = todo[i : i + cells_per_batch]
            batches.append([t for p in batch for t in targets(params, p, lam)])
    return batches


def _diagnostic(params: cfgmod.Params) -> list[tuple[float, float]]:
    return [(c["p"], c["lam"]) for c in params.resolved["figures"]["diagnostic_cells"]]


def figure_cube(cube: xr.Dataset, results: Path, params: cfgmod.Params) -> xr.Dataset:
    """``cube`` (:func:`merge`) with what the diagnostic pages need that the parts dropped:
    the diagnostic cells gathered again from ``results`` (a run that has them on this
    machine), whose variables must equal the parts' to the bit (the cells rerun with the
    same seeds), and their frequency-resolved variables; other cells hold NaN there.

    Raises
    ------
    ValueError
        If a re-gathered cell differs from its part.
    """
    out = cube.copy()
    for p, lam in _diagnostic(params):
        cell = gather_cells(results, [p], lam).squeeze(["p", "lam"], drop=True)
        for name, da in cell.data_vars.items():
            if name in cube:
                kept = cube[name].sel(p=p, lam=lam).values
                if not np.array_equal(da.values, kept, equal_nan=da.dtype.kind == "f"):
                    raise ValueError(f"{results}: cell p={p} lam={lam}: {name} is not its part's")
                continue
            if name not in out:
                out = out.assign_coords({d: cell[d] for d in da.dims if d not in out.coords})
                dims = ("p", "lam", *da.dims)
                nan = np.full([out.sizes[d] for d in dims], np.nan, da.dtype)
                out[name] = xr.Variable(dims, nan, da.attrs)
            out[name].loc[{"p": p, "lam": lam}] = da.values
    return out


def _cube_config(cfg: dict) -> dict:
    """The config without what a part changes and no cube value depends on: the grid's p
    and λ, and the figures."""
    out = {k: v for k, v in cfg.items() if k not in ("grid", "figures")}
    return {**out, "seeds": cfg["grid"]["seeds"]}


def merge(parts: Path, params: cfgmod.Params) -> xr.Dataset:
    """The summary cube of the whole grid of ``params`` from its parts (module docstring).

    Raises
    ------
    ValueError
        One line: a part of another config, a cell held twice, or the cells no part holds.
    """
    held = held_cells(parts)
    files = sorted(set(held.values()))
    grid = {_key(p, lam) for p in params.grid_p for lam in params.grid_lam}
    lacking = sorted(grid - set(held))
    if lacking:
        shown = ", ".join(f"p={p} lam={lam}" for p, lam in lacking[:3])
        raise ValueError(f"{parts}: {len(lacking)} cells in no part ({shown}, ...)")
    datasets = [xr.load_dataset(f) for f in files]
    for f, ds in zip(files, datasets, strict=True):
        if _cube_config(json.loads(ds.attrs["config"])) != _cube_config(params.resolved):
            raise ValueError(f"{f}: made with another config than the run's")
    kept = [v for v in datasets[0].data_vars if all(v in ds for ds in datasets)]
    merged = xr.merge(
        [ds[kept] for ds in datasets],
        join="outer",
        compat="no_conflicts",
        combine_attrs="override",
    )
    merged = merged.sel(p=list(params.grid_p), lam=list(params.grid_lam))
    first = datasets[0]
    for name in merged.data_vars:
        merged[name] = merged[name].astype(first[name].dtype)
        merged[name].attrs = dict(first[name].attrs)
    nan_vars = mark_nan(merged)
    constant = [d.attrs["constant_potential_cells"] for d in datasets]
    merged.attrs.update(
        config=params.to_json(),
        n_cells=int(np.prod([merged.sizes[d] for d in ("p", "lam", "seed")])),
        source=f"{len(files)} parts: " + ", ".join(f.name for f in files),
        nan_variables=", ".join(nan_vars) if nan_vars else "none",
        constant_potential_cells="; ".join(c for c in constant if c != "none") or "none",
        history=first.attrs["history"]
        + f"\n{time.strftime('%Y-%m-%dT%H:%M:%S%z')} merged from {len(files)} parts"
        " (docs/run_parts.py)",
    )
    return merged


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("save", help="save the run's finished cells as parts")
    sp.add_argument("results", type=Path, help="the run's results folder (RUNS/results/<run>)")
    sp.add_argument("parts", type=Path, help="the run's parts folder")
    commands = {
        "missing": "print the targets of the cells no part holds, one line per batch",
        "diagnostic": "print the targets of the diagnostic cells, one line",
        "merge": "merge the parts into the run's summary cube",
        "figures": "draw the run's figures from its parts and its diagnostic cells",
    }
    for name, text in commands.items():
        sp = sub.add_parser(name, help=text)
        sp.add_argument("parts", type=Path, help="the run's parts folder")
        sp.add_argument("--configfile", type=Path, nargs="+", required=True)
        if name == "missing":
            sp.add_argument("--cells", type=int, default=7, help="cells per batch (7)")
        if name == "merge":
            sp.add_argument("--out", type=Path, required=True, help="the summary cube to write")
        if name == "figures":
            sp.add_argument("--results", type=Path, required=True,
                            help="a results folder holding the diagnostic cells")  # fmt: skip
            sp.add_argument("--outdir", type=Path, required=True, help="folder of the figures")
    args = ap.parse_args(argv)
    try:
        if args.command == "save":
            for path in save(args.results, args.parts):
                print(f"run_parts: wrote {path}", file=sys.stderr)
            return 0
        params = load_params(args.configfile)
        if args.command == "missing":
            for row in missing(args.parts, params, args.cells):
                print(" ".join(row))
        elif args.command == "diagnostic":
            print(" ".join(t for cell in _diagnostic(params) for t in targets(params, *cell)))
        elif args.command == "merge":
            held = summary(merge(args.parts, params), args.out)
            print(f"run_parts: wrote {args.out} (holds {', '.join(held) or 'no'} curves)",
                  file=sys.stderr)  # fmt: skip
        else:
            cube = figure_cube(merge(args.parts, params), args.results, params)
            written = render_all(params, cube, args.results, args.outdir)
            print(f"run_parts: wrote {len(written)} files in {args.outdir}", file=sys.stderr)
    except (ValueError, OSError, cfgmod.ConfigError, store.InputError) as err:
        print(f"run_parts: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
