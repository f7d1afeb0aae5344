"""Figures of a run: heat maps on the (p, λ) plane and diagnostic pages.

Every figure is written as PDF and PNG. Heat maps use
``pcolormesh(shading="nearest")`` on the cell centres (each square is one grid
cell), perceptually uniform colour maps and colour bars with units;
significance at ``analysis.alpha`` is drawn as the contour of the
significant region on the cell mesh (its outline along cell edges), which
stays closed where the region meets the border of the grid and works for a
single p or λ as well as for 21 × 5. The legend says how many cells are
significant.

The figures are registered in :data:`FIGURES` (name, function, report
section and caption; the workflow's list of figures is this one), draw a
panel or a trace for the network and every registered mass model
(:mod:`nmmval.models`) and take their labels from the file layouts
(:mod:`nmmval.datasets`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib import patheffects  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from nmmval import models, store  # noqa: E402
from nmmval.config import Params  # noqa: E402
from nmmval.datasets import COORDS, LIF, label  # noqa: E402

#: length of the time series on a diagnostic page (ms)
DIAGNOSTIC_SPAN_MS = 1000.0


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


def _mesh(ax, p, lam, z, cmap, norm, cbar_label, fig):
    """Heat map of z (p, lam) on cell centres with a colour bar and labelled axes."""
    z = np.ma.masked_invalid(np.asarray(z, dtype=np.float64).T)
    cmap = plt.get_cmap(cmap).copy()
    cmap.set_bad("0.85")
    (xc, xe), (yc, ye) = _axis(p), _axis(lam)
    if p.size >= 2 and lam.size >= 2:
        mesh = ax.pcolormesh(xc, yc, z, shading="nearest", cmap=cmap, norm=norm)
    else:  # "nearest" cannot infer the width of a single cell
        mesh = ax.pcolormesh(xe, ye, z, shading="flat", cmap=cmap, norm=norm)
    fig.colorbar(mesh, ax=ax, label=cbar_label, pad=0.02)
    ax.set_xlabel(COORDS["p"].long_name)
    ax.set_ylabel(COORDS["lam"].long_name)
    step = 1 if p.size <= 11 else 2
    ax.set_xticks(xc[::step])
    ax.set_xticklabels([f"{v:g}" for v in p[::step]])
    ax.set_yticks(yc)
    ax.set_yticklabels([f"{v:g}" for v in lam])
    ax.set_xlim(xe[0], xe[-1])
    ax.set_ylim(ye[0], ye[-1])
    return mesh


def _norm(values, vmin=None, vmax=None, log_if_wide=False, symmetric=False):
    """Colour normalisation from the finite values (robust to all-NaN fields)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    lo = vmin if vmin is not None else (float(v.min()) if v.size else 0.0)
    hi = vmax if vmax is not None else (float(v.max()) if v.size else 1.0)
    if symmetric:
        m = max(abs(lo), abs(hi)) or 1.0
        return mcolors.Normalize(-m, m)
    if log_if_wide and lo > 0 and hi / lo > 30:
        return mcolors.LogNorm(lo, hi)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return mcolors.Normalize(lo, hi)


#: line styles of the significance outlines: (linestyle, colour)
PAPER_TEST = ("--", "cyan")
PAIRED_TEST = ("-", "white")
FISHER_TEST = ("-", "white")


def _outline(ax, p, lam, pvals, alpha, style) -> tuple[int, int]:
    """Outline the region of cells with p-value < α along the cell edges.

    This is the contour of the significance field on the cell mesh: closed
    wherever the region touches the border of the grid, so its inside is
    unambiguous, and drawn alike for 21 × 5, 2 × 2 or a single row of cells.

    Returns
    -------
    (number of significant cells, number of cells with a p-value)
    """
    pv = np.asarray(pvals, dtype=np.float64)
    sig = np.isfinite(pv) & (pv < alpha)
    (_, xe), (_, ye) = _axis(p), _axis(lam)
    pad = np.pad(sig, 1, constant_values=False)
    segments = []
    for i in range(p.size + 1):  # vertical edges between columns i-1 and i
        for j in range(lam.size):
            if pad[i, j + 1] != pad[i + 1, j + 1]:
                segments.append([(xe[i], ye[j]), (xe[i], ye[j + 1])])
    for j in range(lam.size + 1):  # horizontal edges between rows j-1 and j
        for i in range(p.size):
            if pad[i + 1, j] != pad[i + 1, j + 1]:
                segments.append([(xe[i], ye[j]), (xe[i + 1], ye[j])])
    if segments:
        linestyle, colour = style
        lines = LineCollection(
            segments,
            colors=colour,
            linestyles=linestyle,
            linewidths=1.8,
            capstyle="round",
            clip_on=False,
            zorder=3,
        )
        lines.set_path_effects([patheffects.withStroke(linewidth=3.2, foreground="black")])
        ax.add_collection(lines)
    return int(sig.sum()), int(np.isfinite(pv).sum())


