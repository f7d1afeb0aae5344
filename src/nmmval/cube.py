"""The cube: every cell's ``compare.nc`` of a run in one NetCDF file.

:func:`gather` allocates arrays from the config's coordinates (grid, frequency
bins, lags) and fills them cell by cell, so the memory used is the cube plus
one cell's seeds, whatever the grid. Seeds are combined as MODEL.md §6 says:

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

import json
from pathlib import Path

import numpy as np
import xarray as xr

from nmmval import store
from nmmval.spectra import (
    chi2_pvalue_paper,
    chi2_pvalue_permutation,
    chi2_statistic,
    median_frequency,
)
from nmmval.store import InputError
from nmmval.xcorr import mean_rho, stouffer

MODELS = ("LIF", "CFM", "MFM")
MASSES = ("CFM", "MFM")

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
_ZERO_CONVENTION = (
    "constant potential (silent network): spectrum 0, median 0 Hz, chi2 1 against a non-zero "
    "spectrum and 0 between two zero ones (p = 1), rho 0, tau_max 0 ms, rho_p 0.5"
)
_NAN_DIVERGED = (
    "the mass model diverged in at least one seed of the cell (see diverged_seed), "
    "or the quantity is undefined in the cell's compare.nc"
)
_NAN_DEFAULT = "undefined in the cell's compare.nc (e.g. a constant trace)"


def _attrs(units: str, long_name: str, **extra) -> dict:
    return {"units": units, "long_name": long_name, **extra}


def coordinates(params) -> dict[str, np.ndarray]:
    """Coordinates of the cube, computed from the config alone.

    Returns
    -------
    dict
        ``p``, ``lam``, ``seed``, ``freq_Hz`` (rfft bins of the [T0, T) window
        up to ``fmax_store_Hz``), ``freq_above_Hz`` (first bin above it, the
        frequency the lumped tail is given), ``lag_ms`` and ``n_samples``.
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
        "freq_Hz": full[keep],
        "freq_above_Hz": float(above),
        "lag_ms": np.arange(-n_lag, n_lag + 1) * sim.dt_ms,
        "n_samples": n,
    }


def _lookup(cfg: dict, dotted: str):
    node = cfg
    for k in dotted.split("."):
        node = node[k]
    return node


def _check_cell(ds: xr.Dataset, path: Path, params, coords, p, lam, seed) -> None:
    """Stop with one line if a compare.nc does not belong to this run's cube."""
    try:
        stored = store.stored_config(ds)
    except (KeyError, json.JSONDecodeError):
        raise InputError(f"{path}: no readable config attribute") from None
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
    if list(ds["model"].values) != list(MODELS) or list(ds["mass"].values) != list(MASSES):
        raise InputError(f"{path}: model/mass coordinates are not {MODELS} / {MASSES}")


def _perm_rng(params, p: float, lam: float, k_mass: int) -> np.random.Generator:
    """Random stream of one cell's permutation test: same cell, same bits."""
    key = (int(round(p * 1000)), int(round(lam * 1000)), k_mass, _PERM_STREAM)
    return np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=key))


def _fisher_mean(rho: np.ndarray, axis: int) -> np.ndarray:
    """tanh(mean atanh ρ) along ``axis``; |ρ| clipped just below 1."""
    r = np.clip(np.asarray(rho, dtype=np.float64), -1 + 1e-15, 1 - 1e-15)
    return np.tanh(np.mean(np.arctanh(r), axis=axis))


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


