"""Figures of a run: heat maps on the (p, λ) plane, the verdicts and diagnostic pages.

Every figure is written as PDF and PNG. Heat maps use
``pcolormesh(shading="nearest")`` on the cell centres (each square is one grid
cell), perceptually uniform colour maps and colour bars with units. Each
quantity has one kind of scale in every figure: log for those spanning decades
(rates, median frequencies, ΣḠ, the χ² floor; :data:`LOG_FLOOR`), linear
otherwise, symmetric about 0 for signed ones (τ_max, the closure error, the
fitted offset), fixed limits where the quantity has them (synchrony and
ρ_ceiling 0-1, χ² from 0, ρ up to 1); data-driven limits are robust
percentiles (:data:`ROBUST_PERCENTILES`) so that one cell cannot set the
range. Cells without a value are grey, and a legend says why. A region
of cells (a test rejecting at ``analysis.alpha``, a condition met) is drawn
as its outline along the cell edges, which stays closed where the region
meets the border of the grid and works for a single p or λ as well as for
21 × 5; each kind of region has its own line style and is moved its own
fraction of a cell into the region, so that equal or nested regions stay
apart (:class:`Outline`). The legend says what each outline means and how
many cells of each mass model it holds.

The paper's readings (MODEL.md §6.2) are drawn beside the validation
protocol's (§6.3) and labelled "paper"; the verdicts come from the protocol
alone (:func:`fig_validity`). A figure that shows the paired difference
test or the verdicts says so when the run has too few seeds for that test
to reach α (:func:`seed_warning`).

The figures are registered in :data:`FIGURES` (name, function, report
section and caption; the workflow's list of figures is this one), draw a
panel or a trace for the network and every registered mass model
(:mod:`nmmval.models`) and take their labels from the file layouts
(:mod:`nmmval.datasets`).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib import patheffects  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from nmmval import models, store  # noqa: E402
from nmmval.analysis.protocol import (  # noqa: E402
    ADEQUATE,
    EXACT_MAX_K,
    INADEQUATE,
    N_RANDOM_PATTERNS,
    REASON_FLAG_MASKS,
    REASON_FLAG_MEANINGS,
    UNDECIDED,
    VERDICT_FLAG_MEANINGS,
    VERDICT_FLAG_VALUES,
)
from nmmval.config import Params  # noqa: E402
from nmmval.datasets import COORDS, LIF, label  # noqa: E402
from nmmval.models import fitted  # noqa: E402

#: longest and shortest time series on a diagnostic page (ms), and the cycles of the
#: LIF's median frequency it shows in between (:func:`diagnostic_span_ms`)
DIAGNOSTIC_SPAN_MS = 1000.0
DIAGNOSTIC_MIN_SPAN_MS = 100.0
DIAGNOSTIC_CYCLES = 10
#: characters per line of a colour bar's label (longer ones wrap: it must fit a short panel)
CBAR_LABEL_WIDTH = 30
#: colour of a heat-map cell without a value (NaN)
NO_VALUE = "0.85"
#: why a mass model's measure has no value in a cell (MODEL.md §6.3; cube attribute nan_reason)
DIVERGED_NO_VALUE = "no value: the model diverged in some seed of the cell"


def _save(fig, outdir: Path, name: str) -> list[Path]:
    paths = []
    for ext in ("pdf", "png"):
        path = outdir / f"{name}.{ext}"
        tmp = outdir / f".{name}.tmp.{ext}"
        fig.savefig(tmp, dpi=150)
        tmp.replace(path)
        paths.append(path)
    plt.close(fig)
    return paths


def _panel_size(n_p: int, n_lam: int) -> tuple[float, float]:
    """Width and height (inches) of one heat-map panel, legible for 21 × 5 and small grids."""
    width = min(6.0, max(3.6, 0.26 * n_p + 1.8))
    height = min(4.0, max(2.4, 0.32 * n_lam + 1.4))
    return width, height


def _axis(values: np.ndarray):
    """Plot coordinates of a grid axis: its values if evenly spaced, else 0, 1, 2, …

    An unevenly spaced axis (e.g. p = 0, 0.1, 0.3, 0.6, 1) is drawn with equal
    cells labelled by their values, so narrow cells stay legible.

    Returns
    -------
    centres, edges : numpy.ndarray
    """
    values = np.asarray(values, dtype=np.float64)
    d = np.diff(values)
    centres = (
        values if d.size == 0 or np.allclose(d, d[0]) else np.arange(values.size, dtype=np.float64)
    )
    if centres.size == 1:
        half = 0.05 if centres is values else 0.5
        return centres, np.array([centres[0] - half, centres[0] + half])
    mid = (centres[1:] + centres[:-1]) / 2
    edges = np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])
    return centres, edges


def _grid_axes(ax, p, lam) -> None:
    """Label a panel's axes with the grid's p (x) and λ (y) at the cell centres."""
    (xc, xe), (yc, ye) = _axis(p), _axis(lam)
    ax.set_xlabel(COORDS["p"].long_name)
    ax.set_ylabel(COORDS["lam"].long_name)
    step = 1 if p.size <= 11 else 2
    ax.set_xticks(xc[::step])
    ax.set_xticklabels([f"{v:g}" for v in p[::step]])
    ax.set_yticks(yc)
    ax.set_yticklabels([f"{v:g}" for v in lam])
    ax.set_xlim(xe[0], xe[-1])
    ax.set_ylim(ye[0], ye[-1])


def _mesh(ax, p, lam, z, cmap, norm, cbar_label, fig):
    """Heat map of z (p, lam) on cell centres with a colour bar and labelled axes."""
    z = np.ma.masked_invalid(np.asarray(z, dtype=np.float64).T)
    cmap = plt.get_cmap(cmap).with_extremes(bad=NO_VALUE)
    (xc, xe), (yc, ye) = _axis(p), _axis(lam)
    if p.size >= 2 and lam.size >= 2:
        mesh = ax.pcolormesh(xc, yc, z, shading="nearest", cmap=cmap, norm=norm)
    else:  # "nearest" cannot infer the width of a single cell
        mesh = ax.pcolormesh(xe, ye, z, shading="flat", cmap=cmap, norm=norm)
    fig.colorbar(mesh, ax=ax, label=_balanced_fill(cbar_label, CBAR_LABEL_WIDTH), pad=0.02)
    _grid_axes(ax, p, lam)
    return mesh


#: percentiles of the finite values that set a data-driven colour range, so that one
#: outlying cell cannot flatten the rest (values beyond are drawn in the end colours)
ROBUST_PERCENTILES = (1.0, 99.0)
#: quantities that span decades, drawn on a log scale always, with the floor (in their
#: units) below which values share the lowest colour: rates (Hz), median frequencies (Hz),
#: ΣḠ (1) and the χ² floor (1)
LOG_FLOOR = {"rate_Hz": 0.1, "median_freq_Hz": 0.5, "sum_G": 1e-3, "chi2_floor": 1e-6}


def _finite(values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return v[np.isfinite(v)]


def _norm(values, vmin=None, vmax=None, symmetric=False):
    """Linear colour normalisation: given limits, or the robust range of the finite values
    (:data:`ROBUST_PERCENTILES`); symmetric about 0 if asked (robust largest |value|)."""
    v = _finite(values)
    lo_p, hi_p = np.percentile(v, ROBUST_PERCENTILES) if v.size else (0.0, 1.0)
    lo = vmin if vmin is not None else float(lo_p)
    hi = vmax if vmax is not None else float(hi_p)
    if symmetric:
        m = float(np.percentile(np.abs(v), ROBUST_PERCENTILES[1])) if v.size else 1.0
        return mcolors.Normalize(-(m or 1.0), m or 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return mcolors.Normalize(lo, hi)


def _floored(values, quantity: str) -> np.ndarray:
    """Values of a log-scale quantity raised to its :data:`LOG_FLOOR` (0 Hz among them:
    drawn in the lowest colour, not as "no value"); NaN stays NaN."""
    return np.maximum(np.asarray(values, dtype=np.float64), LOG_FLOOR[quantity])


def _log_norm(values, quantity: str):
    """Log colour normalisation of a quantity of :data:`LOG_FLOOR`: from its floor (or the
    robust low end of the values, if higher) to the robust high end, a decade at least."""
    floor = LOG_FLOOR[quantity]
    v = _finite(values)
    v = v[v > 0]
    lo, hi = np.percentile(v, ROBUST_PERCENTILES) if v.size else (floor, 10 * floor)
    lo = max(float(lo), floor)
    return mcolors.LogNorm(lo, max(float(hi), 10 * lo))


class Outline(NamedTuple):
    """How a region of cells is outlined (:func:`_outline`).

    Attributes
    ----------
    linestyle : str
    colour : str
    inset : float
        Fraction of the smallest cell by which the line is moved into the
        region, so that the outlines of equal or nested regions stay apart.
    """

    linestyle: str
    colour: str
    inset: float = 0.0


#: the paper's readings (MODEL.md §6.2): dashed, on the cell edges
PAPER_TEST = Outline("--", "cyan")
#: a test of the validation protocol rejects (MODEL.md §6.3): solid, inside the paper's
PROTOCOL_TEST = Outline("-", "white", 0.14)
#: an adequacy condition of the protocol is met (MODEL.md §6.3): dotted, innermost
PROTOCOL_MET = Outline(":", "#ff8cf0", 0.28)
#: the MFM's linearisation is under-damped, ζ < 1 (MODEL.md §5.1)
UNDERDAMPED = Outline("-", "white")
#: the black edge of every outline-styled line, so it shows on light and dark cells
_STROKE = (patheffects.withStroke(linewidth=3.2, foreground="black"),)


def _boundary(inside: np.ndarray, xe: np.ndarray, ye: np.ndarray, inset: float = 0.0) -> list:
    """The outline of the cells ``inside`` along their edges, moved ``inset`` into the region.

    One segment per side of a cell of the region whose neighbour is outside
    it (or off the grid), moved into the region by ``inset`` × the smallest
    cell width (for a vertical side) or height (horizontal); its ends are
    shortened at convex corners and lengthened at concave ones, so the
    segments still join into closed polygons.

    Parameters
    ----------
    inside : numpy.ndarray of bool, shape (n_x, n_y)
    xe, ye : numpy.ndarray
        Cell edges along x and y (:func:`_axis`).
    inset : float, optional

    Returns
    -------
    list of ((x0, y0), (x1, y1))
    """
    pad = np.pad(np.asarray(inside, dtype=bool), 1, constant_values=False)
    edges = (np.asarray(xe, dtype=np.float64), np.asarray(ye, dtype=np.float64))
    d = (inset * np.diff(edges[0]).min(), inset * np.diff(edges[1]).min())

    def within(at) -> bool:
        return bool(pad[at[0] + 1, at[1] + 1])

    segments = []
    for cell in np.argwhere(pad[1:-1, 1:-1]):
        for axis in (0, 1):  # the axis of the side's outward normal
            along = 1 - axis
            for sign in (-1, 1):
                normal = np.zeros(2, int)
                normal[axis] = sign
                if within(cell + normal):
                    continue
                position = edges[axis][cell[axis] + (sign > 0)] - sign * d[axis]
                ends = []
                for s in (-1, 1):
                    tangent = np.zeros(2, int)
                    tangent[along] = s
                    end = edges[along][cell[along] + (s > 0)]
                    if not within(cell + tangent):  # convex corner
                        end -= s * d[along]
                    elif within(cell + normal + tangent):  # concave corner
                        end += s * d[along]
                    ends.append(float(end))
                segments.append(
                    [(float(position), e) if axis == 0 else (e, float(position)) for e in ends]
                )
    return segments


def _outline(ax, p, lam, inside, style: Outline) -> int:
    """Outline the region of cells ``inside`` (shape (p, lam)) along the cell edges.

    The contour of the region on the cell mesh (:func:`_boundary`): closed
    wherever the region touches the border of the grid, so its inside is
    unambiguous, and drawn alike for 21 × 5, 2 × 2 or a single row of cells.

    Returns
    -------
    int
        The number of cells in the region.
    """
    inside = np.asarray(inside, dtype=bool)
    (_, xe), (_, ye) = _axis(p), _axis(lam)
    segments = _boundary(inside, xe, ye, style.inset)
    if segments:
        lines = LineCollection(
            segments,
            colors=style.colour,
            linestyles=style.linestyle,
            linewidths=1.8,
            capstyle="round",
            clip_on=False,
            zorder=3,
        )
        lines.set_path_effects(_STROKE)
        ax.add_collection(lines)
    return int(inside.sum())


def _legend_handle(style: Outline, text: str) -> Line2D:
    line = Line2D([], [], color=style.colour, linestyle=style.linestyle, linewidth=1.8, label=text)
    line.set_path_effects(_STROKE)
    return line


def _count_text(text: str, counts: dict[str, int], n_cells: int) -> str:
    """A legend entry: ``text``, then its cells per mass model, ``(cells: CFM 3/10, MFM 4/10)``."""
    per_mass = ", ".join(f"{m} {n}/{n_cells}" for m, n in counts.items())
    return f"{text}\n(cells: {per_mass})"


def _no_value_handle(text: str) -> Line2D:
    """A legend entry for the heat-map cells without a value."""
    return Line2D([], [], marker="s", linestyle="none", color=NO_VALUE, markersize=10, label=text)


def _outline_legend(fig, entries, no_value: str = "") -> None:
    """The legend of a heat-map figure's outlines, below its panels.

    ``entries``: (Outline, text) pairs; a text-only line for a style of None.
    ``no_value``: if given, the text of an entry for the cells without a value.
    """
    handles = [
        _legend_handle(style, text)
        if style is not None
        else Line2D([], [], linestyle="none", label=text)
        for style, text in entries
    ]
    if no_value:
        handles.append(_no_value_handle(no_value))
    fig.legend(
        handles=handles, loc="outside lower center", fontsize="small", facecolor="0.6",
        framealpha=1, handlelength=3.0,
    )  # fmt: skip


def _mark_colourbar(ax, value: float, style: Outline) -> bool:
    """Mark ``value`` on the colour bar of a panel's heat map, in an outline's style.

    Returns
    -------
    bool
        Whether it was marked: False if ``value`` is outside the bar's range.
    """
    bar = ax.collections[0].colorbar
    if not bar.norm.vmin <= value <= bar.norm.vmax:
        return False
    line = bar.ax.axhline(value, color=style.colour, linestyle=style.linestyle, linewidth=1.8)
    line.set_path_effects(_STROKE)
    return True


#: characters of a title line per inch of figure width (at the suptitle's "medium" size)
TITLE_CHARS_PER_INCH = 11


def _balanced_fill(text: str, width: int) -> str:
    """``text`` wrapped to at most ``width`` characters a line in as few lines as a greedy
    wrap needs, with the lines of about equal length (no lone last word)."""
    n_lines = len(textwrap.wrap(text, width)) or 1
    balanced = max(1, -(-len(text) // n_lines))
    while len(textwrap.wrap(text, balanced)) > n_lines:  # ends at width at the latest
        balanced += 1
    return textwrap.fill(text, balanced)


def _suptitle(fig, text: str) -> None:
    """The figure's title, each line wrapped to the figure's width so that none is clipped."""
    width = max(20, int(fig.get_figwidth() * TITLE_CHARS_PER_INCH))
    lines = [_balanced_fill(line, width) for line in text.splitlines()]
    fig.suptitle("\n".join(lines), fontsize="medium")


def _heatmap_figure(cube, panels, title, subtitle, ncols=3, footer=0.0):
    """Figure with one heat-map panel per (title, field, cmap, norm, label) entry.

    The panels fill rows of at most ``ncols``; ``footer`` inches are added
    below them for a legend.
    """
    p, lam = _grid(cube)
    w, h = _panel_size(p.size, lam.size)
    ncols = min(ncols, len(panels))
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(w * ncols, h * nrows + 1.0 + footer), layout="constrained",
        squeeze=False,
    )  # fmt: skip
    for ax, (panel_title, field, cmap, norm, cbar_label) in zip(axes.flat, panels, strict=False):
        _mesh(ax, p, lam, field, cmap, norm, cbar_label, fig)
        # the colour bar takes about a fifth of the panel's width
        ax.set_title(_balanced_fill(panel_title, max(16, int(0.8 * w * TITLE_CHARS_PER_INCH))))
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    _suptitle(fig, f"{title}\n{subtitle}")
    return fig, axes


def _grid(cube):
    return cube["p"].values.astype(np.float64), cube["lam"].values.astype(np.float64)


def panel_name(model: str) -> str:
    """A model's name in a panel title over the whole window [T0, T): a fitted model's says
    that its parameters were fitted on the first half (MODEL.md §5.3)."""
    fitted = model in models.fitted_names()
    return f"{model} (fitted on 1st half)" if fitted else model


def _subtitle(params) -> str:
    sim = params.simulation
    n = len(params.grid_seeds)
    return (
        f"run {params.run}: N = {params.network.N}, T = {sim.T_ms / 1000:g} s "
        f"(analysis from {sim.T0_ms / 1000:g} s), {n} seed{'s' if n != 1 else ''}"
    )


# ------------------------------------------------------------------ seeds, verdicts, reasons
def paired_test_floor(k: int) -> float:
    """The smallest p-value of the paired sign-flip difference test with k seeds (MODEL.md §6.3).

    ``2^(1−k)`` when all 2^k sign patterns are enumerated (k <=
    :data:`~nmmval.analysis.protocol.EXACT_MAX_K`: the identity and its mirror
    give the same statistic), ``1/(n + 1)`` for n random patterns beyond.
    """
    return 2.0 ** (1 - k) if k <= EXACT_MAX_K else 1.0 / (N_RANDOM_PATTERNS + 1)


def seed_warning(k: int, alpha: float) -> str:
    """A sentence if the paired difference test cannot reach α with k seeds, else ``""``.

    The exact test has p >= 2^(1−k) (MODEL.md §6.3), so α = 0.01 needs k >= 8;
    with fewer seeds it never rejects, and "spectra differ" can never be a
    reason of a verdict.
    """
    floor = paired_test_floor(k)
    if floor <= alpha:
        return ""
    needed = 1 + math.ceil(math.log2(1 / alpha) - 1e-12)
    return (
        f"with {k} seed{'s' if k != 1 else ''} the paired difference test cannot reach "
        f"α = {alpha:g} (p ≥ {floor:.3g}; it needs k ≥ {needed} seeds)"
    )


#: the inadequacy reasons of MODEL.md §6.3, as the bits of ``verdict_reasons`` name them:
#: their one-letter codes and phrases
REASON_TEXT = {
    "diverged": ("D", "diverged"),
    "spectra_differ": ("S", "spectra differ"),
    "rho_below_level": ("L", "ρ below adequacy level"),
    "rho_not_above_null": ("N", "ρ not above null"),
}
_VERDICT_LABELS = dict(zip(VERDICT_FLAG_VALUES, VERDICT_FLAG_MEANINGS.split(), strict=True))
_REASON_BITS = dict(zip(REASON_FLAG_MEANINGS.split(), REASON_FLAG_MASKS, strict=True))


def reasons(mask: int) -> list[str]:
    """The reasons set in a ``verdict_reasons`` bit mask, in the order of their bits."""
    return [name for name, bit in _REASON_BITS.items() if int(mask) & bit]


def _diverged(mask) -> np.ndarray:
    """Where a ``verdict_reasons`` bit mask says the model diverged."""
    return (np.asarray(mask, dtype=int) & _REASON_BITS["diverged"]) != 0


def reason_code(mask: int) -> str:
    """The one-letter codes (:data:`REASON_TEXT`) of a ``verdict_reasons`` bit mask: ``"SN"``."""
    return "".join(REASON_TEXT[r][0] for r in reasons(mask))


def verdict_text(code: int, mask: int) -> str:
    """``"adequate"``, ``"undecided"``, ``"inadequate (spectra differ, ρ not above null)"``
    or ``"diverged"``: a verdict of MODEL.md §6.3 with its reasons."""
    names = reasons(mask)
    if "diverged" in names:
        return "diverged"
    text = _VERDICT_LABELS[int(code)]
    if names:
        text += f" ({', '.join(REASON_TEXT[r][1] for r in names)})"
    return text


# ------------------------------------------------------------------ heat maps
def fig_synchrony(params, cube):
    sync = cube["synchrony"]
    mean = sync.mean("seed", skipna=True).values
    fig, _ = _heatmap_figure(
        cube,
        [("seed mean", mean, "viridis", _norm(mean, 0.0, 1.0), label("cube", "synchrony"))],
        "Spike-contrast synchrony of the LIF network",
        _subtitle(params),
    )
    if np.isnan(mean).any():
        fig.legend(
            handles=[_no_value_handle("undefined: no train with two spikes")],
            loc="outside lower center", fontsize="small", frameon=False,
        )  # fmt: skip
    return fig


def fig_rates(params, cube):
    rate_e = _floored(cube["rate_E_Hz"].mean("seed").values, "rate_Hz")
    rate_i = _floored(cube["rate_I_Hz"].mean("seed").values, "rate_Hz")
    vbar = cube["Vbar_mV"].mean("seed").values
    rate_label = f"mean rate (Hz; ≤ {LOG_FLOOR['rate_Hz']:g} Hz in the lowest colour)"
    rate_norm = _log_norm(np.concatenate([rate_e.ravel(), rate_i.ravel()]), "rate_Hz")
    fig, _ = _heatmap_figure(
        cube,
        [
            ("excitatory rate", rate_e, "magma", rate_norm, rate_label),
            ("inhibitory rate", rate_i, "magma", rate_norm, rate_label),
            ("time-mean potential V̄", vbar, "cividis", _norm(vbar), label("cube", "Vbar_mV")),
        ],
        "Firing rates and mean potential of the LIF network (seed means)",
        _subtitle(params),
    )
    return fig


def fig_median_frequency(params, cube):
    med = cube["median_freq_Hz"]
    norm = _log_norm(med.values, "median_freq_Hz")
    panels = [
        (
            m,
            _floored(med.sel(model=m).values, "median_freq_Hz"),
            "viridis",
            norm,
            label("cube", "median_freq_Hz"),
        )
        for m in _models()
    ]
    fig, _ = _heatmap_figure(
        cube, panels, "Median frequency of the seed-mean spectrum", _subtitle(params),
        footer=0.3 if med.isnull().any() else 0.0,
    )  # fmt: skip
    if med.isnull().any():
        fig.legend(
            handles=[_no_value_handle(DIVERGED_NO_VALUE)],
            loc="outside lower center", fontsize="small", frameon=False,
        )  # fmt: skip
    return fig


def fig_chi2(params, cube):
    """The paper's Fig. 4: χ² per mass model with the paper's and the protocol's readings.

    Outlined: the paper's χ² test rejects (MODEL.md §6.2), the paired
    sign-flip difference test rejects and spectral equivalence is shown
    (§6.3); the paper's fixed cut on χ² is marked on the colour bar.
    """
    p, lam = _grid(cube)
    alpha = params.analysis.alpha
    chi2 = cube["chi2"]
    norm = _norm(chi2.values, vmin=0.0)
    masses = models.names()
    panels = [
        (f"LIF – {panel_name(m)}", chi2.sel(mass=m).values, "magma", norm, label("cube", "chi2"))
        for m in masses
    ]
    fig, axes = _heatmap_figure(
        cube, panels, "Spectral distance χ² (Eq. 25), the paper's Fig. 4", _subtitle(params),
        footer=0.8,
    )  # fmt: skip
    margin = cube["equivalence_margin"].values
    cut = cube["chi2_p_paper"].attrs
    paper, different, equivalent, marked = {}, {}, {}, False
    for ax, m in zip(axes.flat, masses, strict=False):
        cell = cube.sel(mass=m)
        paper[m] = _outline(ax, p, lam, cell["chi2_p_paper"].values < alpha, PAPER_TEST)
        different[m] = _outline(ax, p, lam, cell["difference_p"].values <= alpha, PROTOCOL_TEST)
        equivalent[m] = _outline(
            ax, p, lam, cell["equivalence_bound"].values < margin, PROTOCOL_MET
        )
        marked = _mark_colourbar(ax, cut["chi2_cut_stored_band"], PAPER_TEST)
    n_cells = p.size * lam.size
    entries = [
        (
            PAPER_TEST,
            _count_text(
                f"paper: χ² test on counts rejects, p < {alpha:g}: a fixed cut, "
                f"χ² > {cut['chi2_cut_stored_band']:.3g} here"
                f"{' (line on the colour bar)' if marked else ''}, "
                f"{cut['chi2_cut_full_band']:.3g} over all bins to Nyquist",
                paper,
                n_cells,
            ),
        ),
        (
            PROTOCOL_TEST,
            _count_text(
                f"protocol: paired sign-flip test on per-seed Welch spectra rejects, p ≤ {alpha:g}",
                different,
                n_cells,
            ),
        ),
        (
            PROTOCOL_MET,
            _count_text(
                "protocol: spectral equivalence shown (upper 95 % bound of the per-seed χ² "
                f"below {params.analysis.equivalence_factor:g} × the network's seed-to-seed χ²)",
                equivalent,
                n_cells,
            ),
        ),
    ]
    warning = seed_warning(cube.sizes["seed"], alpha)
    if warning:
        entries.append((None, f"NB: {warning}"))
    _outline_legend(fig, entries, DIVERGED_NO_VALUE if chi2.isnull().any() else "")
    return fig


def fig_xcorr(params, cube):
    """The paper's Fig. 5: τ_max and ρ per mass model with the paper's and the protocol's readings.

    Outlined on both rows: ρ > 0 by the paper's Fisher z + Stouffer
    (MODEL.md §6.2), ρ above its surrogate null and ρ adequacy met (§6.3).
    """
    p, lam = _grid(cube)
    alpha = params.analysis.alpha
    tau, rho = cube["tau_max_ms"], cube["rho"]
    tau_norm = _norm(tau.values, symmetric=True)
    rho_norm = _norm(rho.values, vmax=1.0)
    masses = models.names()
    tau_label, rho_label = label("cube", "tau_max_ms"), label("cube", "rho")
    panels = [
        panel
        for m in masses
        for panel in (
            (
                f"τ_max, LIF – {panel_name(m)}",
                tau.sel(mass=m).values,
                "PuOr_r",
                tau_norm,
                tau_label,
            ),
            (
                f"ρ(τ_max), LIF – {panel_name(m)}",
                rho.sel(mass=m).values,
                "viridis",
                rho_norm,
                rho_label,
            ),
        )
    ]
    fig, axes = _heatmap_figure(
        cube, panels, "Lagged correlation with the LIF potential, the paper's Fig. 5",
        _subtitle(params), ncols=2, footer=0.6,
    )  # fmt: skip
    level = cube["rho_level"].values
    paper, above, adequate = {}, {}, {}
    for ax, m in zip(axes.flat, [m for m in masses for _ in "τρ"], strict=False):
        cell = cube.sel(mass=m)
        paper[m] = _outline(ax, p, lam, cell["rho_p"].values < alpha, PAPER_TEST)
        above[m] = _outline(ax, p, lam, cell["rho_surrogate_p"].values <= alpha, PROTOCOL_TEST)
        adequate[m] = _outline(ax, p, lam, cell["rho_lower"].values >= level, PROTOCOL_MET)
    n_cells = p.size * lam.size
    _outline_legend(
        fig,
        [
            (
                PAPER_TEST,
                _count_text(
                    f"paper, lenient (lag search not accounted for): ρ > 0 by Fisher z (n_eff) "
                    f"+ Stouffer, p < {alpha:g}",
                    paper,
                    n_cells,
                ),
            ),
            (
                PROTOCOL_TEST,
                _count_text(
                    f"protocol: ρ above its surrogate null ({params.analysis.n_surrogates} "
                    f"phase-randomised surrogates, lag search included), p ≤ {alpha:g}",
                    above,
                    n_cells,
                ),
            ),
            (
                PROTOCOL_MET,
                _count_text(
                    "protocol: ρ adequacy met (lower 95 % bound of ρ ≥ "
                    f"{params.analysis.rho_adequate:g} × the noise ceiling)",
                    adequate,
                    n_cells,
                ),
            ),
        ],
        DIVERGED_NO_VALUE if rho.isnull().any() else "",
    )
    return fig


# ------------------------------------------------------------------ verdicts
#: colour ramp of each verdict (MODEL.md §6.3): (colour map, lightest, darkest) as fractions of
#: the map; the ramps' lightness bands do not overlap (L* 96-77 adequate, 72-56 undecided,
#: 52-29 inadequate), so the verdicts stay apart in grey and for colour-blind readers
VERDICT_RAMPS = {
    ADEQUATE: ("Blues", 0.05, 0.40),
    UNDECIDED: ("Greys", 0.42, 0.56),
    INADEQUATE: ("YlOrBr", 0.72, 0.95),
}
#: a cell whose model diverged (in some seed): black, its code in white
DIVERGED_COLOUR = "black"
#: the effect size log10(equivalence_bound / equivalence_margin) is shaded over ±EFFECT_CLIP
EFFECT_CLIP = 1.0
#: the mark of an adequate and of an undecided cell (an inadequate one shows its reason codes)
VERDICT_MARKS = {ADEQUATE: "+", UNDECIDED: "?"}


def effect_size(bound, margin) -> np.ndarray:
    """log10(equivalence_bound / equivalence_margin): the shade of :func:`fig_validity`.

    Below 0: spectral equivalence is shown (MODEL.md §6.3); −inf for a zero
    bound; NaN where either is undefined.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(np.asarray(bound, dtype=np.float64) / np.asarray(margin, dtype=np.float64))


