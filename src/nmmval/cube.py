"""The cube: every cell's ``compare.nc`` of a run in one NetCDF file (MODEL.md §6).

:func:`gather` runs three steps per cell <p, λ>:

- :func:`read_cell` reads the seeds' compare.nc files (the only step that
  touches files) and checks that each belongs to this run;
- :func:`combine` combines the seeds, a pure function of their arrays: every
  registered measure's combination (:data:`nmmval.analysis.measures.MEASURES`) and the
  per-seed values kept as they are;

and then :func:`describe` turns the filled arrays into the cube.nc Dataset,
laid out as :data:`nmmval.datasets.CUBE` declares, with the NaN cells listed.
Arrays are allocated from the config's coordinates (grid, frequency bins,
lags) and filled cell by cell, so the memory used is the cube plus one
cell's seeds, whatever the grid. Seeds are combined as MODEL.md §6 says:

- spectra: mean of the raw per-seed power, then normalised to sum 1 over the
  whole band (bins up to ``analysis.fmax_store_Hz`` plus the power above it,
  lumped into one extra bin, ``spectrum_above_fmax``);
- the paper's readings, labelled "paper" (§6.1, §6.2): χ² (Eq. 25) between
  the seed-mean spectra of LIF and each mass model with the paper's p-value
  (the cut on χ² it amounts to in the attributes of ``chi2_p_paper``);
  ρ and ρ(τ) by ``tanh(mean atanh ρ_k)``, τ_max by the median, the
  one-sided Fisher p-values by Stouffer's method;
- the validation protocol (§6.3), whose verdicts the cube reports
  (``verdict``, ``verdict_reasons``) with every number behind them: per-seed
  χ² of Welch spectra, the network's seed null and the equivalence margin,
  the paired sign-flip difference test, the equivalence bound, ρ's seed-level
  bounds against the split-half noise ceiling, ρ against its surrogate null,
  and the χ² floor of the split halves; a model diverged in any seed is
  inadequate, the network's numbers still given;
- diagnostics (§4, §5.1): mean and sd of every model's V, ΣḠ, ζ, the
  closure error and when a model diverged, per seed (and V's as seed means);
- the PDM's rate against the network's (§5.2): relative error of the mean
  and correlation per population, per seed and as seed means;
- the held-out half [T_mid, T) (§5.3): the protocol again on the second half
  of the window for every model (``*_held_out``), where the fitted models
  are judged, and their fitted parameters from the cell's fit.nc
  (:func:`read_fit`).

NaN appears only where a quantity is undefined (e.g. the synchrony of a
network in which no train has two spikes); every such variable carries a
``nan_cells`` attribute listing the cells and the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from nmmval import datasets, models, store
from nmmval.analysis.measures import MEASURES, Seeds, sign_rng
from nmmval.analysis.protocol import paper_chi2_cut, welch_frequencies
from nmmval.datasets import CUBE, DIAGNOSTICS, LIF, NETWORK_SCALARS, POPULATIONS
from nmmval.models import SYNAPSE_TYPES
from nmmval.store import InputError

#: config keys a compare.nc must share with the run's config to enter its cube
_MUST_MATCH = (
    "seed",
    "network",
    "neuron",
    "simulation",
    "masses",
    "analysis.max_lag_ms",
    "analysis.fmax_store_Hz",
    "analysis.sc_min_bin_ms",
    "analysis.welch_segment_ms",
    "analysis.n_surrogates",
    "analysis.rate_bin_ms",
)
#: config keys a fit.nc must share with the run's config: what the fit depends on (the
#: analysis keys do not enter it, and the workflow does not refit when they change)
_FIT_MUST_MATCH = ("seed", "network", "neuron", "simulation", "masses")

_NAN_REASON = {
    "synchrony": "no spike train has two spikes in [T0, T) (Spike-contrast undefined)",
    "diverged_at_ms": "the model did not diverge in that seed",
    "closure_error_mV": "no closure recordings in network.nc (simulation.record_closures off), "
    "or a population without cells",
    "chi2_null_mean": "a single seed: no pair of seeds",
    "equivalence_margin": "a single seed: no pair of seeds",
    "rho_over_ceiling": "a zero noise ceiling (split halves not positively correlated), "
    "or the model diverged in some seed",
    "pdm_rate_rel_error": "a population without cells, or without a spike in [T0, T) in some seed",
    "pdm_rate_rel_error_seed": "a population without cells, or without a spike in [T0, T)",
    "pdm_rate_corr": "a population without cells, or a constant binned rate in some seed",
    "pdm_rate_corr_seed": "a population without cells, or a constant binned rate (network or PDM)",
}
_NAN_DIVERGED = (
    "the mass model diverged in at least one seed of the cell (see diverged_seed), "
    "or the quantity is undefined in the cell's compare.nc"
)
_NAN_DEFAULT = "undefined in the cell's compare.nc (e.g. a constant trace)"


def coordinates(params) -> dict[str, np.ndarray]:
    """Coordinates of the cube, computed from the config and the model registry.

    Returns
    -------
    dict
        ``p``, ``lam``, ``seed``, ``model`` (LIF and every registered mass
        model), ``mass``, ``freq_Hz`` (rfft bins of the [T0, T) window up to
        ``fmax_store_Hz``), ``lag_ms``, ``welch_freq_Hz`` (the Welch bins of
        ``analysis.welch_segment_ms`` up to ``fmax_store_Hz``), ``population``;
        and ``freq_above_Hz`` (first bin above ``fmax_store_Hz``, the
        frequency the lumped tail is given) and ``n_samples``.
    """
    sim, ana = params.simulation, params.analysis
    n = sim.n_steps - sim.n0_steps
    full = np.fft.rfftfreq(n, d=sim.dt_ms * 1e-3)
    keep = full <= ana.fmax_store_Hz
    n_lag = int(round(ana.max_lag_ms / sim.dt_ms))
    above = full[~keep][0] if (~keep).any() else full[-1] + (full[1] - full[0])
    welch = welch_frequencies(n, sim.dt_ms, ana.welch_segment_ms)
    held_out = welch_frequencies(n - n // 2, sim.dt_ms, ana.welch_segment_ms)
    return {
        "p": np.asarray(params.grid_p, dtype=np.float64),
        "lam": np.asarray(params.grid_lam, dtype=np.float64),
        "seed": np.asarray(params.grid_seeds, dtype=np.int32),
        "model": [LIF, *models.names()],
        "mass": list(models.names()),
        "freq_Hz": full[keep],
        "lag_ms": np.arange(-n_lag, n_lag + 1) * sim.dt_ms,
        "welch_freq_Hz": welch[welch <= ana.fmax_store_Hz],
        "held_out_freq_Hz": held_out[held_out <= ana.fmax_store_Hz],
        "population": list(POPULATIONS),
        "synapse": list(SYNAPSE_TYPES),
        "fitted": list(models.fitted_names()),
        "freq_above_Hz": float(above),
        "n_samples": n,
    }


def _lookup(cfg: dict, dotted: str):
    node = cfg
    for k in dotted.split("."):
        node = node[k]
    return node


def _check_config(ds: xr.Dataset, path: Path, params, keys) -> None:
    """Stop with one line unless the file was made with the run's values of ``keys``."""
    stored = store.stored_config(ds, path)
    for key in keys:
        try:
            theirs = _lookup(stored, key)
        except KeyError:
            raise InputError(f"{path}: made with a config without {key}") from None
        if theirs != _lookup(params.resolved, key):
            raise InputError(f"{path}: made with a different {key} than the run's config")


