"""Print every table of docs/results.md from the gathered cubes of the paper-scale runs.

Usage::

    python docs/results_tables.py --paper RUNS/results/paper/cube.nc \\
        --highg RUNS/results/highg-10s/cube.nc \\
        --finite 2500=RUNS/results/finite-N2500/cube.nc \\
        --finite 10000=RUNS/results/finite-N10000/cube.nc \\
        --finite 40000=RUNS/results/finite-N40000/cube.nc \\
        --summary-dir docs/results > tables.md

(``RUNS`` is the output directory of docs/paper_runs.sh.) Markdown sections,
each parameter set (``--paper``, ``--highg``) in turn:

1. **Cell by cell**, one table per λ: seed means of the E rate and
   Spike-contrast, the network's median frequency ϖ, the cell's regime
   (:func:`regimes`), every mass model's verdict of the validation protocol
   (MODEL.md §6.3: A adequate, U undecided, I inadequate with its reasons'
   letters: D diverged, S spectra differ, L ρ below the adequacy level, N ρ
   not above its null; the fitted models' verdict on the held-out half,
   §5.3), the paper's readings for the CFM and the MFM (§6.1-6.2: χ², its
   p-value, ρ, its p-value, τ_max) and the seeds in which the MFM diverged.
2. **The paper's six findings**, each with the numbers behind it under the
   paper's readings and under the protocol, for the CFM and the MFM, and one
   line per finding (``F1`` ... ``F6``) with the key counts for the prose to
   cite. Findings 1 and 2 are graded (reproduced / partly / not) by the
   rules of :func:`grade_inside` and :func:`grade_fails`; 3-6 are left to
   the prose, which weighs "largely", "small" and "changes".
3. **The ladder**: per regime, the verdict counts of every mass model, with
   the inadequate verdicts' reasons; then each step of the ladder (the
   registry's ``below`` and ``adds``, MODEL.md §5.2): where the model above
   is adequate and the one below is not, the term it adds explains the
   failure (:func:`ladder_steps`).
4. **Finite size** (``--finite N=CUBE``, repeated): the λ = 0.8 row at each
   N: E rate, noise ceiling of ρ and every model's verdicts, side by side.

With ``--summary-dir DIR`` each cube's summary is written to
``DIR/cube_<run>_summary.nc`` (:func:`summary`: everything that fits in
20 MB, the spectra dropped first, then the correlation curves).

The rules (constants below): a cell is **synchronised** if its seed-mean
Spike-contrast exceeds :data:`SYNC_MIN` (MODEL.md §7's calibration rule;
NaN, no train with two spikes, counts as 0) or it is in **fast synchrony**:
the network's median frequency ϖ is at least :data:`FAST_MIN_HZ` (MODEL.md
§7's bound of a low-frequency onset; Spike-contrast under-scores > 100 Hz
synchrony, so the spectrum decides). A row's **onset** is its smallest p
that is synchronised; it is a low-frequency onset if that cell is not fast.
The **onset region** of a row with a low-frequency onset is the onset cell
and the cell just before it in p ("around the onset"). Every other cell is
in **low-frequency synchrony** (synchronised, not fast), **fast synchrony**,
or **asynchronous** (the rest, near-silent cells included). A model
**fits** a cell under the paper's reading if its χ² is not significant
(``chi2_p_paper`` > α) and **fails** it otherwise (a diverged model fails);
under the protocol it fits if adequate and fails if inadequate. The network
**spikes** (finding 6) where its seed-mean E rate is at least
:data:`SPIKING_MIN_HZ`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from nmmval import models
from nmmval.analysis.protocol import ADEQUATE, INADEQUATE, UNDECIDED
from nmmval.datasets import LIF
from nmmval.figures import reason_code, seed_warning

#: Spike-contrast above which a cell is synchronised (MODEL.md §7, the calibration's rule)
SYNC_MIN = 0.3
#: the network's median frequency (Hz) from which a cell is in fast synchrony (MODEL.md §7)
FAST_MIN_HZ = 30.0
#: seed-mean E rate (Hz) from which the network counts as spiking (finding 6)
SPIKING_MIN_HZ = 1.0
#: the row of the finite-size runs
FINITE_LAM = 0.8
#: largest summary file (bytes): beyond it the spectra, then the correlation curves are dropped
SUMMARY_MAX_BYTES = 20_000_000

ASYNC, ONSET, LOW, FAST = "asynchronous", "onset", "low-frequency synchrony", "fast synchrony"
#: the regimes in the order of the grid's p at a row with a low-frequency onset
REGIMES = (ASYNC, ONSET, LOW, FAST)
_SHORT = {ASYNC: "async", ONSET: "onset", LOW: "LF sync", FAST: "fast"}
_LETTER = {ADEQUATE: "A", UNDECIDED: "U", INADEQUATE: "I"}
#: the paper's two models, to which its findings refer
PAPER_MODELS = ("CFM", "MFM")


# ------------------------------------------------------------------ formatting
def _pval(x: float) -> str:
    if not np.isfinite(x):
        return "nan"
    if x == 0.0:
        return "0"
    return f"{x:.2f}" if x >= 0.01 else f"{x:.1e}".replace("e-0", "e-")


def _num(x: float, fmt: str) -> str:
    return "nan" if not np.isfinite(x) else format(x, fmt)


def _ps(ps) -> str:
    """A list of p values, ``"–"`` if empty."""
    return ", ".join(f"{p:g}" for p in ps) if len(ps) else "–"


def _range(x, fmt: str = ".1f") -> str:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return "–" if x.size == 0 else f"{x.min():{fmt}} … {x.max():{fmt}}"


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def verdict_code(verdict: int, reasons: int) -> str:
    """``"A"``, ``"U"`` or ``"I"`` followed by the reasons' letters: ``"I(SN)"``."""
    verdict = int(verdict)
    return f"I({reason_code(int(reasons))})" if verdict == INADEQUATE else _LETTER[verdict]


