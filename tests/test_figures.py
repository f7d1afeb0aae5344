"""The figures (issue #16): every registered figure and the diagnostic page render from a
synthetic cube, and the pure helpers behind them give the known answers.

The synthetic cube has every variable of :data:`nmmval.datasets.CUBE` on a
small grid (uneven p, as the quick sweep's), drawn at random with the
protocol's structure kept: verdict codes with matching reason bits, and the
last mass model diverged in one cell (NaN measures, ``diverged_at_ms`` set),
so the figures meet every case they draw.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from nmmval import config, cube, datasets, figures, models
from nmmval.analysis.diagnostics import damping_ratio
from nmmval.analysis.protocol import (
    ADEQUATE,
    INADEQUATE,
    REASON_FLAG_MASKS,
    REASON_FLAG_MEANINGS,
    UNDECIDED,
)
from nmmval.datasets import LIF

from conftest import ROOT

BIT = dict(zip(REASON_FLAG_MEANINGS.split(), REASON_FLAG_MASKS, strict=True))
#: the cell (the grid's last) and seed where the last mass model diverges, and when (ms)
DIVERGED = {"p": 1.0, "lam": 0.9, "seed": 0, "at_ms": 450.0}
#: measures that are NaN for a model that diverged in some seed of the cell
_MASS_MEASURES = (
    "chi2", "chi2_p_paper", "tau_max_ms", "rho", "rho_p", "equivalence_bound", "difference_chi2",
    "difference_p", "rho_lower", "rho_upper", "rho_surrogate_p", "rho_over_ceiling",
)  # fmt: skip


def _params(seeds=8, p="[0.0, 0.2, 0.3, 0.5, 1.0]", lam="[0.8, 0.9]"):
    return config.load(
        ROOT / "config" / "config.yaml",
        [
            "simulation.T_ms=1000",
            "simulation.T0_ms=200",
            "analysis.welch_segment_ms=400",
            f"grid.p={p}",
            f"grid.lam={lam}",
            f"grid.seeds={list(range(seeds))}",
            "figures.diagnostic_cells=[]",
        ],
    )


def synthetic_cube(params, rng_seed=0):
    """A cube of random values with the protocol's structure (module docstring)."""
    rng = np.random.default_rng(rng_seed)
    c = cube.coordinates(params)
    sizes = {d: len(c[d]) for d in datasets.COORDS if d in c}
    values = {
        name: rng.uniform(0.0, 1.0, [sizes[d] for d in var.dims])
        for name, var in datasets.CUBE.items()
    }
    shape = (sizes["p"], sizes["lam"], sizes["mass"])
    spectrum = np.exp(-c["freq_Hz"] / 50.0) * rng.uniform(0.5, 1.5, values["spectrum"].shape)
    values["spectrum"] = spectrum / spectrum.sum(axis=-1, keepdims=True)
    values["spectrum_above_fmax"] = np.zeros(values["spectrum_above_fmax"].shape)
    values["median_freq_Hz"] = rng.uniform(5.0, 150.0, values["median_freq_Hz"].shape)
    values["tau_max_ms"] = rng.uniform(-50.0, 50.0, shape)
    values["chi2"] = rng.uniform(0.0, 1.5, shape)
    values["difference_p"] = rng.choice([2.0**-7, 0.05, 0.5], shape)
    values["rho_surrogate_p"] = rng.choice([0.01, 0.2], shape)
    values["equivalence_bound"] = rng.uniform(0.01, 1.0, shape)
    values["equivalence_margin"] = rng.uniform(0.05, 0.3, values["equivalence_margin"].shape)
    values["sum_G"] = rng.uniform(0.1, 1.5, values["sum_G"].shape)
    tau = (params.neuron.tau_m_ms, params.masses.tau_s_ms)
    values["zeta"] = np.vectorize(lambda g: damping_ratio(*tau, g))(values["sum_G"])
    values["closure_error_mV"] = rng.normal(0.0, 2.0, values["closure_error_mV"].shape)
    values["V_mean_mV"] = rng.uniform(-65.0, -50.0, values["V_mean_mV"].shape)
    values["V_sd_mV"] = rng.uniform(0.5, 3.0, values["V_sd_mV"].shape)
    values["verdict"] = rng.choice([INADEQUATE, UNDECIDED, ADEQUATE], shape)
    reasons = rng.choice([BIT["spectra_differ"], BIT["rho_not_above_null"], 6, 14], shape)
    values["verdict_reasons"] = np.where(values["verdict"] == INADEQUATE, reasons, 0)
    values["diverged_seed"] = np.zeros(values["diverged_seed"].shape)
    values["diverged_at_ms"] = np.full(values["diverged_at_ms"].shape, np.nan)
    i, j, s, m = -1, -1, DIVERGED["seed"], len(c["mass"]) - 1  # the last cell
    values["diverged_seed"][i, j, s, m + 1] = 1
    values["diverged_at_ms"][i, j, s, m] = DIVERGED["at_ms"]
    values["verdict"][i, j, m], values["verdict_reasons"][i, j, m] = INADEQUATE, BIT["diverged"]
    for name in _MASS_MEASURES:
        values[name][i, j, m] = np.nan
    for name in ("V_mean_mV", "V_sd_mV", "spectrum", "median_freq_Hz"):
        values[name][i, j, m + 1] = np.nan
    for name in datasets.HELD_OUT_CELL:  # the held-out half as the whole window
        values[f"{name}_held_out"] = values[name].copy()
    return cube.describe(params, values, c, Path("synthetic"))