def _legend_handle(style, text):
    linestyle, colour = style
    line = Line2D([], [], color=colour, linestyle=linestyle, linewidth=1.8, label=text)
    line.set_path_effects([patheffects.withStroke(linewidth=3.2, foreground="black")])
    return line


def _count_text(label, alpha, counts):
    per_mass = ", ".join(f"{m}: {n}/{k}" for m, (n, k) in counts.items())
    return f"{label}, p < {alpha:g} (cells: {per_mass})"


def _heatmap_figure(cube, panels, title, subtitle, nrows=1):
    """Figure with one heat-map panel per (title, field, cmap, norm, label) entry."""
    p, lam = _grid(cube)
    w, h = _panel_size(p.size, lam.size)
    ncols = int(np.ceil(len(panels) / nrows))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(w * ncols, h * nrows + 1.0), layout="constrained", squeeze=False
    )
    for ax, (panel_title, field, cmap, norm, cbar_label) in zip(axes.flat, panels, strict=False):
        _mesh(ax, p, lam, field, cmap, norm, cbar_label, fig)
        ax.set_title(panel_title)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(f"{title}\n{subtitle}", fontsize="medium")
    return fig, axes


def _grid(cube):
    return cube["p"].values.astype(np.float64), cube["lam"].values.astype(np.float64)


def _subtitle(params) -> str:
    sim = params.simulation
    n = len(params.grid_seeds)
    return (
        f"run {params.run}: N = {params.network.N}, T = {sim.T_ms / 1000:g} s "
        f"(analysis from {sim.T0_ms / 1000:g} s), {n} seed{'s' if n != 1 else ''}"
    )


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
            handles=[
                Line2D([], [], marker="s", linestyle="none", color="0.85", markersize=10,
                       label="undefined: no train with two spikes")
            ],
            loc="outside lower center", fontsize="small", frameon=False,
        )  # fmt: skip
    return fig


def fig_rates(params, cube):
    rate_e = cube["rate_E_Hz"].mean("seed").values
    rate_i = cube["rate_I_Hz"].mean("seed").values
    vbar = cube["Vbar_mV"].mean("seed").values
    rate_label = "mean rate (Hz)"
    fig, _ = _heatmap_figure(
        cube,
        [
            ("excitatory rate", rate_e, "magma", _norm(rate_e, log_if_wide=True), rate_label),
            ("inhibitory rate", rate_i, "magma", _norm(rate_i, log_if_wide=True), rate_label),
            ("time-mean potential V̄", vbar, "cividis", _norm(vbar), label("cube", "Vbar_mV")),
        ],
        "Firing rates and mean potential of the LIF network (seed means)",
        _subtitle(params),
    )
    return fig


def fig_median_frequency(params, cube):
    med = cube["median_freq_Hz"]
    norm = _norm(med.values, log_if_wide=True)
    panels = [
        (m, med.sel(model=m).values, "viridis", norm, label("cube", "median_freq_Hz"))
        for m in _models()
    ]
    fig, _ = _heatmap_figure(
        cube, panels, "Median frequency of the seed-mean spectrum", _subtitle(params)
    )
    return fig


def fig_chi2(params, cube):
    p, lam = _grid(cube)
    alpha = params.analysis.alpha
    chi2 = cube["chi2"]
    norm = _norm(chi2.values, vmin=0.0)
    panels = [
        (f"LIF – {m}", chi2.sel(mass=m).values, "magma", norm, label("cube", "chi2"))
        for m in models.names()
    ]
    fig, axes = _heatmap_figure(
        cube, panels, "Spectral distance χ² (Eq. 25), the paper's Fig. 4", _subtitle(params)
    )
    paper, paired = {}, {}
    for ax, m in zip(axes.flat, models.names(), strict=True):
        paper[m] = _outline(ax, p, lam, cube["chi2_p_paper"].sel(mass=m).values, alpha, PAPER_TEST)
        difference_p = cube["difference_p"].sel(mass=m).values
        paired[m] = _outline(ax, p, lam, difference_p, alpha, PAIRED_TEST)
    fig.legend(
        handles=[
            _legend_handle(PAPER_TEST, _count_text("paper χ² test", alpha, paper)),
            _legend_handle(
                PAIRED_TEST, _count_text("paired sign-flip test, Welch spectra", alpha, paired)
            ),
        ],
        loc="outside lower center", fontsize="small", facecolor="0.6", framealpha=1,
    )  # fmt: skip
    return fig