# ------------------------------------------------------------------ cells and regimes
def regimes(ds: xr.Dataset) -> tuple[xr.DataArray, dict[float, tuple[float, str]]]:
    """Each cell's regime and each row's onset (module docstring's rules).

    Parameters
    ----------
    ds : xarray.Dataset
        A cube (or its summary), p ascending.

    Returns
    -------
    regime : xarray.DataArray
        One of :data:`REGIMES` per (p, lam).
    onsets : dict
        λ -> (onset p, "low-frequency" or "fast"); (NaN, "none") for a row
        that never synchronises.
    """
    sync = ds.synchrony.mean("seed").fillna(0.0).transpose("p", "lam").values
    fast = (ds.median_freq_Hz.sel(model=LIF) >= FAST_MIN_HZ).transpose("p", "lam").values
    synchronised = (sync > SYNC_MIN) | fast
    regime = np.where(fast, FAST, np.where(synchronised, LOW, ASYNC)).astype(object)
    onsets = {}
    for j, lam in enumerate(ds.lam.values):
        first = np.flatnonzero(synchronised[:, j])
        if first.size == 0:
            onsets[float(lam)] = (float("nan"), "none")
            continue
        i = int(first[0])
        onsets[float(lam)] = (float(ds.p.values[i]), "fast" if fast[i, j] else "low-frequency")
        if not fast[i, j]:
            regime[max(i - 1, 0) : i + 1, j] = ONSET
    da = xr.DataArray(regime.astype(str), dims=("p", "lam"), coords={"p": ds.p, "lam": ds.lam})
    return da, onsets


def cells(ds: xr.Dataset) -> xr.Dataset:
    """The per-cell quantities every table reads, dims (p, lam[, mass]).

    ``rate`` and ``synchrony`` are seed means, ``freq`` the network's median
    frequency, ``regime`` as :func:`regimes`; ``verdict`` and ``reasons`` the
    protocol's, on the held-out half for the fitted models (MODEL.md §5.3),
    ``verdict_held_out`` every model's on the held-out half;
    ``fits_paper`` / ``fails_paper`` the paper's χ² reading (module
    docstring); ``mfm_diverged`` the MFM's diverged seeds; the attribute
    ``onsets`` is :func:`regimes`'s, ``fitted`` names the fitted models.
    """
    ds = ds.sortby("p")
    regime, onsets = regimes(ds)
    fitted = list(ds.fitted.values) if "fitted" in ds.coords else []
    held = ds.mass.isin(fitted)
    alpha = float(ds.attrs["alpha"])
    out = xr.Dataset(
        {
            "rate": ds.rate_E_Hz.mean("seed"),
            "synchrony": ds.synchrony.mean("seed"),
            "freq": ds.median_freq_Hz.sel(model=LIF, drop=True),
            "regime": regime,
            "verdict": xr.where(held, ds.verdict_held_out, ds.verdict),
            "reasons": xr.where(held, ds.verdict_reasons_held_out, ds.verdict_reasons),
            "verdict_held_out": ds.verdict_held_out,
            "fits_paper": ds.chi2_p_paper > alpha,
            "fails_paper": ~(ds.chi2_p_paper > alpha),
            "rho_significant_paper": ds.rho_p <= alpha,
            "rho_above_null": ds.rho_surrogate_p <= alpha,
            "rho_adequate": ds.rho_lower >= ds.rho_level,
            "mfm_diverged": ds.diverged_seed.sel(model="MFM").sum("seed"),
            "sum_G": ds.sum_G.mean("seed"),
            "zeta": ds.zeta.mean("seed"),
            **{v: ds[v] for v in ("chi2", "chi2_p_paper", "rho", "rho_p", "tau_max_ms")},
            **{v: ds[v] for v in ("rho_ceiling", "chi2_floor")},
        },
        attrs={"alpha": alpha, "onsets": onsets, "n_seeds": ds.sizes["seed"], "fitted": fitted},
    )
    return out.transpose("p", "lam", ...)


