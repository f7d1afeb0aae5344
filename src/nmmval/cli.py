"""The ``nmmval`` command: one subcommand per workflow stage.

Every subcommand reads a config (``--config``, with ``--set section.key=value``
overrides), its input files, and writes one NetCDF file atomically. Any
error ends the process with exit code 1 and one line ``nmmval: <what>``; a
bad command line (unknown option, wrong type, missing required option) ends
it with exit code 2 and one line ``nmmval <subcommand>: error: <what>``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

from nmmval import config as cfgmod
from nmmval import store
from nmmval.profiles import ProfileError
from nmmval.store import InputError, OutputError

MODELS = ("LIF", "CFM", "MFM")
MASSES = ("CFM", "MFM")


def _attrs(units: str, long_name: str, **extra) -> dict:
    return {"units": units, "long_name": long_name, **extra}


def _time_coord(params) -> xr.DataArray:
    sim = params.simulation
    t = np.arange(sim.n_steps) * sim.dt_ms
    return xr.DataArray(t, dims="time_ms", attrs=_attrs("ms", "time at the start of the step"))


def _cell_attrs(p: float, lam: float, seed: int) -> dict:
    return {"p": float(p), "lam": float(lam), "seed": int(seed)}


def _synchrony(params, spike_neuron, spike_step) -> float:
    from nmmval.synchrony import spike_contrast

    sim = params.simulation
    return float(
        spike_contrast(
            spike_step.astype(np.float64) * sim.dt_ms,
            spike_neuron,
            params.network.N,
            sim.T0_ms,
            sim.T_ms,
            min_bin_ms=params.analysis.sc_min_bin_ms,
        )
    )


def cmd_simulate(args) -> None:
    """Simulate one cell and write network.nc."""
    from nmmval import faults
    from nmmval.lif import BLOCK_STEPS, simulate

    params = cfgmod.load(args.config, args.set)
    for name, value in (("--p", args.p), ("--lam", args.lam)):
        if not 0.0 <= value <= 1.0:
            raise cfgmod.ConfigError(f"{name}: {value!r} is not in [0, 1]")
    if args.seed < 0:
        raise cfgmod.ConfigError(f"--seed: {args.seed!r} must be >= 0")
    if args.threads is not None and args.threads < 1:
        raise cfgmod.ConfigError(f"--threads: {args.threads!r} must be >= 1")
    store.check_writable(args.out)
    t0 = time.perf_counter()
    rec = simulate(
        params,
        args.p,
        args.lam,
        args.seed,
        threads=args.threads,
        progress=True,
        # the test-only kill point "block=K", after the K-th block (nmmval.faults)
        on_block=lambda step, *_: faults.reached("block", -(-step // BLOCK_STEPS)),
    )
    sync = _synchrony(params, rec.spike_neuron, rec.spike_step)
    keep = params.simulation.store_spikes
    spike_n = rec.spike_neuron if keep else rec.spike_neuron[:0]
    spike_s = rec.spike_step if keep else rec.spike_step[:0]
    phi_attrs = "spike arrivals per neuron per step"
    ds = xr.Dataset(
        {
            "V": (
                "time_ms",
                rec.V_mV.astype(np.float32),
                _attrs("mV", "population-mean membrane potential (Eq. 12)"),
            ),
            "phi_E": ("time_ms", rec.phi_E, _attrs("1", f"excitatory {phi_attrs}")),
            "phi_I": ("time_ms", rec.phi_I, _attrs("1", f"inhibitory {phi_attrs}")),
            "phi_ext": ("time_ms", rec.phi_ext, _attrs("1", f"external {phi_attrs}")),
            "spike_neuron": (
                "spike",
                spike_n,
                _attrs("1", "id of the spiking neuron (excitatory: id < n_E)"),
            ),
            "spike_step": (
                "spike",
                spike_s,
                _attrs("1", "step of the spike (time = step * dt_ms)"),
            ),
            "synchrony": (
                (),
                sync,
                _attrs(
                    "1",
                    "Spike-contrast over [T0, T) (Ciba et al. 2018)",
                    comment="NaN: no train has two spikes",
                ),
            ),
            "rate_E_Hz": (
                (),
                rec.rate_E_Hz,
                _attrs("Hz", "mean rate of excitatory cells over [T0, T)"),
            ),
            "rate_I_Hz": (
                (),
                rec.rate_I_Hz,
                _attrs("Hz", "mean rate of inhibitory cells over [T0, T) (0 if none)"),
            ),
            "Vbar_mV": ((), rec.Vbar_mV, _attrs("mV", "time mean of V over [T0, T)")),
        },
        coords={"time_ms": _time_coord(params)},
        attrs=store.global_attrs(
            params,
            **_cell_attrs(args.p, args.lam, args.seed),
            n_E=rec.n_E,
            n_I=rec.n_I,
            n_edges=rec.n_edges,
            n_ext_edges=rec.n_ext_edges,
            n_spikes=int(rec.spike_neuron.size),
            spikes_stored=int(keep),
            build_s=rec.build_s,
            loop_s=rec.loop_s,
            wall_time_s=time.perf_counter() - t0,
        ),
    )
    store.write_dataset(ds, args.out)


def _phi(net: xr.Dataset) -> dict[str, np.ndarray]:
    return {"E": net["phi_E"].values, "I": net["phi_I"].values, "ext": net["phi_ext"].values}


def _check_same_config(params, ds: xr.Dataset, path) -> None:
    sim_file = store.stored_config(ds)["simulation"]
    sim = params.simulation
    if (sim_file["dt_ms"], sim_file["T_ms"]) != (sim.dt_ms, sim.T_ms):
        raise InputError(
            f"{path}: made with dt_ms={sim_file['dt_ms']}, T_ms={sim_file['T_ms']}, "
            f"not the config's dt_ms={sim.dt_ms}, T_ms={sim.T_ms}"
        )


def cmd_masses(args) -> None:
    """Drive CFM and MFM with a network's recorded input; write masses.nc."""
    from nmmval.masses import cfm, divergence_step, mfm

    t0 = time.perf_counter()
    params = cfgmod.load(args.config, args.set)
    net = store.open_dataset(args.network, "network")
    _check_same_config(params, net, args.network)
    store.check_writable(args.out)
    vbar = float(net["Vbar_mV"])
    phi = _phi(net)
    t_ms = net["time_ms"].values
    long_names = {
        "V_cfm": "conventional Freeman model, constant Vbar (Eq. 20)",
        "V_mfm": "modified Freeman model, V(t) (Eq. 24)",
    }
    data = {}
    for name, v in (("V_cfm", cfm(phi, params, vbar)), ("V_mfm", mfm(phi, params, vbar))):
        k = divergence_step(v)
        extra = {"diverged_at_ms": "none"}
        if k is not None:  # no value from here on: NaN, flagged
            v = v.copy()
            v[k:] = np.nan
            extra = {
                "diverged_at_ms": float(t_ms[k]),
                "comment": "the model diverged (|V| beyond float32) at diverged_at_ms; NaN after",
            }
        data[name] = ("time_ms", v.astype(np.float32), _attrs("mV", long_names[name], **extra))
    ds = xr.Dataset(
        data,
        coords={"time_ms": net["time_ms"]},
        attrs=store.global_attrs(
            params,
            **{k: net.attrs[k] for k in ("p", "lam", "seed")},
            Vbar_mV=vbar,
            wall_time_s=time.perf_counter() - t0,
        ),
    )
    store.write_dataset(ds, args.out)