@pytest.fixture(scope="module")
def params():
    return _params()


@pytest.fixture(scope="module")
def synthetic(params):
    return synthetic_cube(params)


# ------------------------------------------------------------------ every figure renders
def test_every_registered_figure_renders(params, synthetic, tmp_path):
    for f in figures.FIGURES:
        assert (ROOT / "workflow" / "report" / f.caption).is_file(), f.caption
        paths = figures._save(f.make(params, synthetic), tmp_path, f.name)
        assert all(path.stat().st_size > 1000 for path in paths), f.name


@pytest.mark.parametrize(
    ("seeds", "p", "lam"), [(1, "[0.3]", "[0.8]"), (2, "[0.0, 0.5, 1.0]", "[0.9]")]
)
def test_figures_render_on_a_single_cell_or_row_and_few_seeds(seeds, p, lam):
    params = _params(seeds, p, lam)
    ds = synthetic_cube(params)
    if seeds == 1:  # no pair of seeds: no margin, no bounds (MODEL.md §6.3)
        ds["equivalence_margin"][:] = np.nan
        ds["equivalence_bound"][:] = np.nan
    for f in figures.FIGURES:
        fig = f.make(params, ds)
        fig.savefig(io.BytesIO(), format="png", dpi=40)
        plt.close(fig)


def _legend_texts(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_fig4_and_fig5_label_each_reading_with_its_counts(params, synthetic):
    alpha, n_cells = params.analysis.alpha, synthetic.sizes["p"] * synthetic.sizes["lam"]
    texts = _legend_texts(figures.fig_chi2(params, synthetic))
    paper, different, equivalent, no_value = texts  # 8 seeds: no warning
    assert no_value == figures.DIVERGED_NO_VALUE  # the diverged model's cell is grey
    assert (
        paper.startswith("paper")
        and f"{synthetic['chi2_p_paper'].chi2_cut_stored_band:.3g}" in paper
    )
    for m in models.names():
        n = int((synthetic["difference_p"].sel(mass=m) <= alpha).sum())
        assert f"{m} {n}/{n_cells}" in different
        n = int(
            (synthetic["equivalence_bound"].sel(mass=m) < synthetic["equivalence_margin"]).sum()
        )
        assert f"{m} {n}/{n_cells}" in equivalent
    paper, above, adequate, no_value = _legend_texts(figures.fig_xcorr(params, synthetic))
    assert "lenient" in paper and "lag search not accounted for" in paper
    assert "surrogate" in above and "adequacy" in adequate
    plt.close("all")


def test_too_few_seeds_are_said_where_the_paired_test_is_shown():
    params = _params(3)
    ds = synthetic_cube(params)
    warning = figures.seed_warning(3, params.analysis.alpha)
    assert any(warning in t for t in _legend_texts(figures.fig_chi2(params, ds)))
    assert warning in figures.fig_validity(params, ds)._suptitle.get_text()
    plt.close("all")


# ------------------------------------------------------------------ the diagnostic page
def _traces(params, cell):
    """LIF near −55 mV, the first mass model far above it, the last one diverging."""
    sim = params.simulation
    t = np.arange(sim.n_steps) * sim.dt_ms
    rng = np.random.default_rng(1)
    lif = -55.0 + np.cumsum(rng.normal(0.0, 0.05, t.size))
    traces = {LIF: lif}
    names = models.names()
    for k, m in enumerate(names):
        traces[m] = lif + 0.3 if k == 0 else lif - 0.5
    traces[names[0]] = 540.0 + 5 * np.sin(t / 5.0)  # fast synchrony: far above threshold
    traces[names[-1]] = np.where(t < DIVERGED["at_ms"], lif * np.exp(t / 100.0), np.nan)
    return t, traces


def test_diagnostic_page_gives_an_outlier_its_own_axis_and_names_the_divergence(synthetic):
    params = _params()
    cell = synthetic.sel(p=DIVERGED["p"], lam=DIVERGED["lam"])
    t, traces = _traces(params, cell)
    fig = figures.diagnostic_page(params, cell, t, traces, DIVERGED["seed"])
    first, last = models.names()[0], models.names()[-1]
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    note = f"{last} diverged at\nt = {DIVERGED['at_ms']:.1f} ms:\nno trace from then on"
    assert note in texts
    assert any(f"{first} on its own y-scale" in t for t in texts)
    legends = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().texts]
    assert not any(t == last for t in legends)  # no empty entry for the diverged model
    assert any(t.startswith(f"{LIF}: V = ") and t.endswith(" mV") for t in legends)
    spectra_title = fig.axes[-1].get_title()
    assert f"{last}: diverged" in spectra_title
    assert "noise ceiling" in spectra_title and "χ² floor" in spectra_title
    plt.close(fig)