def _where(mask: xr.DataArray) -> list[tuple[float, float]]:
    """The (p, λ) of the cells where ``mask`` holds."""
    m = mask.transpose("p", "lam").values
    return [(float(mask.p[i]), float(mask.lam[j])) for i, j in zip(*np.nonzero(m), strict=True)]


def _cells_text(where: list[tuple[float, float]]) -> str:
    return "; ".join(f"({p:g}, {lam:g})" for p, lam in where) if where else "none"


def _config(ds: xr.Dataset) -> dict:
    """The run's resolved config, as the cube's ``config`` attribute holds it."""
    return json.loads(ds.attrs["config"])


def run_header(label: str, ds: xr.Dataset) -> str:
    """One line naming the run: N, T, T0, seeds, grid, and whether its seeds let the paired
    difference test reach α (:func:`nmmval.figures.seed_warning`)."""
    cfg = _config(ds)
    sim = cfg["simulation"]
    warning = seed_warning(ds.sizes["seed"], float(ds.attrs["alpha"]))
    return (
        f"{label}: run {cfg['run']}, N = {cfg['network']['N']}, T = {sim['T_ms'] / 1000:g} s, "
        f"T0 = {sim['T0_ms'] / 1000:g} s, {ds.sizes['seed']} seeds, {ds.sizes['p']} p × "
        f"{ds.sizes['lam']} λ, α = {ds.attrs['alpha']:g}" + (f"; {warning}" if warning else "")
    )


# ------------------------------------------------------------------ 1. cell by cell
def row_table(c: xr.Dataset, lam: float) -> str:
    """The Markdown table of one λ row (section 1)."""
    row = c.sel(lam=lam)
    masses = [str(m) for m in c.mass.values]
    head = [
        "p",
        "regime",
        "E rate (Hz)",
        "Spike-contrast",
        "ϖ LIF (Hz)",
        *masses,
        "χ² CFM / MFM",
        "p_paper CFM / MFM",
        "ρ CFM / MFM",
        "ρ p CFM / MFM",
        "τ_max CFM / MFM (ms)",
        "MFM diverged (seeds)",
    ]
    rows = []
    for p in row.p.values:
        x = row.sel(p=p)

        def pair(var, fmt, x=x):
            return " / ".join(fmt(float(x[var].sel(mass=m))) for m in PAPER_MODELS)

        rows.append(
            [
                f"{p:.2f}",
                _SHORT[str(x.regime.values)],
                _num(float(x.rate), ".2f"),
                _num(float(x.synchrony), ".2f"),
                _num(float(x.freq), ".1f"),
                *(verdict_code(x.verdict.sel(mass=m), x.reasons.sel(mass=m)) for m in masses),
                pair("chi2", lambda v: _num(v, ".3f")),
                pair("chi2_p_paper", _pval),
                pair("rho", lambda v: _num(v, ".2f")),
                pair("rho_p", _pval),
                pair("tau_max_ms", lambda v: _num(v, ".1f")),
                str(int(x.mfm_diverged)),
            ]
        )
    return _table(head, rows)


def section_cells(label: str, c: xr.Dataset) -> str:
    """Section 1 for one parameter set."""
    out = [f"## Cell by cell: {label}\n"]
    for lam in c.lam.values:
        out.append(f"### λ = {lam:g}\n\n{row_table(c, float(lam))}\n")
    return "\n".join(out)


# ------------------------------------------------------------------ 2. the six findings
def grade_inside(fits: xr.DataArray, region: xr.DataArray) -> str:
    """Grade "the model fits only inside ``region``".

    reproduced: it fits somewhere and only inside the region; not: it fits
    nowhere inside it; partly: inside and outside; "undecidable" if the
    region is empty.
    """
    if not bool(region.any()):
        return "undecidable (no such cells)"
    if not bool((fits & region).any()):
        return "not"
    return "partly" if bool((fits & ~region).any()) else "reproduced"


def grade_fails(fails: xr.DataArray, region: xr.DataArray) -> str:
    """Grade "the model fails in ``region``".

    reproduced: it fails in every cell of the region; not: in fewer than
    half of them; partly: otherwise; "undecidable" if the region is empty.
    """
    n = int(region.sum())
    if n == 0:
        return "undecidable (no such cells)"
    k = int((fails & region).sum())
    return "reproduced" if k == n else ("not" if 2 * k < n else "partly")


