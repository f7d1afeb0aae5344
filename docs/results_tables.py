"""Print the per-cell tables of docs/results.md from a gathered cube.

Usage::

    python docs/results_tables.py results/midscale/cube.nc > tables.md
    python docs/results_tables.py results/midscale/cube.nc --summary docs/results/cube.nc

One Markdown table per λ: seed means of the E rate and Spike-contrast, and
the seed-combined measures of MODEL.md §6 for the CFM and the MFM: the
paper's readings (§6.1-6.2) and the validation protocol's paired difference
test and verdict (§6.3; A adequate, U undecided, I inadequate). With
``--summary OUT``, also write the cube without its two large variables (the
spectra over frequency and the correlations over lag), every attribute kept.
"""

from __future__ import annotations

import argparse

import numpy as np
import xarray as xr


def _pval(x: float) -> str:
    if not np.isfinite(x):
        return "nan"
    if x == 0.0:
        return "0"
    return f"{x:.2f}" if x >= 0.01 else f"{x:.1e}".replace("e-0", "e-")


_VERDICT = {1: "A", 0: "U", -1: "I"}


def _num(x: float, fmt: str) -> str:
    return "nan" if not np.isfinite(x) else format(x, fmt)


def table(ds: xr.Dataset, lam: float) -> str:
    """The Markdown table of one λ row of the cube."""
    row = ds.sel(lam=lam)
    head = (
        "| p | E rate (Hz) | Spike-contrast | ϖ LIF / CFM / MFM (Hz) | χ² CFM / MFM "
        "| p_paper CFM / MFM | p paired CFM / MFM | τ_max CFM / MFM (ms) | ρ CFM / MFM "
        "| ρ p CFM / MFM | verdict CFM / MFM | MFM diverged (seeds) |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for p in row.p.values:
        c = row.sel(p=p)
        mf = [_num(float(c.median_freq_Hz.sel(model=m)), ".1f") for m in ("LIF", "CFM", "MFM")]

        def pair(var, fmt, c=c):
            return " / ".join(fmt(float(c[var].sel(mass=m))) for m in ("CFM", "MFM"))

        n_div = int(c.diverged_seed.sel(model="MFM").sum())
        lines.append(
            f"| {p:.2f} | {float(c.rate_E_Hz.mean()):.2f} | {float(c.synchrony.mean()):.2f} "
            f"| {' / '.join(mf)} | {pair('chi2', lambda x: _num(x, '.2f'))} "
            f"| {pair('chi2_p_paper', _pval)} | {pair('difference_p', _pval)} "
            f"| {pair('tau_max_ms', lambda x: _num(x, '.1f'))} "
            f"| {pair('rho', lambda x: _num(x, '.2f'))} | {pair('rho_p', _pval)} "
            f"| {pair('verdict', lambda x: _VERDICT[int(x)])} | {n_div} |"
        )
    return "\n".join(lines)


def summary(ds: xr.Dataset, out: str) -> None:
    """Write ``ds`` without its frequency- and lag-resolved variables to ``out``."""
    small = ds.drop_dims(["freq_Hz", "lag_ms"])
    small.attrs["comment"] = (
        ds.attrs.get("comment", "") + " Summary: spectrum and xcorr dropped (docs/results.md)."
    ).strip()
    enc = {v: {"zlib": True, "complevel": 5} for v in small.data_vars}
    small.to_netcdf(out, encoding=enc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cube", help="a cube.nc written by the workflow's gather")
    ap.add_argument("--summary", metavar="OUT", help="also write the summary cube here")
    args = ap.parse_args(argv)
    with xr.open_dataset(args.cube) as ds:
        for lam in ds.lam.values:
            print(f"### λ = {lam:g}\n\n{table(ds, float(lam))}\n")
        if args.summary:
            summary(ds, args.summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