def _check_cell(ds: xr.Dataset, path: Path, params, coords, p, lam, seed) -> None:
    """Stop with one line if a compare.nc does not belong to this run's cube."""
    _check_config(ds, path, params, _MUST_MATCH)
    cell = (float(ds.attrs.get("p", np.nan)), float(ds.attrs.get("lam", np.nan)))
    if not np.allclose(cell, (p, lam)) or int(ds.attrs.get("seed", -1)) != int(seed):
        raise InputError(
            f"{path}: holds cell {ds.attrs.get('p')}, {ds.attrs.get('lam')}, "
            f"{ds.attrs.get('seed')}, not {p}, {lam}, {seed}"
        )
    for name in ("freq_Hz", "lag_ms", "welch_freq_Hz", "held_out_freq_Hz"):
        have = ds[name].values
        if have.shape != coords[name].shape or not np.allclose(have, coords[name]):
            raise InputError(f"{path}: {name} does not match the run's config")
    if int(ds.attrs.get("n_samples", -1)) != coords["n_samples"]:
        raise InputError(f"{path}: n_samples does not match the run's config")
    for dim in (*datasets.MODEL_DIMS, "population"):
        if list(ds[dim].values) != coords[dim]:
            raise InputError(
                f"{path}: {dim} coordinate {list(ds[dim].values)} is not the registry's "
                f"{coords[dim]}"
            )