def _readings(c: xr.Dataset, m: str) -> dict[str, tuple[xr.DataArray, xr.DataArray]]:
    """(fits, fails) of model ``m`` under the paper's reading and the protocol."""
    x = c.sel(mass=m)
    return {
        "paper": (x.fits_paper, x.fails_paper),
        "protocol": (x.verdict == ADEQUATE, x.verdict == INADEQUATE),
    }


def finding1(c: xr.Dataset) -> dict:
    """Finding 1: the models fit only around the onset of low-frequency synchronisation.

    Returns, per model: ``rows`` (λ, onset p, its kind, the p of least χ²,
    that χ², that cell's regime), and per reading the cells it fits (``n_fit``), those
    in the onset region (``n_fit_onset``) and the grade (:func:`grade_inside`);
    ``n_onset`` the onset region's size.
    """
    onset = c.regime == ONSET
    out = {"n_onset": int(onset.sum()), "n_cells": int(c.rate.size)}
    for m in PAPER_MODELS:
        rows = []
        for lam, (p_on, kind) in c.attrs["onsets"].items():
            chi2 = c.chi2.sel(mass=m, lam=lam)
            if bool(chi2.notnull().any()):
                p_min = float(chi2.idxmin("p"))
                regime = str(c.regime.sel(p=p_min, lam=lam).values)
                rows.append((lam, p_on, kind, p_min, float(chi2.min()), regime))
            else:
                rows.append((lam, p_on, kind, float("nan"), float("nan"), ""))
        res = {"rows": rows}
        for reading, (fits, _) in _readings(c, m).items():
            res[reading] = {
                "n_fit": int(fits.sum()),
                "n_fit_onset": int((fits & onset).sum()),
                "grade": grade_inside(fits, onset),
            }
        out[m] = res
    return out


def finding2(c: xr.Dataset) -> dict:
    """Finding 2: the models fail in desynchronised and in fast synchronised states.

    Per model and reading: cells failed and fitted in each regime (``fail``,
    ``fit``, ``of``; under the protocol the rest are undecided) and the grade
    of failing in both regimes together (:func:`grade_fails`).
    """
    region = {ASYNC: c.regime == ASYNC, FAST: c.regime == FAST}
    both = region[ASYNC] | region[FAST]
    out = {}
    for m in PAPER_MODELS:
        res = {}
        for reading, (fits, fails) in _readings(c, m).items():
            res[reading] = {
                r: {
                    "fail": int((fails & mask).sum()),
                    "fit": int((fits & mask).sum()),
                    "of": int(mask.sum()),
                }
                for r, mask in region.items()
            }
            res[reading]["grade"] = grade_fails(fails, both)
        out[m] = res
    return out


def finding3(c: xr.Dataset) -> dict:
    """Finding 3: CFM and MFM largely agree.

    Cells where their protocol verdicts agree and where the paper's χ²
    reading agrees; |χ²_MFM − χ²_CFM| (median, largest and where) over cells
    with both finite; the cells and seeds in which the MFM diverged; the
    cells with seed-mean ζ ≥ 1 (over-damped, MODEL.md §5.1).
    """
    cfm, mfm = c.sel(mass="CFM"), c.sel(mass="MFM")
    d = abs(mfm.chi2 - cfm.chi2)
    finite = d.notnull()
    where_max = _where(d == d.max()) if bool(finite.any()) else []
    return {
        "n_cells": int(c.rate.size),
        "verdicts_agree": int((cfm.verdict == mfm.verdict).sum()),
        "paper_agrees": int((cfm.fits_paper == mfm.fits_paper).sum()),
        "dchi2_median": float(d.median()) if bool(finite.any()) else float("nan"),
        "dchi2_max": float(d.max()) if bool(finite.any()) else float("nan"),
        "dchi2_max_at": where_max[:1],
        "mfm_diverged_cells": int((c.mfm_diverged > 0).sum()),
        "mfm_diverged_seeds": int(c.mfm_diverged.sum()),
        "n_seeds": int(c.attrs["n_seeds"]),
        "mfm_diverged_where": _where(c.mfm_diverged > 0),
        "over_damped_cells": int((c.zeta >= 1.0).sum()),
        "max_sum_G": float(c.sum_G.max()),
    }