def cmd_compare(args) -> None:
    """Spectra and lagged correlations of LIF, CFM, MFM over [T0, T); write compare.nc."""
    from nmmval.spectra import median_frequency, power_spectrum
    from nmmval.xcorr import best_lag, effective_n, fisher_pvalue, lagged_correlation

    t0 = time.perf_counter()
    params = cfgmod.load(args.config, args.set)
    net = store.open_dataset(args.network, "network")
    mas = store.open_dataset(args.masses, "masses")
    _check_same_config(params, net, args.network)
    n0 = params.simulation.n0_steps
    dt = params.simulation.dt_ms
    if mas.sizes["time_ms"] != net.sizes["time_ms"]:
        raise InputError(f"{args.masses}: time axis does not match {args.network}")
    store.check_writable(args.out)
    series = {
        "LIF": net["V"].values[n0:].astype(np.float64),
        "CFM": mas["V_cfm"].values[n0:].astype(np.float64),
        "MFM": mas["V_mfm"].values[n0:].astype(np.float64),
    }
    # a mass model that diverged (NaN in masses.nc) has no spectrum and no correlation
    diverged = {m: bool(np.isnan(v).any()) for m, v in series.items()}
    power, tail, median = [], [], []
    for m in MODELS:
        freq, P = power_spectrum(np.nan_to_num(series[m]), dt)
        keep = freq <= params.analysis.fmax_store_Hz
        power.append(np.where(diverged[m], np.nan, P[keep]))
        tail.append(np.nan if diverged[m] else P[~keep].sum())
        median.append(np.nan if diverged[m] else median_frequency(freq, P))
    freq = freq[keep]
    xc, tau, rho, neff, pval = [], [], [], [], []
    for m in MASSES:
        lags, r = lagged_correlation(
            series["LIF"], np.nan_to_num(series[m]), dt, params.analysis.max_lag_ms
        )
        t_max, r_max = best_lag(lags, r)
        n_eff = effective_n(series["LIF"], np.nan_to_num(series[m]))
        if diverged[m]:
            r = np.full_like(r, np.nan)
            t_max = r_max = n_eff = np.nan
        xc.append(r)
        tau.append(t_max)
        rho.append(r_max)
        neff.append(n_eff)
        pval.append(fisher_pvalue(r_max, n_eff))
    scalars = {k: net[k] for k in ("synchrony", "rate_E_Hz", "rate_I_Hz", "Vbar_mV")}
    ds = xr.Dataset(
        {
            "power": (
                ("model", "freq_Hz"),
                np.array(power),
                _attrs("mV2", "|rfft|^2 of mean-removed, Hamming-windowed V over [T0, T)"),
            ),
            "power_above_fmax": (
                "model",
                np.array(tail),
                _attrs("mV2", "summed power of the bins above fmax_store_Hz"),
            ),
            "median_freq_Hz": (
                "model",
                np.array(median),
                _attrs("Hz", "median frequency of the full spectrum"),
            ),
            "xcorr": (
                ("mass", "lag_ms"),
                np.array(xc),
                _attrs("1", "Pearson correlation of LIF V(t) and model V(t + lag)"),
            ),
            "tau_max_ms": ("mass", np.array(tau), _attrs("ms", "lag of the largest correlation")),
            "rho_max": ("mass", np.array(rho), _attrs("1", "largest correlation over lags")),
            "n_eff": (
                "mass",
                np.array(neff),
                _attrs("1", "effective sample size (Bartlett / Bayley-Hammersley)"),
            ),
            "rho_p": (
                "mass",
                np.array(pval),
                _attrs("1", "one-sided Fisher-z p-value of rho_max > 0 with n_eff"),
            ),
            "diverged": (
                "model",
                np.array([diverged[m] for m in MODELS], dtype=np.int8),
                _attrs(
                    "1",
                    "1 if the model's V diverged in [T0, T) (its measures are NaN)",
                    flag_values=[0, 1],
                    flag_meanings="finite diverged",
                ),
            ),
            **scalars,
        },
        coords={
            "model": ("model", list(MODELS)),
            "mass": ("mass", list(MASSES)),
            "freq_Hz": ("freq_Hz", freq, _attrs("Hz", "frequency")),
            "lag_ms": ("lag_ms", lags, _attrs("ms", "lag of the model behind the network")),
        },
        attrs=store.global_attrs(
            params,
            **{k: net.attrs[k] for k in ("p", "lam", "seed")},
            n_samples=int(series["LIF"].size),
            wall_time_s=time.perf_counter() - t0,
        ),
    )
    store.write_dataset(ds, args.out)


