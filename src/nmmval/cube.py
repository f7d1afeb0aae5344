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
- χ² (Eq. 25) between the seed-mean spectra of LIF and each mass model, with
  the paper's p-value and a permutation p-value over the per-seed spectra;
- lagged correlation: ρ and ρ(τ) by ``tanh(mean atanh ρ_k)``, τ_max by the
  median, the one-sided Fisher p-values by Stouffer's method.

NaN appears only where a quantity is undefined (e.g. the synchrony of a
network in which no train has two spikes); every such variable carries a
``nan_cells`` attribute listing the cells and the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from nmmval import datasets, models, store
from nmmval.analysis.measures import MEASURES, Seeds
from nmmval.datasets import CUBE, LIF, NETWORK_SCALARS
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
)

#: tag mixed into the permutation test's random stream (distinct from the cell streams)
_PERM_STREAM = 0x6368_6932  # "chi2"

_NAN_REASON = {
    "synchrony": "no spike train has two spikes in [T0, T) (Spike-contrast undefined)",
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
        ``fmax_store_Hz``), ``lag_ms``; and ``freq_above_Hz`` (first bin above
        ``fmax_store_Hz``, the frequency the lumped tail is given) and
        ``n_samples``.
    """
    sim, ana = params.simulation, params.analysis
    n = sim.n_steps - sim.n0_steps
    full = np.fft.rfftfreq(n, d=sim.dt_ms * 1e-3)
    keep = full <= ana.fmax_store_Hz
    n_lag = int(round(ana.max_lag_ms / sim.dt_ms))
    above = full[~keep][0] if (~keep).any() else full[-1] + (full[1] - full[0])
    return {
        "p": np.asarray(params.grid_p, dtype=np.float64),
        "lam": np.asarray(params.grid_lam, dtype=np.float64),
        "seed": np.asarray(params.grid_seeds, dtype=np.int32),
        "model": [LIF, *models.names()],
        "mass": list(models.names()),
        "freq_Hz": full[keep],
        "lag_ms": np.arange(-n_lag, n_lag + 1) * sim.dt_ms,
        "freq_above_Hz": float(above),
        "n_samples": n,
    }


def _lookup(cfg: dict, dotted: str):
    node = cfg
    for k in dotted.split("."):
        node = node[k]
    return node


def _check_cell(ds: xr.Dataset, path: Path, params, coords, p, lam, seed) -> None:
    """Stop with one line if a compare.nc does not belong to this run's cube."""
    stored = store.stored_config(ds, path)
    for key in _MUST_MATCH:
        try:
            theirs = _lookup(stored, key)
        except KeyError:
            raise InputError(f"{path}: made with a config without {key}") from None
        if theirs != _lookup(params.resolved, key):
            raise InputError(f"{path}: made with a different {key} than the run's config")
    cell = (float(ds.attrs.get("p", np.nan)), float(ds.attrs.get("lam", np.nan)))
    if not np.allclose(cell, (p, lam)) or int(ds.attrs.get("seed", -1)) != int(seed):
        raise InputError(
            f"{path}: holds cell {ds.attrs.get('p')}, {ds.attrs.get('lam')}, "
            f"{ds.attrs.get('seed')}, not {p}, {lam}, {seed}"
        )
    for name in ("freq_Hz", "lag_ms"):
        have = ds[name].values
        if have.shape != coords[name].shape or not np.allclose(have, coords[name]):
            raise InputError(f"{path}: {name} does not match the run's config")
    if int(ds.attrs.get("n_samples", -1)) != coords["n_samples"]:
        raise InputError(f"{path}: n_samples does not match the run's config")
    for dim in datasets.MODEL_DIMS:
        if list(ds[dim].values) != coords[dim]:
            raise InputError(
                f"{path}: {dim} coordinate {list(ds[dim].values)} is not the registry's "
                f"{coords[dim]}"
            )


def _perm_rng(params, p: float, lam: float, k_mass: int) -> np.random.Generator:
    """Random stream of one cell's permutation test: same cell, same bits."""
    key = (int(round(p * 1000)), int(round(lam * 1000)), k_mass, _PERM_STREAM)
    return np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=key))


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


def combine(seeds: Seeds) -> dict[str, np.ndarray]:
    """One cell's cube values from its seeds: every measure's combination, per-seed values.

    A pure function of the arrays in ``seeds`` (MODEL.md §6.1; see
    :data:`nmmval.analysis.measures.MEASURES`).

    Returns
    -------
    dict of str to numpy.ndarray
        Every cube variable of :data:`nmmval.datasets.CUBE`, without the p and
        λ dimensions.
    """
    out = {name: seeds.values[name] for name in NETWORK_SCALARS}
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
    cube["chi2_p_perm"].attrs["n_perm"] = params.analysis.n_perm
    diverged = bool(values["diverged_seed"].any())
    nan_vars = []
    for name, da in cube.data_vars.items():
        cells = _nan_cells(da)
        if cells:
            nan_vars.append(name)
            da.attrs["nan_cells"] = "; ".join(cells)
            reason = _NAN_DIVERGED if diverged else _NAN_DEFAULT
            da.attrs["nan_reason"] = _NAN_REASON.get(name, reason)
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
            "rho by Fisher z mean, tau_max by median, p-values by Stouffer."
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
                n_perm=params.analysis.n_perm,
                perm_rng=lambda k, p=p, lam=lam: _perm_rng(params, p, lam, k),
            )
            for name, v in combine(seeds).items():
                values[name][i, j] = v
    return describe(params, values, c, results_dir)