def read_cell(params, results_dir: Path, p: float, lam: float, coords: dict) -> dict:
    """Every compare.nc variable of one cell's seeds, stacked along a leading seed axis.

    Raises
    ------
    nmmval.store.InputError
        One line naming the first missing, corrupt or foreign file.
    """
    per_seed = {name: [] for name in datasets.COMPARE}
    for seed in coords["seed"]:
        path = store.cell_dir(results_dir, p, lam, int(seed)) / "compare.nc"
        ds = store.open_dataset(path, "compare")
        _check_cell(ds, path, params, coords, p, lam, seed)
        for name, values in per_seed.items():
            values.append(ds[name].values)
        ds.close()
    return {name: np.stack(values) for name, values in per_seed.items()}


def read_fit(params, results_dir: Path, p: float, lam: float, coords: dict) -> dict:
    """The fitted models' parameters of one cell (fit.nc; MODEL.md §5.3).

    Raises
    ------
    nmmval.store.InputError
        One line naming a missing, corrupt or foreign fit.nc.
    """
    path = store.fit_path(results_dir, p, lam)
    ds = store.open_dataset(path, "fit")
    _check_config(ds, path, params, _FIT_MUST_MATCH)
    if not np.allclose((float(ds.attrs.get("p", np.nan)), float(ds.attrs.get("lam", np.nan))),
                       (p, lam)):  # fmt: skip
        raise InputError(f"{path}: holds cell {ds.attrs.get('p')}, {ds.attrs.get('lam')}")
    if list(ds["fitted"].values) != coords["fitted"]:
        raise InputError(
            f"{path}: fitted models {list(ds['fitted'].values)}, not the registry's "
            f"{coords['fitted']}"
        )
    values = {name: ds[name].values for name in datasets.FIT}
    ds.close()
    return values


def combine(seeds: Seeds) -> dict[str, np.ndarray]:
    """One cell's cube values from its seeds: every measure's combination, per-seed values.

    A pure function of the arrays in ``seeds`` (MODEL.md §6; see
    :data:`nmmval.analysis.measures.MEASURES`); the network's scalars and the
    diagnostics are kept per seed.

    Returns
    -------
    dict of str to numpy.ndarray
        Every cube variable of :data:`nmmval.datasets.CUBE`, without the p and
        λ dimensions.
    """
    out = {name: seeds.values[name] for name in (*NETWORK_SCALARS, *DIAGNOSTICS)}
    out["diverged_seed"] = seeds.values["diverged"]
    for measure in MEASURES:
        out.update(measure.combine(seeds))
    return out


def _nan_cells(da: xr.DataArray) -> list[str]:
    """'p=0.000 lam=0.800 seed=0000' for each NaN point over the grid dims."""
    grid_dims = [d for d in ("p", "lam", "seed") if d in da.dims]
    other = [d for d in da.dims if d not in grid_dims]
    bad = da.isnull().any(other) if other else da.isnull()
    out = []
    for idx in zip(*np.nonzero(bad.values), strict=True):
        parts = []
        for d, i in zip(grid_dims, idx, strict=True):
            v = da[d].values[i]
            parts.append(f"{d}={store.format_seed(v)}" if d == "seed" else f"{d}={v:.3f}")
        out.append(" ".join(parts))
    return out


def mark_nan(cube: xr.Dataset) -> list[str]:
    """Name each variable's NaN points and why in its attributes (``nan_cells``,
    ``nan_reason``), replacing any earlier ones; returns the variables that have any."""
    diverged = bool(cube["diverged_seed"].any())
    nan_vars = []
    for name, da in cube.data_vars.items():
        da.attrs.pop("nan_cells", None)
        da.attrs.pop("nan_reason", None)
        cells = _nan_cells(da)
        if cells:
            nan_vars.append(name)
            da.attrs["nan_cells"] = "; ".join(cells)
            reason = _NAN_DIVERGED if diverged else _NAN_DEFAULT
            da.attrs["nan_reason"] = _NAN_REASON.get(name.removesuffix("_held_out"), reason)
    return nan_vars