def cmd_gather(args) -> None:
    """Gather every cell's compare.nc into the cube."""
    from nmmval.cube import gather

    params = cfgmod.load(args.config, args.set)
    store.check_writable(args.out)
    gather(params, Path(args.results), Path(args.out))


def cmd_figures(args) -> None:
    """Render the heat maps and diagnostic pages."""
    from nmmval.figures import render_all

    params = cfgmod.load(args.config, args.set)
    render_all(params, Path(args.cube), Path(args.results), Path(args.outdir))


def cmd_profile(args) -> None:
    """Install a Snakemake profile of this repository into the user's config folder."""
    from nmmval.profiles import install_profile

    dest = install_profile(args.name, force=args.force)
    print(f"nmmval: profile {args.name!r} installed in {dest}")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage dump), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``nmmval``."""
    parser = _Parser(
        prog="nmmval", description="Validity of neural mass models (Deschle et al. 2021)."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, func, help_text):
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(func=func)
        if name != "profile":
            sp.add_argument("--config", required=True, help="YAML config (config/config.yaml)")
            sp.add_argument(
                "--set",
                action="append",
                default=[],
                metavar="SECTION.KEY=VALUE",
                help="override one config key (repeatable)",
            )
        return sp

    sp = add("simulate", cmd_simulate, "simulate one cell <p, lam, seed> of the LIF network")
    sp.add_argument("--p", type=float, required=True, help="connection probability")
    sp.add_argument("--lam", type=float, required=True, help="fraction of excitatory cells")
    sp.add_argument("--seed", type=int, required=True, help="repetition index")
    sp.add_argument(
        "--threads",
        type=int,
        default=None,
        help="most Numba threads (default: the CPUs this process may use: its affinity mask, "
        "cgroup quota, SLURM_CPUS_PER_TASK); fewer while the cores are oversubscribed",
    )
    sp.add_argument("--out", required=True, help="network.nc to write")

    sp = add("masses", cmd_masses, "drive CFM and MFM with a network's recorded input")
    sp.add_argument("--network", required=True)
    sp.add_argument("--out", required=True, help="masses.nc to write")

    sp = add("compare", cmd_compare, "compare LIF, CFM and MFM of one cell")
    sp.add_argument("--network", required=True)
    sp.add_argument("--masses", required=True)
    sp.add_argument("--out", required=True, help="compare.nc to write")

    sp = add("gather", cmd_gather, "gather all cells into the cube")
    sp.add_argument("--results", required=True, help="results/{run}")
    sp.add_argument("--out", required=True, help="cube.nc to write")

    sp = add("figures", cmd_figures, "render the figures of a cube")
    sp.add_argument("--cube", required=True)
    sp.add_argument("--results", required=True, help="results/{run} (for diagnostic pages)")
    sp.add_argument("--outdir", required=True)

    sp = add("profile", cmd_profile, "install a Snakemake profile (profiles/NAME) for the user")
    sp.add_argument("action", choices=["install"])
    sp.add_argument("name", help="profile name, e.g. slurm")
    sp.add_argument("--force", action="store_true", help="overwrite a different existing profile")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nmmval`` console script."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (cfgmod.ConfigError, InputError, OutputError, ProfileError) as exc:
        print(f"nmmval: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. figures into a read-only folder: name the path
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"nmmval: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def run() -> None:
    """The console script: :func:`main`, then exit without the collector's final passes.

    When ``main`` returns, every file it wrote is closed. Freezing the garbage
    collector then makes interpreter exit skip its passes over the ~10⁵
    objects Numba keeps for the life of the process, 0.15 s of every
    process (benchmarks/README.md). Not in ``main``, which tests call in
    their own process.
    """
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