def finding4(c: xr.Dataset) -> dict:
    """Finding 4: the region where χ² is not significant is small.

    Per model: cells with the paper's χ² p > α, and the protocol's adequate
    and undecided cells, of all cells.
    """
    out = {"n_cells": int(c.rate.size)}
    for m in PAPER_MODELS:
        x = c.sel(mass=m)
        out[m] = {
            "not_significant": int(x.fits_paper.sum()),
            "adequate": int((x.verdict == ADEQUATE).sum()),
            "undecided": int((x.verdict == UNDECIDED).sum()),
        }
    return out


def finding5(c: xr.Dataset) -> dict:
    """Finding 5: correlations significant inside the synchronised region and in a small
    area as p → 0.

    Per model and regime: cells with ρ significant by the paper's test
    (``rho_p`` ≤ α), above the protocol's surrogate null, and adequate
    against the noise ceiling; the p range of the asynchronous cells above
    the null.
    """
    out = {}
    for m in PAPER_MODELS:
        x = c.sel(mass=m)
        res = {}
        for r in REGIMES:
            mask = c.regime == r
            res[r] = {
                "of": int(mask.sum()),
                "paper": int((x.rho_significant_paper & mask).sum()),
                "null": int((x.rho_above_null & mask).sum()),
                "adequate": int((x.rho_adequate & mask).sum()),
            }
        asyn = (c.regime == ASYNC) & x.rho_above_null
        res["async_null_p"] = sorted({p for p, _ in _where(asyn)})
        out[m] = res
    return out


def finding6(c: xr.Dataset) -> dict:
    """Finding 6: the MFM lag changes once the network spikes.

    τ_max of the MFM (median over seeds) in the cells where the network is
    quiet (E rate < :data:`SPIKING_MIN_HZ`), and where it spikes outside and
    inside fast synchrony (where the lag jumps between oscillation periods).
    """
    tau = c.tau_max_ms.sel(mass="MFM")
    quiet = c.rate < SPIKING_MIN_HZ
    groups = {
        "quiet": quiet,
        "spiking": ~quiet & (c.regime != FAST),
        "fast": ~quiet & (c.regime == FAST),
    }
    out = {}
    for name, mask in groups.items():
        t = tau.where(mask).values.ravel()
        t = t[np.isfinite(t)]
        out[name] = {
            "of": int(mask.sum()),
            "finite": int(t.size),
            "range": (float(t.min()), float(t.max())) if t.size else (np.nan, np.nan),
            "median_abs": float(np.median(np.abs(t))) if t.size else float("nan"),
        }
    return out