def verdict_colours(verdict, mask, effect) -> np.ndarray:
    """RGBA of each cell: its verdict's ramp, shaded by the effect size (:func:`effect_size`).

    The effect is clipped to ±:data:`EFFECT_CLIP`, darker farther from
    equivalence; an undefined (NaN) effect takes the ramp's middle; a cell
    whose model diverged is :data:`DIVERGED_COLOUR`.

    Returns
    -------
    numpy.ndarray, shape (*verdict.shape, 4)
    """
    verdict = np.asarray(verdict, dtype=int)
    effect = np.asarray(effect, dtype=np.float64)
    clipped = np.clip(effect, -EFFECT_CLIP, EFFECT_CLIP)
    shade = np.where(np.isnan(effect), 0.5, (clipped + EFFECT_CLIP) / (2 * EFFECT_CLIP))
    rgba = np.zeros((*verdict.shape, 4))
    for code, (name, light, dark) in VERDICT_RAMPS.items():
        here = verdict == code
        rgba[here] = plt.get_cmap(name)(light + (dark - light) * shade[here])
    rgba[_diverged(mask)] = mcolors.to_rgba(DIVERGED_COLOUR)
    return rgba


def _luminance(rgba) -> np.ndarray:
    """Relative luminance Y of sRGB colours (0 black, 1 white)."""
    rgb = np.asarray(rgba, dtype=np.float64)[..., :3]
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return linear @ np.array([0.2126, 0.7152, 0.0722])