# ------------------------------------------------------------------ pure helpers
def test_own_axis_takes_the_models_outside_the_widened_lif_range():
    lif = np.array([-60.0, -50.0])  # range [-80, -30] after widening by twice the span
    window = {
        LIF: lif,
        "IN": np.array([-79.0, -31.0]),
        "HIGH": np.array([-55.0, -29.0]),
        "LOW": np.array([-81.0, -60.0]),
        "GONE": np.array([np.nan, np.nan]),
        "PARTLY": np.array([-55.0, np.nan]),
    }
    assert figures.own_axis(window) == ["HIGH", "LOW"]


def test_reason_codes_and_verdict_texts():
    assert figures.reasons(0) == []
    assert figures.reason_code(BIT["spectra_differ"] | BIT["rho_not_above_null"]) == "SN"
    assert figures.reason_code(15) == "DSLN"
    assert figures.verdict_text(ADEQUATE, 0) == "adequate"
    assert figures.verdict_text(UNDECIDED, 0) == "undecided"
    assert (
        figures.verdict_text(INADEQUATE, BIT["spectra_differ"] | BIT["rho_not_above_null"])
        == "inadequate (spectra differ, ρ not above null)"
    )
    assert figures.verdict_text(INADEQUATE, BIT["diverged"]) == "diverged"
    assert figures.cell_mark(ADEQUATE, 0) == "+" and figures.cell_mark(UNDECIDED, 0) == "?"
    assert figures.cell_mark(INADEQUATE, BIT["rho_below_level"]) == "L"
    assert set(figures.REASON_TEXT) == set(BIT)


def test_seed_warning_only_when_the_paired_test_cannot_reach_alpha():
    assert figures.paired_test_floor(8) == 2.0**-7
    assert figures.paired_test_floor(20) == pytest.approx(1e-4)
    assert figures.seed_warning(8, 0.01) == ""
    assert figures.seed_warning(20, 0.01) == ""
    text = figures.seed_warning(7, 0.01)
    assert "7 seeds" in text and "cannot reach α = 0.01" in text and "k ≥ 8" in text
    assert "k ≥ 6" in figures.seed_warning(5, 0.05)  # 2^-4 = 0.0625 > 0.05 >= 2^-5
    assert figures.seed_warning(6, 0.05) == figures.seed_warning(6, 2.0**-5) == ""