def section_findings(label: str, c: xr.Dataset) -> str:
    """Section 2 for one parameter set: each finding's numbers and its F-line."""
    a = c.attrs["alpha"]
    out = [f"## The six findings: {label}\n"]
    f1 = finding1(c)
    onsets = ", ".join(
        f"λ {lam:g}: {'none' if kind == 'none' else f'p {p:g} ({kind})'}"
        for lam, (p, kind) in c.attrs["onsets"].items()
    )
    out.append(
        f"**1. Fit only around the onset of low-frequency synchronisation.** "
        f"Onsets: {onsets}; onset region {f1['n_onset']} of {f1['n_cells']} cells.\n"
    )
    for m in PAPER_MODELS:
        mins = "; ".join(
            f"λ {lam:g}: {_num(x, '.3f')} at p {pm:g} ({_SHORT.get(r, 'nan')})"
            for lam, _, _, pm, x, r in f1[m]["rows"]
        )
        pa, pr = f1[m]["paper"], f1[m]["protocol"]
        out.append(
            f"- F1 {label} {m}: least χ² at {mins}. Not significant (p_paper > {a:g}) in "
            f"{pa['n_fit']} cells, {pa['n_fit_onset']} in the onset region: {pa['grade']}. "
            f"Adequate in {pr['n_fit']} cells, {pr['n_fit_onset']} in the onset region: "
            f"{pr['grade']}."
        )
    f2 = finding2(c)
    out.append("\n**2. Fail in desynchronised and in fast synchronised states.**\n")
    for m in PAPER_MODELS:
        parts = []
        for reading, word in (("paper", "significant χ² or diverged"), ("protocol", "inadequate")):
            r = f2[m][reading]
            parts.append(
                f"{word} in {r[ASYNC]['fail']} of {r[ASYNC]['of']} asynchronous and "
                f"{r[FAST]['fail']} of {r[FAST]['of']} fast cells (fits {r[ASYNC]['fit']} and "
                f"{r[FAST]['fit']}): {r['grade']}"
            )
        out.append(f"- F2 {label} {m}: paper: {parts[0]}; protocol: {parts[1]}.")
    f3 = finding3(c)
    n = f3["n_cells"]
    at = _cells_text(f3["dchi2_max_at"])
    out.append(
        "\n**3. CFM and MFM largely agree.**\n\n"
        f"- F3 {label}: same protocol verdict in {f3['verdicts_agree']} of {n} cells, same paper "
        f"χ² reading in {f3['paper_agrees']} of {n}; |χ²_MFM − χ²_CFM| median "
        f"{f3['dchi2_median']:.3f}, largest {f3['dchi2_max']:.3f} at (p, λ) {at}; MFM diverged "
        f"in {f3['mfm_diverged_cells']} of {n} cells ({f3['mfm_diverged_seeds']} of "
        f"{n * f3['n_seeds']} seeds): {_cells_text(f3['mfm_diverged_where'])}; ζ ≥ 1 in "
        f"{f3['over_damped_cells']} of {n} cells, largest ΣḠ {f3['max_sum_G']:.2f}."
    )
    f4 = finding4(c)
    out.append("\n**4. The region where χ² is not significant is small.**\n")
    for m in PAPER_MODELS:
        r = f4[m]
        out.append(
            f"- F4 {label} {m}: χ² not significant (paper) in {r['not_significant']} of "
            f"{f4['n_cells']} cells; adequate (protocol) in {r['adequate']}, undecided in "
            f"{r['undecided']}."
        )
    f5 = finding5(c)
    out.append(
        "\n**5. Correlations significant inside the synchronised region and in a small area as "
        "p → 0.** Per regime: significant by the paper's test / above the surrogate null / "
        "adequate against the noise ceiling, of the regime's cells.\n"
    )
    for m in PAPER_MODELS:
        parts = "; ".join(
            f"{r}: {f5[m][r]['paper']} / {f5[m][r]['null']} / {f5[m][r]['adequate']} of "
            f"{f5[m][r]['of']}"
            for r in REGIMES
        )
        out.append(
            f"- F5 {label} {m}: {parts}; asynchronous cells above the null at p "
            f"{_ps(f5[m]['async_null_p'])}."
        )
    f6 = finding6(c)
    out.append(
        f"\n**6. The MFM lag changes once the network spikes** (spiking: E rate ≥ "
        f"{SPIKING_MIN_HZ:g} Hz).\n"
    )
    parts = "; ".join(
        f"{name} {r['of']} cells ({r['finite']} finite): τ_max {_range(r['range'])} ms, "
        f"median |τ_max| {_num(r['median_abs'], '.1f')} ms"
        for name, r in (
            ("quiet", f6["quiet"]),
            ("spiking outside fast synchrony", f6["spiking"]),
            ("fast synchrony", f6["fast"]),
        )
    )
    out.append(f"- F6 {label} MFM: {parts}.")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ 3. the ladder
def ladder(c: xr.Dataset) -> dict[str, dict[str, dict]]:
    """Verdict counts per regime and model: ``{regime: {model: {"A", "U", "I", "reasons"}}}``.

    ``reasons`` counts the inadequate verdicts' reason codes (``"S"``, ``"SN"`` ...).
    """
    out = {}
    for r in REGIMES:
        mask = (c.regime == r).values
        out[r] = {"of": int(mask.sum())}
        for m in c.mass.values:
            v = c.verdict.sel(mass=m).values[mask]
            codes = [reason_code(int(x)) for x in c.reasons.sel(mass=m).values[mask][v == -1]]
            out[r][str(m)] = {
                "A": int((v == ADEQUATE).sum()),
                "U": int((v == UNDECIDED).sum()),
                "I": int((v == INADEQUATE).sum()),
                "reasons": {k: codes.count(k) for k in sorted(set(codes))},
            }
    return out


def section_ladder(label: str, c: xr.Dataset) -> str:
    """Section 3 for one parameter set."""
    lad = ladder(c)
    masses = [str(m) for m in c.mass.values]
    rows = []
    for r in REGIMES:
        cells_ = [f"{lad[r][m]['A']} / {lad[r][m]['U']} / {lad[r][m]['I']}" for m in masses]
        rows.append([r, str(lad[r]["of"]), *cells_])
    lines = [
        f"## The ladder: {label}\n",
        "Adequate / undecided / inadequate cells per regime (fitted models: held-out half).\n",
        _table(["regime", "cells", *masses], rows),
        "",
    ]
    for r in REGIMES:
        if lad[r]["of"] == 0:
            continue
        parts = "; ".join(
            f"{m} A {lad[r][m]['A']}"
            + (
                f", I {lad[r][m]['I']} ("
                + ", ".join(f"{k} {n}" for k, n in lad[r][m]["reasons"].items())
                + ")"
                if lad[r][m]["I"]
                else ""
            )
            for m in masses
        )
        lines.append(f"- L {label} {r} ({lad[r]['of']} cells): {parts}.")
    return "\n".join(lines) + "\n"


