"""Run the calibration search of MODEL.md §7: ``python -m nmmval.calibration.run``.

Stage 1 probes many candidates on the λ = 0.8 column and the fast corner
(one seed, short window); stage 2 re-evaluates the best with more seeds and
a longer window; ``--stage map`` simulates the full paper grid for one
candidate. The search file names the criteria it scores (``criteria``, all of
:data:`nmmval.calibration.calibrate.CRITERIA` if absent) and the folder of its
records (``out``, unless ``--out`` is given). Every evaluated probe is
appended to a TSV as soon as it is computed, so an interrupted search keeps
what it did.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import yaml

from nmmval import config
from nmmval.calibration.calibrate import (
    CRITERIA,
    FREE,
    ZETA_MIN,
    overrides,
    regime_metrics,
    sample_candidates,
    score,
)

STAGE1_CELLS = [(p, 0.8) for p in (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)] + [
    (1.0, 0.9),
    (1.0, 1.0),
]


def _params(base: Path, candidate: dict, T_ms: float, T0_ms: float):
    # the probes do not use the closure diagnostics (MODEL.md §4): not recorded
    extra = [
        f"simulation.T_ms={T_ms}",
        f"simulation.T0_ms={T0_ms}",
        "simulation.record_closures=false",
    ]
    return config.load(base, overrides(candidate) + extra)


def evaluate(
    base, name, candidate, cells, seeds, T_ms, T0_ms, tsv: Path, threads=None, criteria=None
):
    """Simulate a candidate on ``cells`` x ``seeds``; append rows to ``tsv``; return its score.

    Probes of the candidate already in ``tsv`` with the same values and T are
    kept and not simulated again (an interrupted evaluation resumes); its
    other rows are dropped. ``criteria`` names the criteria of the score
    (default: all).
    """
    params = _params(base, candidate, T_ms, T0_ms)
    done = {}
    if tsv.exists():
        with open(tsv, newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        mine = [r for r in rows if r["candidate"] == name]
        same = [
            r
            for r in mine
            if float(r["T_ms"]) == T_ms and all(float(r[k]) == candidate[k] for k in FREE)
        ]
        done = {(r.p, r.lam, r.seed): r for r in map(_regime, same)}
        if len(same) < len(mine):
            with open(tsv, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t")
                w.writeheader()
                w.writerows(r for r in rows if r["candidate"] != name or r in same)
    new = not tsv.exists()
    regimes = []
    with open(tsv, "a", newline="") as fh:
        w = csv.writer(fh, delimiter="\t")
        if new:
            w.writerow(["candidate", *FREE, "T_ms", *regime_fields()])
        for p, lam in cells:
            for s in seeds:
                if (p, lam, s) in done:
                    regimes.append(done[(p, lam, s)])
                    continue
                r = regime_metrics(params, p, lam, s, threads=threads)
                regimes.append(r)
                w.writerow([name, *(candidate[k] for k in FREE), T_ms, *r.as_dict().values()])
                fh.flush()
    return score(regimes, tuple(CRITERIA) if criteria is None else tuple(criteria))


def _regime(row: dict):
    """A probe row of a TSV record as :class:`~nmmval.calibration.calibrate.Regime`."""
    from nmmval.calibration.calibrate import Regime

    return Regime(**{f: int(row[f]) if f == "seed" else float(row[f]) for f in regime_fields()})


def read_probes(tsv: Path) -> dict:
    """The probes of a TSV record as :class:`~nmmval.calibration.calibrate.Regime` by candidate."""
    with open(tsv, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    out = {}
    for r in rows:
        out.setdefault(r["candidate"], []).append(_regime(r))
    return out


def regime_fields():
    """Column names of a probe row."""
    from dataclasses import fields

    from nmmval.calibration.calibrate import Regime

    return [f.name for f in fields(Regime)]


def _mean(rows, p, lam, key):
    """Mean of ``key`` over the seeds of cell (p, λ); the peak only where Fano > 3."""
    cell = [r for r in rows if float(r["p"]) == p and float(r["lam"]) == lam]
    if key == "peak_Hz":  # asynchronous (Fano < 3): no dominant frequency
        cell = [r for r in cell if float(r["fano"]) > 3]
    vals = [float(r[key]) for r in cell]
    return sum(vals) / len(vals) if vals else float("nan")


def plot_regime_map(tsv: Path, png: Path, candidate: str | None = None) -> None:
    """Rate, Spike-contrast, Fano factor and dominant frequency over the (p, λ) grid.

    Only the rows of ``candidate`` if given. Records with ΣḠ (the over-damped
    search) get a fifth panel: ΣḠ with the over-damped bound ζ = 1 as a
    contour and a cross on every cell whose MFM diverged.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    with open(tsv) as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    rows = [r for r in rows if candidate in (None, r["candidate"])]
    ps = sorted({float(r["p"]) for r in rows})
    lams = sorted({float(r["lam"]) for r in rows})
    panels = [
        ("rate_E_Hz", "E rate (Hz)", "viridis", True),
        ("synchrony", "Spike-contrast", "magma", False),
        ("fano", "Fano factor of the population count (1 ms)", "cividis", True),
        ("peak_Hz", "peak frequency (Hz), blank: Fano < 3", "plasma", True),
    ]
    if "sum_G" in rows[0]:
        panels.append(("sum_G", "ΣḠ; line: ζ = 1, x: MFM diverged", "inferno", True))
    n_rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(n_rows, 2, figsize=(12, 3.25 * n_rows), constrained_layout=True)
    for ax in axes.flat[len(panels) :]:
        ax.set_axis_off()
    for ax, (key, label, cmap, log) in zip(axes.flat, panels, strict=False):
        grid = np.full((len(lams), len(ps)), np.nan)
        for i, lam in enumerate(lams):
            for j, p in enumerate(ps):
                grid[i, j] = _mean(rows, p, lam, key)
        norm = matplotlib.colors.LogNorm(vmin=max(np.nanmin(grid), 1e-2)) if log else None
        ax.set_facecolor("0.85")
        mesh = ax.pcolormesh(ps, lams, grid, shading="nearest", cmap=cmap, norm=norm)
        fig.colorbar(mesh, ax=ax, label=label)
        ax.set_xlabel("connection probability p")
        ax.set_ylabel("excitatory fraction λ")
        ax.set_title(label)
        if key == "sum_G":
            zeta = [[_mean(rows, p, lam, "zeta") for p in ps] for lam in lams]
            ax.contour(ps, lams, zeta, levels=[ZETA_MIN], colors="c")
            bad = [(float(r["p"]), float(r["lam"])) for r in rows if float(r["mfm_diverged"])]
            if bad:
                ax.plot(*zip(*bad, strict=True), "x", color="c", ms=8)
    name = rows[0]["candidate"]
    fig.suptitle(f"Regime map of candidate {name} (N = 10 000, mean over seeds)")
    fig.savefig(png, dpi=110)