def test_verdict_colours_keep_the_verdicts_apart_in_grey():
    effect = np.linspace(-2.0, 2.0, 9)
    lum = {
        code: figures._luminance(figures.verdict_colours(np.full(9, code), 0, effect))
        for code in (ADEQUATE, UNDECIDED, INADEQUATE)
    }
    assert lum[ADEQUATE].min() > lum[UNDECIDED].max()
    assert lum[UNDECIDED].min() > lum[INADEQUATE].max()
    assert np.all(np.diff(lum[ADEQUATE]) <= 0)  # darker: farther from equivalence
    diverged = figures.verdict_colours([INADEQUATE], [BIT["diverged"]], [0.0])
    np.testing.assert_array_equal(diverged, [[0.0, 0.0, 0.0, 1.0]])
    assert lum[INADEQUATE].min() > 0.05  # black is the diverged cells' alone
    np.testing.assert_allclose(
        figures.effect_size([0.1, 1e3, np.nan, 0.0], 1.0), [-1, 3, np.nan, -np.inf]
    )
    edge = figures.verdict_colours([ADEQUATE] * 4, 0, [-np.inf, -5.0, np.nan, 0.0])
    np.testing.assert_array_equal(edge[0], edge[1])  # clipped: a zero bound is the lightest
    np.testing.assert_array_equal(edge[2], edge[3])  # undefined: the middle of the ramp


def test_overdamped_limit_is_where_zeta_is_one():
    assert figures.overdamped_limit(20.0, 5.0) == 0.5625
    limit = figures.overdamped_limit(15.0, 4.0)
    assert damping_ratio(15.0, 4.0, limit) == pytest.approx(1.0, rel=1e-14)


def test_boundary_is_closed_and_inset():
    centre = np.zeros((3, 3), dtype=bool)
    centre[1, 1] = True
    square = figures._boundary(centre, np.arange(4.0), np.arange(4.0), 0.25)
    assert sorted(tuple(np.ravel(seg)) for seg in square) == [
        (1.25, 1.25, 1.25, 1.75),  # left
        (1.25, 1.25, 1.75, 1.25),  # bottom
        (1.25, 1.75, 1.75, 1.75),  # top
        (1.75, 1.25, 1.75, 1.75),  # right
    ]
    rng = np.random.default_rng(3)
    for _ in range(20):  # any region: every end point is shared by exactly two segments
        region = rng.random((5, 4)) < 0.5
        for inset in (0.0, 0.2):
            segs = figures._boundary(region, np.arange(6.0), np.arange(5.0), inset)
            ends = [tuple(np.round(pt, 9)) for seg in segs for pt in seg]
            _, counts = np.unique(ends, axis=0, return_counts=True)
            assert (counts % 2 == 0).all(), (region, inset)


@pytest.mark.parametrize("width", [12, 20, 33, 40, 80])
def test_titles_wrap_in_balanced_lines(width):
    """A title wraps in as many lines as a greedy wrap to the width needs, none longer
    than the width, and the lines differ by less than a word: no lone last word (the
    one-panel synchrony title used to end in 'network' alone)."""
    text = "Spike-contrast synchrony of the LIF network, run quick: N = 2000, T = 3 s"
    lines = figures._balanced_fill(text, width).split("\n")
    assert len(lines) == len(textwrap.wrap(text, width))
    assert max(map(len, lines)) <= width
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")  # only breaks added
    longest_word = max(map(len, text.split()))
    assert max(map(len, lines)) - min(map(len, lines)) <= longest_word + 1


def test_diagnostic_span_shows_ten_cycles_within_bounds():
    """1 s of a slow rhythm, 10 periods of a 40 Hz one, 100 ms of fast synchrony; 1 s
    where the median frequency is unknown."""
    assert figures.diagnostic_span_ms(4.4) == figures.DIAGNOSTIC_SPAN_MS == 1000.0
    assert figures.diagnostic_span_ms(40.0) == pytest.approx(250.0)
    assert figures.diagnostic_span_ms(313.8) == figures.DIAGNOSTIC_MIN_SPAN_MS == 100.0
    assert figures.diagnostic_span_ms(float("nan")) == 1000.0
    assert figures.diagnostic_span_ms(0.0) == 1000.0


def test_assumptions_explain_cells_without_a_value_only_where_there_are_some(params, synthetic):
    """The closure error of I cells has no value at λ = 1 (no I cells): the legend says so;
    a cube without an empty cell gets no such entry."""
    ds = synthetic.copy(deep=True)
    ds["closure_error_mV"][:] = 0.1
    assert not any("no value" in t for t in _legend_texts(figures.fig_assumptions(params, ds)))
    ds["closure_error_mV"].loc[dict(population="I", lam=0.9)] = np.nan
    assert any(
        "no I cells at λ = 1" in t for t in _legend_texts(figures.fig_assumptions(params, ds))
    )
    plt.close("all")