def cell_mark(code: int, mask: int) -> str:
    """The text of a verdict cell: ``+``, ``?`` or the reason codes of an inadequate one."""
    return reason_code(mask) if int(code) == INADEQUATE else VERDICT_MARKS[int(code)]


def _verdict_key(ax) -> None:
    """The colour key of :func:`fig_validity`: one ramp per verdict over the effect size."""
    shade = np.linspace(-EFFECT_CLIP, EFFECT_CLIP, 65)
    codes = (INADEQUATE, UNDECIDED, ADEQUATE)  # bottom to top
    key = np.stack([verdict_colours(np.full_like(shade, c), 0, shade) for c in codes])
    ax.imshow(key, origin="lower", aspect="auto", extent=(-EFFECT_CLIP, EFFECT_CLIP, 0, 3))
    ax.set_yticks(np.arange(len(codes)) + 0.5)
    ax.set_yticklabels([f"{_VERDICT_LABELS[c]} {VERDICT_MARKS.get(c, '(codes)')}" for c in codes])
    ax.set_xticks([-EFFECT_CLIP, 0.0, EFFECT_CLIP])
    ax.set_xticklabels([f"≤ {-EFFECT_CLIP:g}", "0", f"≥ {EFFECT_CLIP:g}"])
    ax.set_xlabel(
        "shade: log₁₀(upper 95 % bound of χ² / equivalence margin); < 0: spectral equivalence shown"
    )
    ax.axvline(0.0, color="black", lw=0.8)