def gather(params, results_dir: Path, out_path: Path) -> None:
    """Build ``cube.nc`` from every ``compare.nc`` of the run's grid.

    Parameters
    ----------
    params : nmmval.config.Params
    results_dir : Path
        ``results/{run}``; cells are read from ``cells/p~…/lam~…/seed~…``.
    out_path : Path
        The cube to write (atomically).

    Raises
    ------
    nmmval.store.InputError
        One line naming the first missing, corrupt or foreign cell file.
    """
    c = coordinates(params)
    n_p, n_l, n_s = c["p"].size, c["lam"].size, c["seed"].size
    n_f, n_lag = c["freq_Hz"].size, c["lag_ms"].size
    n_mod, n_mas = len(MODELS), len(MASSES)
    freq_ext = np.append(c["freq_Hz"], c["freq_above_Hz"])
    nan = np.nan

    seed_scalars = {
        k: np.full((n_p, n_l, n_s), nan) for k in ("synchrony", "rate_E_Hz", "rate_I_Hz", "Vbar_mV")
    }
    median_seed = np.full((n_p, n_l, n_s, n_mod), nan)
    diverged_seed = np.zeros((n_p, n_l, n_s, n_mod), dtype=np.int8)
    per_seed_mass = {
        k: np.full((n_p, n_l, n_s, n_mas), nan) for k in ("tau_max_ms", "rho_max", "rho_p", "n_eff")
    }
    spectrum = np.full((n_p, n_l, n_mod, n_f), nan)
    spectrum_above = np.full((n_p, n_l, n_mod), nan)
    median = np.full((n_p, n_l, n_mod), nan)
    chi2 = np.full((n_p, n_l, n_mas), nan)
    chi2_paper = np.full((n_p, n_l, n_mas), nan)
    chi2_perm = np.full((n_p, n_l, n_mas), nan)
    tau = np.full((n_p, n_l, n_mas), nan)
    rho = np.full((n_p, n_l, n_mas), nan)
    rho_p = np.full((n_p, n_l, n_mas), nan)
    xcorr = np.full((n_p, n_l, n_mas, n_lag), nan)

    for i, p in enumerate(c["p"]):
        for j, lam in enumerate(c["lam"]):
            power = np.empty((n_s, n_mod, n_f + 1))
            xc = np.empty((n_s, n_mas, n_lag))
            for k, seed in enumerate(c["seed"]):
                path = store.cell_dir(results_dir, p, lam, int(seed)) / "compare.nc"
                ds = store.open_dataset(path, "compare")
                _check_cell(ds, path, params, c, p, lam, seed)
                for name, arr in seed_scalars.items():
                    arr[i, j, k] = float(ds[name])
                median_seed[i, j, k] = ds["median_freq_Hz"].values
                if "diverged" in ds:
                    diverged_seed[i, j, k] = ds["diverged"].values
                for name, arr in per_seed_mass.items():
                    arr[i, j, k] = ds[name].values
                power[k, :, :n_f] = ds["power"].values
                power[k, :, n_f] = ds["power_above_fmax"].values
                xc[k] = ds["xcorr"].values
                ds.close()
            mean_power = power.mean(axis=0)
            total = mean_power.sum(axis=-1)
            safe = np.where(total > 0, total, 1.0)  # a zero spectrum (constant V) stays zero
            spectrum[i, j] = mean_power[:, :n_f] / safe[:, None]
            spectrum_above[i, j] = mean_power[:, n_f] / safe
            bad = diverged_seed[i, j].any(axis=0)  # per model: diverged in some seed
            for m in range(n_mod):
                if not bad[m]:
                    median[i, j, m] = median_frequency(freq_ext, mean_power[m])
            for k_mass, mass in enumerate(MASSES):
                m = MODELS.index(mass)
                if bad[m]:  # no spectrum or correlation to combine: NaN, flagged
                    continue
                chi2[i, j, k_mass] = chi2_statistic(mean_power[0], mean_power[m])
                chi2_paper[i, j, k_mass] = chi2_pvalue_paper(
                    mean_power[0], mean_power[m], c["n_samples"]
                )
                chi2_perm[i, j, k_mass] = chi2_pvalue_permutation(
                    power[:, 0, :],
                    power[:, m, :],
                    n_perm=params.analysis.n_perm,
                    rng=_perm_rng(params, p, lam, k_mass),
                )
                r_k = per_seed_mass["rho_max"][i, j, :, k_mass]
                rho[i, j, k_mass] = mean_rho(r_k)
                tau[i, j, k_mass] = np.median(per_seed_mass["tau_max_ms"][i, j, :, k_mass])
                rho_p[i, j, k_mass] = stouffer(per_seed_mass["rho_p"][i, j, :, k_mass])
            xcorr[i, j] = _fisher_mean(xc, axis=0)

    alpha = params.analysis.alpha
    pls, plm, plsm = ("p", "lam", "seed"), ("p", "lam", "mass"), ("p", "lam", "seed", "mass")
    data = {
        "diverged_seed": (
            ("p", "lam", "seed", "model"),
            diverged_seed,
            _attrs(
                "1",
                "1 if the model's V diverged in [T0, T) in this seed (its measures are NaN)",
                flag_values=[0, 1],
                flag_meanings="finite diverged",
            ),
        ),
        "synchrony": (
            pls,
            seed_scalars["synchrony"],
            _attrs("1", "Spike-contrast synchrony of all N spike trains over [T0, T)"),
        ),
        "rate_E_Hz": (
            pls,
            seed_scalars["rate_E_Hz"],
            _attrs("Hz", "mean firing rate of excitatory cells over [T0, T)"),
        ),
        "rate_I_Hz": (
            pls,
            seed_scalars["rate_I_Hz"],
            _attrs("Hz", "mean firing rate of inhibitory cells over [T0, T) (0 if none)"),
        ),
        "Vbar_mV": (
            pls,
            seed_scalars["Vbar_mV"],
            _attrs("mV", "time mean of the LIF population-mean potential over [T0, T)"),
        ),
        "spectrum": (
            ("p", "lam", "model", "freq_Hz"),
            spectrum,
            _attrs(
                "1",
                "seed-mean power spectrum, normalised to sum 1 over the whole band",
                cell_methods="seed: mean",
                comment="sum over freq_Hz plus spectrum_above_fmax is 1",
            ),
        ),
        "spectrum_above_fmax": (
            ("p", "lam", "model"),
            spectrum_above,
            _attrs(
                "1",
                "fraction of the seed-mean power above analysis.fmax_store_Hz",
                cell_methods="seed: mean",
            ),
        ),
        "median_freq_Hz": (
            ("p", "lam", "model"),
            median,
            _attrs(
                "Hz",
                "median frequency of the seed-mean spectrum",
                comment="if above fmax_store_Hz, the first bin above it (a lower bound)",
            ),
        ),
        "median_freq_Hz_seed": (
            ("p", "lam", "seed", "model"),
            median_seed,
            _attrs("Hz", "median frequency of each seed's full-band spectrum"),
        ),
        "chi2": (
            plm,
            chi2,
            _attrs(
                "1",
                "chi-square distance (Eq. 25) of LIF and model seed-mean spectra, "
                "each normalised to sum 1 (0 = same shape, 2 = disjoint)",
            ),
        ),
        "chi2_p_paper": (
            plm,
            chi2_paper,
            _attrs(
                "1",
                "paper-style p-value of chi2: spectra scaled to n_samples counts, "
                "chi-square distribution with L - 1 - empty-bin degrees of freedom",
            ),
        ),
        "chi2_p_perm": (
            plm,
            chi2_perm,
            _attrs(
                "1",
                "permutation p-value of chi2 over relabellings of the pooled "
                "per-seed spectra (LIF vs model)",
                n_perm=params.analysis.n_perm,
            ),
        ),
        "tau_max_ms": (
            plm,
            tau,
            _attrs(
                "ms",
                "lag of the largest LIF-model correlation, median over seeds",
                cell_methods="seed: median",
            ),
        ),
        "rho": (
            plm,
            rho,
            _attrs("1", "largest LIF-model correlation, seeds combined by tanh(mean atanh rho)"),
        ),
        "rho_p": (
            plm,
            rho_p,
            _attrs(
                "1",
                "one-sided Fisher-z p-values (H0: rho <= 0, n_eff) combined over "
                "seeds by Stouffer's method",
            ),
        ),
        "xcorr": (
            ("p", "lam", "mass", "lag_ms"),
            xcorr,
            _attrs(
                "1",
                "Pearson correlation of LIF V(t) and model V(t + lag), seeds "
                "combined by tanh(mean atanh rho)",
            ),
        ),
        "tau_max_ms_seed": (
            plsm,
            per_seed_mass["tau_max_ms"],
            _attrs("ms", "lag of the largest LIF-model correlation, per seed"),
        ),
        "rho_seed": (
            plsm,
            per_seed_mass["rho_max"],
            _attrs("1", "largest LIF-model correlation over lags, per seed"),
        ),
        "rho_p_seed": (
            plsm,
            per_seed_mass["rho_p"],
            _attrs("1", "one-sided Fisher-z p-value of rho_seed > 0 with n_eff_seed"),
        ),
        "n_eff_seed": (
            plsm,
            per_seed_mass["n_eff"],
            _attrs("1", "effective sample size of the correlation (Bartlett / Bayley-Hammersley)"),
        ),
    }
    coords = {
        "p": ("p", c["p"], _attrs("1", "connection probability of the internal graph")),
        "lam": ("lam", c["lam"], _attrs("1", "fraction of excitatory neurons (lambda)")),
        "seed": ("seed", c["seed"], _attrs("1", "repetition index (graph, drive and noise)")),
        "model": ("model", list(MODELS), {"long_name": "model: LIF network or mass model"}),
        "mass": ("mass", list(MASSES), {"long_name": "neural mass model compared with LIF"}),
        "freq_Hz": ("freq_Hz", c["freq_Hz"], _attrs("Hz", "frequency")),
        "lag_ms": ("lag_ms", c["lag_ms"], _attrs("ms", "lag of the model behind the network")),
    }
    cube = xr.Dataset(data, coords=coords)
    nan_vars = []
    for name, da in cube.data_vars.items():
        cells = _nan_cells(da)
        if cells:
            nan_vars.append(name)
            da.attrs["nan_cells"] = "; ".join(cells)
            reason = _NAN_DIVERGED if diverged_seed.any() else _NAN_DEFAULT
            da.attrs["nan_reason"] = _NAN_REASON.get(name, reason)
    zero = [
        f"p={p:.3f} lam={lam:.3f} model={m}"
        for i, p in enumerate(c["p"])
        for j, lam in enumerate(c["lam"])
        for k, m in enumerate(MODELS)
        if not (spectrum[i, j, k].any() or spectrum_above[i, j, k])
    ]
    cube["spectrum"].attrs["zero_cells"] = "; ".join(zero) or "none"
    cube["spectrum"].attrs["zero_convention"] = _ZERO_CONVENTION
    cube.attrs = store.global_attrs(
        params,
        run=params.run,
        n_samples=c["n_samples"],
        alpha=alpha,
        n_cells=n_p * n_l * n_s,
        source=f"{results_dir}/cells/{store.CELL_PATTERN}/compare.nc",
        nan_variables=", ".join(nan_vars) if nan_vars else "none",
        constant_potential_cells=cube["spectrum"].attrs["zero_cells"],
        comment=(
            "Seeds combined as MODEL.md section 6: spectra averaged then normalised; "
            "rho by Fisher z mean, tau_max by median, p-values by Stouffer."
        ),
    )
    store.write_dataset(cube, out_path)