def describe(params, values: dict, coords: dict, results_dir: Path) -> xr.Dataset:
    """The cube.nc Dataset of the filled arrays: attributes, NaN and constant cells listed.

    Parameters
    ----------
    params : nmmval.config.Params
    values : dict of str to numpy.ndarray
        Every variable of :data:`nmmval.datasets.CUBE`, over the whole grid.
    coords : dict
        :func:`coordinates`.
    results_dir : Path
        The run's folder (named in the ``source`` attribute).
    """
    n_cells = values["synchrony"].size
    cube = datasets.build(
        "cube", values, {d: coords[d] for d in coords if d in datasets.COORDS}, {}
    )
    sim, ana = params.simulation, params.analysis
    window_ms = sim.T_ms - sim.T0_ms
    cube["chi2_p_paper"].attrs.update(
        chi2_cut_stored_band=paper_chi2_cut(window_ms, sim.dt_ms, ana.fmax_store_Hz, ana.alpha),
        chi2_cut_full_band=paper_chi2_cut(window_ms, sim.dt_ms, None, ana.alpha),
        chi2_cut_comment="the normalised chi2 above which the paper's test rejects at alpha: "
        "for the bins up to analysis.fmax_store_Hz and for all bins to Nyquist",
    )
    nan_vars = mark_nan(cube)
    spectrum, above = values["spectrum"], values["spectrum_above_fmax"]
    zero = [
        f"p={p:.3f} lam={lam:.3f} model={m}"
        for i, p in enumerate(coords["p"])
        for j, lam in enumerate(coords["lam"])
        for k, m in enumerate(coords["model"])
        if not (spectrum[i, j, k].any() or above[i, j, k])
    ]
    cube["spectrum"].attrs["zero_cells"] = "; ".join(zero) or "none"
    cube.attrs = datasets.global_attrs(
        params,
        run=params.run,
        n_samples=coords["n_samples"],
        alpha=params.analysis.alpha,
        n_cells=n_cells,
        source=f"{results_dir}/cells/{store.CELL_PATTERN}/compare.nc",
        nan_variables=", ".join(nan_vars) if nan_vars else "none",
        constant_potential_cells=cube["spectrum"].attrs["zero_cells"],
        comment=(
            "Seeds combined as MODEL.md section 6: spectra averaged then normalised; "
            "rho by Fisher z mean, tau_max by median, the paper's p-values (chi2_p_paper, "
            "rho_p; labelled paper) by its chi-square reading and by Stouffer. The verdicts "
            "(verdict, verdict_reasons) come from the validation protocol of section 6.3: "
            "per-seed Welch spectra against the network's seed null, a paired sign-flip "
            "difference test, rho against phase-randomised surrogates and the split-half "
            "noise ceiling."
        ),
    )
    return cube


def gather(params, results_dir: Path) -> xr.Dataset:
    """The cube of a run: every cell's compare.nc, seeds combined (read, combine, describe).

    Parameters
    ----------
    params : nmmval.config.Params
    results_dir : Path
        ``results/{run}``; cells are read from ``cells/p~…/lam~…/seed~…``.

    Returns
    -------
    xarray.Dataset
        The cube.nc Dataset (:data:`nmmval.datasets.CUBE`).

    Raises
    ------
    nmmval.store.InputError
        One line naming the first missing, corrupt or foreign cell file.
    """
    c = coordinates(params)
    sizes = {d: len(c[d]) for d in datasets.COORDS if d in c}
    values = {  # NaN until filled; flags 0
        name: np.full([sizes[d] for d in var.dims], 0 if var.flags else np.nan, dtype=var.dtype)
        for name, var in CUBE.items()
    }
    freq_ext = np.append(c["freq_Hz"], c["freq_above_Hz"])
    for i, p in enumerate(c["p"]):
        for j, lam in enumerate(c["lam"]):
            seeds = Seeds(
                values=read_cell(params, results_dir, p, lam, c),
                freq_Hz=freq_ext,
                n_samples=c["n_samples"],
                analysis=params.analysis,
                sign_rng=lambda k, p=p, lam=lam: sign_rng(params, p, lam, k),
            )
            cell = {**combine(seeds), **read_fit(params, results_dir, p, lam, c)}
            for name, v in cell.items():
                values[name][i, j] = v
    return describe(params, values, c, results_dir)