def _validity(params, cube, suffix: str, title: str, name=panel_name):
    """The verdicts (``verdict{suffix}`` and the numbers behind them), one panel per mass model."""
    p, lam = _grid(cube)
    (xc, xe), (yc, ye) = _axis(p), _axis(lam)
    masses = models.names()
    w, h = _panel_size(p.size, lam.size)
    ncols = min(3, len(masses))
    nrows = int(np.ceil(len(masses) / ncols))
    fig = plt.figure(figsize=(w * ncols, h * nrows + 3.0), layout="constrained")
    grid = fig.add_gridspec(nrows + 1, ncols, height_ratios=[1.0] * nrows + [0.25])
    fontsize = 8 if p.size <= 11 else 6
    margin = cube[f"equivalence_margin{suffix}"].values
    for k, m in enumerate(masses):
        ax = fig.add_subplot(grid[k // ncols, k % ncols])
        cell = cube.sel(mass=m)
        verdict = cell[f"verdict{suffix}"].values.astype(int)
        mask = cell[f"verdict_reasons{suffix}"].values.astype(int)
        effect = effect_size(cell[f"equivalence_bound{suffix}"].values, margin)
        rgba = verdict_colours(verdict, mask, effect)
        ax.imshow(
            rgba.transpose(1, 0, 2), origin="lower", aspect="auto",
            extent=(xe[0], xe[-1], ye[0], ye[-1]), interpolation="nearest",
        )  # fmt: skip
        light = _luminance(rgba) > 0.2
        for i, j in np.ndindex(verdict.shape):
            ax.text(
                xc[i], yc[j], cell_mark(verdict[i, j], mask[i, j]), ha="center", va="center",
                fontsize=fontsize, fontweight="bold", color="black" if light[i, j] else "white",
            )  # fmt: skip
        _grid_axes(ax, p, lam)
        counts = {c: int((verdict == c).sum()) for c in (ADEQUATE, UNDECIDED, INADEQUATE)}
        n_div = int(_diverged(mask).sum())
        ax.set_title(
            f"{name(m)}: {counts[ADEQUATE]} adequate,\n{counts[UNDECIDED]} undecided, "
            f"{counts[INADEQUATE]} inadequate" + (f" ({n_div} diverged)" if n_div else "")
        )
    _verdict_key(fig.add_subplot(grid[-1, (ncols - 1) // 2 : (ncols + 2) // 2]))
    handles = [
        Patch(facecolor=DIVERGED_COLOUR, label="D: the model diverged (in some seed)"),
        *(
            Line2D([], [], linestyle="none", marker=f"${REASON_TEXT[r][0]}$", color="black",
                   markersize=7, label=f"{REASON_TEXT[r][0]}: {text}")
            for r, text in (
                ("spectra_differ", "spectra differ (no equivalence, paired test rejects)"),
                ("rho_below_level", "ρ below adequacy level (upper bound < "
                 f"{params.analysis.rho_adequate:g} × noise ceiling)"),
                ("rho_not_above_null", "ρ not above its surrogate null"),
            )
        ),
    ]  # fmt: skip
    fig.legend(
        handles=handles, loc="outside lower center", ncols=2, fontsize="small", frameon=False
    )
    subtitle = _subtitle(params)
    warning = seed_warning(cube.sizes["seed"], params.analysis.alpha)
    if warning:
        subtitle += f"\nNB: {warning}"
    _suptitle(fig, f"{title}\n{subtitle}")
    return fig


def fig_validity(params, cube):
    """The verdicts of the validation protocol (MODEL.md §6.3), one panel per mass model.

    Colour: the verdict (:data:`VERDICT_RAMPS`), shaded by the effect size
    log10(equivalence_bound / equivalence_margin); text: ``+`` adequate,
    ``?`` undecided, the reason codes (:data:`REASON_TEXT`) of an inadequate
    cell; black with ``D``: the model diverged. Over the whole window
    [T0, T): a fitted model's panel says that half of it trained the fit
    (:func:`fig_validity_held_out` has its fair score).
    """
    return _validity(
        params, cube, "", f"Verdicts of the validation protocol (α = {params.analysis.alpha:g})"
    )


def fig_validity_held_out(params, cube):
    """The verdicts on the held-out half [T_mid, T) for every model (MODEL.md §5.3).

    As :func:`fig_validity`, from the ``*_held_out`` variables: the fitted
    models are judged on data their fit has not seen, beside every other model
    on the same half.
    """
    return _validity(
        params, cube, "_held_out",
        f"Verdicts on the held-out half [T_mid, T) (α = {params.analysis.alpha:g}): the fitted "
        "models' fair score, every model on the same data",
        name=str,
    )  # fmt: skip


#: smallest gain the fitted-parameter map resolves (log scale; a gain of 0 is drawn at it)
GAIN_FLOOR = 0.01


def fig_fitted_parameters(params, cube):
    """The fitted Freeman models' parameters per cell (MODEL.md §5.3), one row per model.

    τ_s on a log scale over its search range; each gain s_σ as log10 on a
    diverging scale centred on the derivation (s = 1), from
    :data:`GAIN_FLOOR` (0 is drawn there) to ``masses.fit_gain_max``; the
    offset on a symmetric scale; the training RMS with the fitted parameters
    over that with the derived ones on a log scale (below 1: the fit gained).
    ``R``: the fit was rejected (the model diverges with the best parameters
    found in some seed); ``D`` on the RMS ratio: the model with the derived
    parameters diverges on the training half (no ratio).
    """
    fitted_models = list(cube["fitted"].values)
    lower, upper = fitted.bounds(params)
    tau_norm = mcolors.LogNorm(lower[0], upper[0])
    log_max = math.log10(params.masses.fit_gain_max)
    gain_norm = mcolors.TwoSlopeNorm(0.0, math.log10(GAIN_FLOOR), max(log_max, 1e-3))
    offset_norm = _norm(cube["fit_offset_mV"].values, symmetric=True)
    derived = cube["fit_rms_derived_mV"]
    derived_ok = np.isfinite(derived) & (derived <= fitted.DIVERGED_mV)
    ratio = (cube["fit_rms_mV"] / derived).where(derived_ok)
    ratio_norm = mcolors.LogNorm(1e-3, 1.0)
    panels, marks = [], []
    for m in fitted_models:
        f = cube.sel(fitted=m)
        rejected = np.where(f["fit_status"].values == fitted.REJECTED, "R", "")
        panels.append((f"{m}: τ_s", f["fit_tau_s_ms"].values, "cividis", tau_norm,
                       label("cube", "fit_tau_s_ms")))  # fmt: skip
        for s in cube["synapse"].values:
            gain = np.maximum(f["fit_gain"].sel(synapse=s).values, GAIN_FLOOR)
            panels.append((f"{m}: gain of {s}", np.log10(gain), "PuOr_r", gain_norm,
                           "log10 gain s_σ (0: derived)"))  # fmt: skip
        panels.append((f"{m}: offset", f["fit_offset_mV"].values, "RdBu_r", offset_norm,
                       label("cube", "fit_offset_mV")))  # fmt: skip
        panels.append((f"{m}: RMS fitted / derived", ratio.sel(fitted=m).values, "magma",
                       ratio_norm, "training RMS ratio"))  # fmt: skip
        marks += [rejected] * (len(panels) - len(marks) - 1)
        marks.append(np.where(derived_ok.sel(fitted=m).values, rejected, "D"))
    per_row = len(panels) // max(len(fitted_models), 1)
    n_rejected = int((cube["fit_status"].values == fitted.REJECTED).sum())
    note = (
        f"R: fit rejected, the model diverges with its best parameters in some seed "
        f"({n_rejected} cells); D: the derived model diverges, no ratio. Bounds: τ_s in "
        f"[{lower[0]:g}, {upper[0]:g}] ms, gains in [0, {params.masses.fit_gain_max:g}], "
        f"|offset| ≤ {upper[4]:g} mV"
    )
    fig, axes = _heatmap_figure(
        cube, panels, "The fitted Freeman models' parameters (MODEL.md §5.3), fitted on "
        f"[T0, T_mid) of every seed\n{note}", _subtitle(params), ncols=per_row,
    )  # fmt: skip
    p, lam = _grid(cube)
    (xc, _), (yc, _) = _axis(p), _axis(lam)
    for ax, mark in zip(axes.flat, marks, strict=False):
        for i, j in zip(*np.nonzero(mark), strict=True):
            ax.text(xc[i], yc[j], mark[i, j], ha="center", va="center", fontweight="bold",
                    color="red")  # fmt: skip
    return fig


# ------------------------------------------------------------------ assumptions and bounds
def overdamped_limit(tau_m_ms: float, tau_s_ms: float) -> float:
    """ΣḠ at which the MFM's ζ = 1: ζ >= 1 iff ΣḠ <= (τ_m + τ_s)²/(4 τ_m τ_s) − 1 (MODEL.md §5.1).

    0.5625 at τ_m = 20, τ_s = 5 ms.
    """
    return (tau_m_ms + tau_s_ms) ** 2 / (4 * tau_m_ms * tau_s_ms) - 1


def fig_assumptions(params, cube):
    """What the mass models assume and what bounds any model, per cell (seed means).

    ΣḠ with the region where the MFM's linearisation is under-damped (ζ < 1,
    MODEL.md §5.1), the closure error per population (§4), the noise ceiling
    of ρ and the floor of χ² (§6.3).
    """
    p, lam = _grid(cube)
    sum_G = _floored(cube["sum_G"].mean("seed").values, "sum_G")
    zeta = cube["zeta"].mean("seed").values
    closure = cube["closure_error_mV"].mean("seed")
    closure_norm = _norm(closure.values, symmetric=True)
    floor = _floored(cube["chi2_floor"].values, "chi2_floor")
    panels = [
        (
            "input conductance ΣḠ",
            sum_G,
            "viridis",
            _log_norm(sum_G, "sum_G"),
            label("cube", "sum_G"),
        ),
        *(
            (
                f"closure error, {pop} cells",
                closure.sel(population=pop).values,
                "RdBu_r",
                closure_norm,
                label("cube", "closure_error_mV"),
            )
            for pop in closure["population"].values
        ),
        (
            "noise ceiling ρ_ceiling",
            cube["rho_ceiling"].values,
            "viridis",
            _norm(cube["rho_ceiling"].values, 0.0, 1.0),
            label("cube", "rho_ceiling"),
        ),
        (
            "χ² floor (split half vs split half)",
            floor,
            "magma",
            _log_norm(floor, "chi2_floor"),
            label("cube", "chi2_floor"),
        ),
    ]
    fig, axes = _heatmap_figure(
        cube,
        panels,
        "What the mass models assume and what bounds any model (seed means)",
        _subtitle(params),
        footer=0.3,
    )
    limit = overdamped_limit(params.neuron.tau_m_ms, params.masses.tau_s_ms)
    n = _outline(axes.flat[0], p, lam, zeta < 1, UNDERDAMPED)
    marked = _mark_colourbar(axes.flat[0], limit, UNDERDAMPED)
    _outline_legend(
        fig,
        [
            (
                UNDERDAMPED,
                f"ζ < 1: the MFM's linearisation is under-damped, ΣḠ > {limit:.4g} at "
                f"τ_m = {params.neuron.tau_m_ms:g}, τ_s = {params.masses.tau_s_ms:g} ms "
                f"({'line on the colour bar; ' if marked else ''}cells: {n}/{p.size * lam.size})",
            )
        ],
        no_value=(
            "no value: a population without cells (no I cells at λ = 1) or a measure "
            "undefined there (a silent network)"
            if any(np.isnan(field).any() for _, field, *_ in panels)
            else ""
        ),
    )
    return fig


# ------------------------------------------------------------------ diagnostic pages
def _colour(model: str) -> str:
    """Colour of a model's traces: black for the network, the registry's for a mass model."""
    return (
        "black" if model == LIF else next(m.colour for m in models.registered() if m.name == model)
    )


def _models() -> tuple[str, ...]:
    """The ``model`` coordinate: the network, then every registered mass model."""
    return (LIF, *models.names())


def own_axis(window: dict[str, np.ndarray]) -> list[str]:
    """The mass models whose trace leaves the network's range: each gets an axis of its own.

    The range is the LIF trace's [min, max] widened by twice its span on
    either side, so that on a shared axis the LIF trace keeps at least a fifth
    of the height; a trace with a finite value outside it (e.g. the CFM's mean
    far above threshold at high rates, MODEL.md §5.1) would flatten the LIF
    trace there. A model that overshoots the LIF's peaks by less stays on the
    LIF's axis, where the overshoot can be read against it.

    Parameters
    ----------
    window : dict of str to numpy.ndarray
        The traces shown (mV), the network's under :data:`nmmval.datasets.LIF`.

    Returns
    -------
    list of str
        The mass models, in the order of ``window``.
    """
    lif = window[LIF]
    lo, hi = float(np.nanmin(lif)), float(np.nanmax(lif))
    span = hi - lo
    out = []
    for m, v in window.items():
        finite = v[np.isfinite(v)]
        if (
            m != LIF
            and finite.size
            and (finite.min() < lo - 2 * span or finite.max() > hi + 2 * span)
        ):
            out.append(m)
    return out


def _trace_label(cell: xr.Dataset, m: str) -> str:
    """``CFM: V = −55.2 ± 1.31 mV`` (seed means of V's mean and sd), or when it diverged."""
    mean, sd = float(cell["V_mean_mV"].sel(model=m)), float(cell["V_sd_mV"].sel(model=m))
    if np.isfinite(mean):
        return f"{m}: V = {mean:.1f} ± {sd:.2f} mV"
    n = int(cell["diverged_seed"].sel(model=m).sum())
    return f"{m} (diverged in {n} of {cell.sizes['seed']} seeds)"


def _divergence_notes(cell: xr.Dataset, seed: int) -> list[str]:
    """``MFM diverged at t = 812.3 ms`` (on three lines) for each model diverged in ``seed``."""
    notes = []
    for m in models.names():
        at = float(cell["diverged_at_ms"].sel(seed=seed, mass=m))
        if np.isfinite(at):
            notes.append(f"{m} diverged at\nt = {at:.1f} ms:\nno trace from then on")
    return notes


def diagnostic_span_ms(median_freq_Hz: float) -> float:
    """How much of the analysis window a diagnostic page shows (ms).

    :data:`DIAGNOSTIC_CYCLES` periods of the LIF's median frequency, within
    [:data:`DIAGNOSTIC_MIN_SPAN_MS`, :data:`DIAGNOSTIC_SPAN_MS`]: 1 s of a
    slow rhythm, but 100 ms of fast synchrony (~160 Hz), whose waveform and
    phase a 1 s trace turns into a solid band. The longest span where the
    median frequency is unknown.
    """
    if not np.isfinite(median_freq_Hz) or median_freq_Hz <= 0:
        return DIAGNOSTIC_SPAN_MS
    cycles_ms = DIAGNOSTIC_CYCLES * 1000.0 / median_freq_Hz
    return float(np.clip(cycles_ms, DIAGNOSTIC_MIN_SPAN_MS, DIAGNOSTIC_SPAN_MS))


def diagnostic_page(params, cell: xr.Dataset, time_ms, traces: dict, seed: int):
    """The diagnostic page of one cell from its traces (:func:`fig_diagnostic` reads them).

    Top: the LIF potential over the start of the analysis window
    (:func:`diagnostic_span_ms` of its median frequency) with the mass models
    inside its range; below it, each model that leaves the range on its own
    y-scale (:func:`own_axis`); a model that diverged in this seed is named
    with the time (MODEL.md §5.1). Legend: the seed means of each model's
    mean and sd of V. Bottom: the seed-mean spectra, titled with each mass
    model's χ² and verdict (§6.3) and the cell's noise ceiling and χ² floor.

    Parameters
    ----------
    params : nmmval.config.Params
    cell : xarray.Dataset
        The cube at this cell (p and λ selected).
    time_ms : numpy.ndarray
        The time grid of the traces (ms).
    traces : dict of str to numpy.ndarray
        V (mV) of the network (:data:`nmmval.datasets.LIF`) and every mass model, one seed.
    seed : int
        That seed.
    """
    sim = params.simulation
    t = np.asarray(time_ms)
    span_ms = diagnostic_span_ms(float(cell["median_freq_Hz"].sel(model=LIF)))
    in_window = (t >= sim.T0_ms) & (t < min(sim.T_ms, sim.T0_ms + span_ms))
    window = {m: np.asarray(v)[in_window] for m, v in traces.items()}
    own = own_axis(window)
    heights = [2.4] + [1.3] * len(own) + [3.0]
    fig, axes = plt.subplots(
        len(heights), 1, figsize=(8.0, sum(heights) + 1.3), height_ratios=heights,
        layout="constrained",
    )  # fmt: skip
    trace_axes, ax_f = axes[:-1], axes[-1]
    axis_of = {m: trace_axes[1 + own.index(m)] if m in own else trace_axes[0] for m in window}
    for m, v in window.items():
        if np.isfinite(v).any():
            axis_of[m].plot(
                t[in_window] / 1000, v, color=_colour(m), lw=0.8, label=_trace_label(cell, m)
            )
    trace_axes[0].set_title(
        f"seed {seed}: LIF mean potential and the mass models driven by its input\n"
        "legend: mean ± sd of V over [T0, T), seed means"
    )
    trace_axes[0].set_ylabel(_balanced_fill(label("network", "V"), 20))
    for m in own:
        axis_of[m].set_ylabel(f"{m}: V (mV)")
    for ax in trace_axes:
        if ax.lines:  # beside the axis: it must not hide a trace
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    for m in own:
        axis_of[m].text(
            0.01, 0.95, f"{m} on its own y-scale: it leaves the LIF range",
            transform=axis_of[m].transAxes, va="top", fontsize="small",
            bbox={"facecolor": "white", "edgecolor": "0.6", "alpha": 0.85},
        )  # fmt: skip
    notes = _divergence_notes(cell, seed)
    if notes:
        trace_axes[0].text(  # beside the axis, below its legend
            1.01, 0.0, "\n".join(notes),
            transform=trace_axes[0].transAxes, va="bottom", fontsize="small", color="darkred",
            bbox={"facecolor": "white", "edgecolor": "darkred"},
        )  # fmt: skip
    for ax in trace_axes[1:]:
        ax.sharex(trace_axes[0])
    for ax in trace_axes[:-1]:
        ax.tick_params(labelbottom=False)
    trace_axes[-1].set_xlabel("time t (s)")
    trace_axes[0].set_xlim(t[in_window][0] / 1000, t[in_window][-1] / 1000)

    freq = cell["freq_Hz"].values
    pos = freq > 0
    for m in _models():
        spec = cell["spectrum"].sel(model=m).values
        if not np.isfinite(spec).any():
            continue
        ax_f.loglog(freq[pos], spec[pos], color=_colour(m), lw=0.9, label=m)
        ax_f.axvline(float(cell["median_freq_Hz"].sel(model=m)), color=_colour(m), ls=":", lw=1.0)
    lines = ["seed-mean spectra (normalised to sum 1); dotted: median frequency"]
    for m in models.names():
        # a fitted model's verdict is the held-out half's (MODEL.md §5.3), not the whole window's
        suffix = "_held_out" if m in models.fitted_names() else ""
        x = cell.sel(mass=m)
        text = verdict_text(x[f"verdict{suffix}"], x[f"verdict_reasons{suffix}"])
        if suffix and text != "diverged":
            text = f"held-out half: {text}"
        chi2 = float(x["chi2"])
        lines.append(f"{m}: {text}" if text == "diverged" else f"{m}: χ² = {chi2:.3g}, {text}")
    lines.append(
        f"network: noise ceiling ρ_ceiling = {float(cell['rho_ceiling']):.3g}, "
        f"χ² floor = {float(cell['chi2_floor']):.3g}"
    )
    ax_f.set_title("\n".join(lines), fontsize="medium")
    ax_f.set_xlabel(label("cube", "freq_Hz"))
    ax_f.set_ylabel(label("cube", "spectrum"))
    ax_f.legend(loc="lower left", fontsize="small")
    subtitle = _subtitle(params)
    warning = seed_warning(cell.sizes["seed"], params.analysis.alpha)
    if warning:
        subtitle += f"\nNB: {warning}"
    p, lam = float(cell["p"]), float(cell["lam"])
    _suptitle(fig, f"Diagnostic cell p = {p:g}, λ = {lam:g}\n{subtitle}")
    return fig


def fig_diagnostic(params, cube, results_dir: Path, p: float, lam: float):
    """The diagnostic page of one cell (:func:`diagnostic_page`), first seed's traces."""
    seed = params.grid_seeds[0]
    cell = store.cell_dir(results_dir, p, lam, seed)
    net = store.open_dataset(cell / "network.nc", "network")
    mas = store.open_dataset(cell / "masses.nc", "masses")
    traces = {LIF: net["V"].values} | {m.name: mas[m.variable].values for m in models.registered()}
    cell_cube = cube.sel(p=p, lam=lam, method="nearest")
    return diagnostic_page(params, cell_cube, net["time_ms"].values, traces, seed)


def diagnostic_name(p: float, lam: float) -> str:
    """File stem of a diagnostic page: ``diagnostic_p0.100_lam0.800``."""
    return f"diagnostic_p{store.format_p(p)}_lam{store.format_p(lam)}"


@dataclass(frozen=True)
class Figure:
    """A registered figure of the cube.

    Attributes
    ----------
    name : str
        File stem (``{name}.pdf``, ``{name}.png``).
    make : callable
        ``make(params, cube) -> matplotlib.figure.Figure``.
    category : str
        Its section of the Snakemake report.
    caption : str
        Its caption file in ``workflow/report/``.
    """

    name: str
    make: Callable[[Params, xr.Dataset], plt.Figure]
    category: str
    caption: str


#: the registry: every figure of the cube, one line each, in the order they are drawn
FIGURES: tuple[Figure, ...] = (
    Figure("synchrony", fig_synchrony, "Network", "synchrony.rst"),
    Figure("median_frequency", fig_median_frequency, "Spectra", "median_frequency.rst"),
    Figure("fig4_chi2", fig_chi2, "Spectra", "fig4_chi2.rst"),
    Figure("fig5_xcorr", fig_xcorr, "Time domain", "fig5_xcorr.rst"),
    Figure("rates", fig_rates, "Network", "rates.rst"),
    Figure("validity", fig_validity, "Verdicts", "validity.rst"),
    Figure("validity_held_out", fig_validity_held_out, "Verdicts", "validity_held_out.rst"),
    Figure("fitted_parameters", fig_fitted_parameters, "Verdicts", "fitted_parameters.rst"),
    Figure("assumptions", fig_assumptions, "Verdicts", "assumptions.rst"),
)
#: report section and caption of the diagnostic pages (one per ``figures.diagnostic_cells``)
DIAGNOSTIC = ("Diagnostic cells", "diagnostic.rst")


def render_all(params, cube: xr.Dataset, results_dir: Path, outdir: Path) -> list[Path]:
    """Render every registered figure and every diagnostic page into ``outdir`` (PDF + PNG).

    Parameters
    ----------
    params : nmmval.config.Params
    cube : xarray.Dataset
        The run's cube (:func:`nmmval.cube.gather`).
    results_dir : Path
        ``results/{run}``, whose cells the diagnostic pages read.
    outdir : Path
        Folder of the figures (created).

    Returns
    -------
    list of Path
        The files written.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    with plt.rc_context({"font.size": 9, "axes.titlesize": 10}):
        for f in FIGURES:
            written += _save(f.make(params, cube), outdir, f.name)
        for c in params.resolved["figures"]["diagnostic_cells"]:
            fig = fig_diagnostic(params, cube, Path(results_dir), c["p"], c["lam"])
            written += _save(fig, outdir, diagnostic_name(c["p"], c["lam"]))
    return written