def ladder_steps(c: xr.Dataset) -> list[dict]:
    """Each step of the ladder (:func:`nmmval.models.steps`) per regime: where the model above
    is adequate and the one below inadequate, the term it adds explains the failure.

    Both models of a step are judged on the same window: the held-out half if
    either is fitted (MODEL.md §5.3), the whole analysis window otherwise.
    Steps with a model not in the cube are left out.

    Returns
    -------
    list of dict
        One per step: ``lower``, ``upper``, ``adds`` and per regime ``{"of",
        "explained"`` (lower inadequate, upper adequate), ``"both_fail"``,
        ``"worse"`` (lower adequate, upper inadequate), ``"both_fit"}``.
    """
    fitted = set(c.attrs["fitted"])
    present = set(c.mass.values)
    out = []
    for low, up, adds in models.steps():
        if not {low, up} <= present:
            continue
        v = c.verdict_held_out if {low, up} & fitted else c.verdict
        lo_ok, lo_bad = v.sel(mass=low) == ADEQUATE, v.sel(mass=low) == INADEQUATE
        up_ok, up_bad = v.sel(mass=up) == ADEQUATE, v.sel(mass=up) == INADEQUATE
        step = {"lower": low, "upper": up, "adds": adds}
        for r in REGIMES:
            mask = c.regime == r
            step[r] = {
                "of": int(mask.sum()),
                "explained": int((lo_bad & up_ok & mask).sum()),
                "both_fail": int((lo_bad & up_bad & mask).sum()),
                "worse": int((lo_ok & up_bad & mask).sum()),
                "both_fit": int((lo_ok & up_ok & mask).sum()),
            }
        out.append(step)
    return out


def section_steps(label: str, c: xr.Dataset) -> str:
    """The ladder's steps for one parameter set (part of section 3)."""
    steps = ladder_steps(c)
    regimes_ = [r for r in REGIMES if steps and steps[0][r]["of"]]
    rows = [
        [
            f"{s['lower']} → {s['upper']}",
            s["adds"],
            *(
                f"{s[r]['explained']} / {s[r]['both_fail']} / {s[r]['worse']} / {s[r]['both_fit']}"
                for r in regimes_
            ),
        ]
        for s in steps
    ]
    head = ["step", "adds", *(f"{r} ({steps[0][r]['of']})" for r in regimes_)]
    return (
        f"### The ladder's steps: {label}\n\n"
        "Per regime, cells where the model above is adequate and the one below inadequate (the "
        "added term explains the failure) / both inadequate / the one below adequate, the one "
        "above inadequate / both adequate. A step with a fitted model is judged on the held-out "
        "half.\n\n" + _table(head, rows) + "\n"
    )


# ------------------------------------------------------------------ 4. finite size
def finite_row(runs: dict[int, xr.Dataset]) -> dict:
    """The λ = :data:`FINITE_LAM` row of each N's cells, on the p they share.

    Returns
    -------
    dict
        ``p`` (shared values), ``rows`` {N: that row of :func:`cells`},
        ``changed`` / ``compared`` (model-cells whose verdict differs
        between some two N / all model-cells) and the same restricted to
        cells quiet at every N (``changed_quiet``, ``compared_quiet``).
    """
    rows = {}
    for n, ds in sorted(runs.items()):
        c = cells(ds)
        lam = c.lam.values[np.argmin(abs(c.lam.values - FINITE_LAM))]
        rows[n] = c.sel(lam=lam).assign_coords(p=np.round(c.p.values, 6))
    shared = sorted(set.intersection(*(set(r.p.values) for r in rows.values())))
    rows = {n: r.sel(p=shared) for n, r in rows.items()}
    verdicts = np.stack([r.verdict.transpose("p", "mass").values for r in rows.values()])
    changed = (verdicts != verdicts[:1]).any(axis=0)
    quiet = np.all([(r.rate < SPIKING_MIN_HZ).values for r in rows.values()], axis=0)
    return {
        "p": shared,
        "rows": rows,
        "changed": int(changed.sum()),
        "compared": int(changed.size),
        "changed_quiet": int(changed[quiet].sum()),
        "compared_quiet": int(changed[quiet].size),
    }