def score_table(scores: dict) -> str:
    """The candidates and their scores of one stage as a Markdown table (docs/calibration.md)."""
    first = next(iter(scores.values()))["score"]
    criteria = [k for k in CRITERIA if k in first]
    extra = [k for k in ("max_sum_G", "min_zeta", "mfm_diverged") if k in first]
    head = ["candidate", *FREE, *criteria, "passed", "onset_p", *extra]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, rec in scores.items():
        sc = rec["score"]
        cells = [name, *(f"{rec['params'][k]:.3g}" for k in FREE)]
        cells += ["yes" if sc[k] else "no" for k in criteria]
        cells += [f"{sc[k]:.3g}" for k in ("passed", "onset_p", *extra)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(prog="python -m nmmval.calibration.run", description=__doc__)
    ap.add_argument("--base", default="config/paper.yaml", help="config the candidates modify")
    ap.add_argument("--search", default="config/calibration.yaml", help="search space and stages")
    ap.add_argument("--out", help="folder of the records (default: the search's out)")
    ap.add_argument("--stage", choices=["1", "2", "map"], help="which stage to run")
    ap.add_argument("--candidate", help="name of the candidate (stage map)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--plot", action="store_true", help="draw the regime map of stage map")
    ap.add_argument(
        "--rescore", action="store_true", help="score the stage's recorded probes again"
    )
    ap.add_argument("--table", action="store_true", help="print the stage's scores as Markdown")
    args = ap.parse_args(argv)
    spec = yaml.safe_load(Path(args.search).read_text())
    out = Path(args.out or spec.get("out", "docs/calibration"))
    if args.plot:
        name = args.candidate or spec["map"]["candidate"]
        plot_regime_map(out / "probes_stagemap.tsv", out / "regime_map.png", name)
        return 0
    if args.stage is None:
        ap.error("give --stage 1, 2 or map (or --plot)")
    out.mkdir(parents=True, exist_ok=True)
    cands = {c["name"]: {k: c[k] for k in FREE} for c in spec.get("candidates", [])}
    s1 = spec["stage1"]
    for i, c in enumerate(sample_candidates(s1["space"], s1["n_random"], s1["seed"])):
        cands.setdefault(f"r{i:02d}", c)
    scores_path = out / f"scores_stage{args.stage}.yaml"
    scores = yaml.safe_load(scores_path.read_text()) if scores_path.exists() else {}
    if args.table:
        print(score_table(scores))
        return 0
    if args.stage == "1":
        todo = list(cands)
        cells, seeds, T, T0 = STAGE1_CELLS, [0], s1["T_ms"], s1["T0_ms"]
    elif args.stage == "2":
        s2 = spec["stage2"]
        todo = s2["candidates"]
        cells = [tuple(c) for c in s2["cells"]]
        seeds, T, T0 = s2["seeds"], s2["T_ms"], s2["T0_ms"]
    else:
        sm = spec["map"]
        todo = [args.candidate or sm["candidate"]]
        cells = [(p, lam) for lam in sm["lam"] for p in sm["p"]]
        seeds, T, T0 = sm["seeds"], sm["T_ms"], sm["T0_ms"]
    tsv = out / f"probes_stage{args.stage}.tsv"
    if args.rescore:
        criteria = tuple(spec.get("criteria", CRITERIA))
        for name, regimes in read_probes(tsv).items():
            res = score(regimes, criteria)
            res = {k: (float(v) if not isinstance(v, bool) else v) for k, v in res.items()}
            scores[name] = {"params": cands[name], **scores.get(name, {}), "score": res}
        scores_path.write_text(yaml.safe_dump(scores, sort_keys=False))
        return 0
    for name in todo:
        if name in scores:
            continue
        t0 = time.time()
        res = evaluate(
            args.base,
            name,
            cands[name],
            cells,
            seeds,
            T,
            T0,
            tsv,
            args.threads,
            spec.get("criteria"),
        )
        res = {k: (float(v) if not isinstance(v, bool) else v) for k, v in res.items()}
        scores[name] = {"params": cands[name], "score": res, "seconds": round(time.time() - t0)}
        scores_path.write_text(yaml.safe_dump(scores, sort_keys=False))
        print(name, json.dumps(res), f"{time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