def fig_xcorr(params, cube):
    p, lam = _grid(cube)
    alpha = params.analysis.alpha
    tau, rho = cube["tau_max_ms"], cube["rho"]
    tau_norm = _norm(tau.values, symmetric=True)
    rho_norm = _norm(rho.values, vmax=1.0)
    masses = models.names()
    tau_label, rho_label = label("cube", "tau_max_ms"), label("cube", "rho")
    panels = [
        (f"τ_max, LIF – {m}", tau.sel(mass=m).values, "cividis", tau_norm, tau_label)
        for m in masses
    ] + [
        (f"ρ(τ_max), LIF – {m}", rho.sel(mass=m).values, "viridis", rho_norm, rho_label)
        for m in masses
    ]
    fig, axes = _heatmap_figure(
        cube, panels, "Lagged correlation with the LIF potential, the paper's Fig. 5",
        _subtitle(params), nrows=2,
    )  # fmt: skip
    counts = {}
    for ax, m in zip(axes.flat, masses * 2, strict=True):
        counts[m] = _outline(ax, p, lam, cube["rho_p"].sel(mass=m).values, alpha, FISHER_TEST)
    fig.legend(
        handles=[
            _legend_handle(
                FISHER_TEST, _count_text("ρ > 0 by Fisher z (n_eff) + Stouffer", alpha, counts)
            )
        ],
        loc="outside lower center", fontsize="small", facecolor="0.6", framealpha=1,
    )  # fmt: skip
    return fig


def _colour(model: str) -> str:
    """Colour of a model's traces: black for the network, the registry's for a mass model."""
    return (
        "black" if model == LIF else next(m.colour for m in models.registered() if m.name == model)
    )


def _models() -> tuple[str, ...]:
    """The ``model`` coordinate: the network, then every registered mass model."""
    return (LIF, *models.names())


def fig_diagnostic(params, cube, results_dir: Path, p: float, lam: float):
    """LIF and every mass model over 1 s (first seed) and their seed-mean spectra, one cell."""
    seed = params.grid_seeds[0]
    cell = store.cell_dir(results_dir, p, lam, seed)
    net = store.open_dataset(cell / "network.nc", "network")
    mas = store.open_dataset(cell / "masses.nc", "masses")
    sim = params.simulation
    t = net["time_ms"].values
    window = (t >= sim.T0_ms) & (t < min(sim.T_ms, sim.T0_ms + DIAGNOSTIC_SPAN_MS))
    fig, (ax_t, ax_f) = plt.subplots(2, 1, figsize=(8.0, 6.4), layout="constrained")
    traces = {LIF: net["V"].values} | {m.name: mas[m.variable].values for m in models.registered()}
    for m, v in traces.items():
        ax_t.plot(t[window] / 1000, v[window], color=_colour(m), lw=0.8, label=m)
    ax_t.set_xlabel("time t (s)")
    ax_t.set_ylabel(label("network", "V"))
    ax_t.set_title(f"seed {seed}: LIF mean potential and the mass models driven by its input")
    ax_t.legend(loc="upper right", ncols=len(traces), fontsize="small")

    cell_cube = cube.sel(p=p, lam=lam, method="nearest")
    freq = cube["freq_Hz"].values
    pos = freq > 0
    for m in traces:
        spec = cell_cube["spectrum"].sel(model=m).values
        ax_f.loglog(freq[pos], spec[pos], color=_colour(m), lw=0.9, label=m)
        ax_f.axvline(
            float(cell_cube["median_freq_Hz"].sel(model=m)), color=_colour(m), ls=":", lw=1.0
        )
    chi = ", ".join(
        f"χ²(LIF, {m}) = {float(cell_cube['chi2'].sel(mass=m)):.3g}" for m in models.names()
    )
    ax_f.set_title(
        f"seed-mean spectra (normalised to sum 1); dotted: median frequency\n{chi}",
        fontsize="medium",
    )
    ax_f.set_xlabel(label("cube", "freq_Hz"))
    ax_f.set_ylabel(label("cube", "spectrum"))
    ax_f.legend(loc="lower left", fontsize="small")
    fig.suptitle(f"Diagnostic cell p = {p:g}, λ = {lam:g}\n{_subtitle(params)}", fontsize="medium")
    return fig


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