def section_finite(runs: dict[int, xr.Dataset]) -> str:
    """Section 4: the λ = 0.8 row side by side for every N."""
    fr = finite_row(runs)
    ns = list(fr["rows"])
    first = fr["rows"][ns[0]]
    masses = [str(m) for m in first.mass.values]
    nlist = " / ".join(f"{n}" for n in ns)
    head = ["p", f"E rate (Hz) N = {nlist}", "ρ ceiling per N", "χ² floor per N", *masses]
    rows = []
    for p in fr["p"]:
        xs = [fr["rows"][n].sel(p=p) for n in ns]
        rows.append(
            [
                f"{p:.2f}",
                " / ".join(_num(float(x.rate), ".2f") for x in xs),
                " / ".join(_num(float(x.rho_ceiling), ".3f") for x in xs),
                " / ".join(_num(float(x.chi2_floor), ".4f") for x in xs),
                *(" ".join(_LETTER[int(x.verdict.sel(mass=m))] for x in xs) for m in masses),
            ]
        )
    lines = [
        f"## Finite size: λ = {FINITE_LAM:g}, N = {nlist}\n",
        "Verdicts per model in the order of N (fitted models: held-out half).\n",
        _table(head, rows),
        "",
    ]
    for n in ns:
        r = fr["rows"][n]
        counts = "; ".join(
            f"{m} "
            + " ".join(f"{_LETTER[v]} {int((r.verdict.sel(mass=m) == v).sum())}" for v in _LETTER)
            for m in masses
        )
        lines.append(f"- N {n}: {counts}.")
    lines.append(
        f"- FS: verdicts differing between N in {fr['changed']} of {fr['compared']} "
        f"model-cells; in the cells quiet at every N (E rate < {SPIKING_MIN_HZ:g} Hz) "
        f"{fr['changed_quiet']} of {fr['compared_quiet']}."
    )
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ 5. summaries
def summary(ds: xr.Dataset, out: Path, max_bytes: int = SUMMARY_MAX_BYTES) -> tuple[str, ...]:
    """Write ``ds`` to ``out``, compressed, dropping its frequency- and lag-resolved
    variables if the file would exceed ``max_bytes``: first the spectra (``spectrum``, the
    larger), then the correlation curves (``xcorr``) too.

    Returns
    -------
    tuple of str
        The frequency- and lag-resolved variables the file holds.
    """
    resolved = {"spectrum": "freq_Hz", "xcorr": "lag_ms"}
    for drop in ((), ("spectrum",), ("spectrum", "xcorr")):
        d = ds.drop_dims([resolved[v] for v in drop])
        if drop:
            d.attrs["comment"] = (
                ds.attrs.get("comment", "")
                + f" Summary: {' and '.join(drop)} dropped (docs/results.md)."
            ).strip()
        d.to_netcdf(out, encoding={v: {"zlib": True, "complevel": 5} for v in d.data_vars})
        if out.stat().st_size <= max_bytes:
            break
    return tuple(v for v in resolved if v in d)


# ------------------------------------------------------------------ command line
def _finite_arg(text: str) -> tuple[int, str]:
    n, _, path = text.partition("=")
    if not path or not n.isdigit():
        raise argparse.ArgumentTypeError(f"expected N=CUBE, got {text!r}")
    return int(n), path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paper", required=True, metavar="CUBE", help="cube of config/paper.yaml")
    ap.add_argument("--highg", metavar="CUBE", help="cube of the high-conductance set")
    ap.add_argument(
        "--finite",
        metavar="N=CUBE",
        type=_finite_arg,
        action="append",
        default=[],
        help="cube of the finite-size run at network size N (repeat per N)",
    )
    ap.add_argument("--summary-dir", metavar="DIR", type=Path, help="write summary cubes here")
    args = ap.parse_args(argv)
    sets = {"paper": args.paper, **({"highg": args.highg} if args.highg else {})}
    opened = {label: xr.open_dataset(path) for label, path in sets.items()}
    finite = {n: xr.open_dataset(path) for n, path in args.finite}
    try:
        for n, ds in finite.items():
            if _config(ds)["network"]["N"] != n:
                ap.error(f"--finite {n}=...: that cube's run has N = {_config(ds)['network']['N']}")
        print("# Tables of docs/results.md\n")
        for label, ds in opened.items():
            print(f"- {run_header(label, ds)}")
        for n, ds in finite.items():
            print(f"- {run_header(f'finite N = {n}', ds)}")
        print()
        for label, ds in opened.items():
            c = cells(ds)
            print(section_cells(label, c))
            print(section_findings(label, c))
            print(section_ladder(label, c))
            print(section_steps(label, c))
        if finite:
            print(section_finite(finite))
        if args.summary_dir:
            args.summary_dir.mkdir(parents=True, exist_ok=True)
            named = {**opened, **{f"finite-N{n}": ds for n, ds in finite.items()}}
            for label, ds in named.items():
                out = args.summary_dir / f"cube_{label}_summary.nc"
                kept = summary(ds, out)
                print(
                    f"summary {out}: {out.stat().st_size / 1e6:.1f} MB, "
                    f"kept: {', '.join(kept) or 'neither spectrum nor xcorr'}",
                    file=sys.stderr,
                )
    finally:
        for ds in (*opened.values(), *finite.values()):
            ds.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
