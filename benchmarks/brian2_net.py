"""Brian2 side of the benchmark: the same network, cpp_standalone, compiled
once and run for several cells.

Run by ``bench.py`` inside ``benchmarks/.venv-brian2`` (Brian2 pins numpy), as
its own process: ``python benchmarks/brian2_net.py --cells 0.01:0.8 0.5:0.9
--threads 2 ...``. Prints one line ``BENCH_RESULT {json}`` per cell.

The model is MODEL.md §2 with the parameters of the config file (read with
pyyaml; nmmval is not imported here):

- conductance-based LIF, ``dv/dt = (-(v - v_rest) - (gE (v - vE) + gI (v - vI)
  + gX (v - vX))/g_L)/tau_m + sqrt(Q)/tau_m xi`` ``(unless refractory)``,
  Euler-Maruyama (``method="euler"``, the same scheme as nmmval); without
  membrane noise (Q = 0) the ``xi`` term is left out, without external drive
  (M, ν_ext or p_ext 0) the ``gX`` term and the Poisson trains;
- ``dg/dt = -g/tau`` per type; each arriving spike adds ``g_hat/tau`` (nS);
  (Euler also for g: ``g *= 1 - dt/tau`` where nmmval decays exactly by
  ``exp(-dt/tau)``; a relative difference of ~1e-4 per step in the decay);
- internal synapses: two Synapses objects from all cells to all cells, E
  sources -> gE, I sources -> gI, ``connect(condition="i != j",
  p="p_conn_pre * int(i < n_exc_pre)")`` (and ``i >= n_exc_pre`` for I): the
  first ``n_exc = round(lam N)`` cells are excitatory;
- external ``PoissonGroup(M, nu_ext)`` -> the excitatory cells,
  ``connect(condition="j < n_exc_post", p=p_ext)``;
- initial ``v`` uniform in ``[v_reset, v_th)``, or normal (``simulation.
  v_init_mean_mV``, ``v_init_sd_mV``), and ``gE``, ``gI`` normal
  (``simulation.g_init_*``) where the config sets them.

Compiled once, run once per cell: ``p_conn`` and ``n_exc`` are shared
variables of the NeuronGroup, set for each run through Brian2's ``run_args``
(``device.run(run_args={G.p_conn: p, G.n_exc: n_E})``), which the binary
applies before it creates the synapses (``device.apply_run_args()`` is
placed before ``connect``). Everything else (N, T, dt, the equations, the
weights, p_ext, the initial-state expressions, the seed) is in the compiled
code: a cell with another N or T, or another config, needs its own build.
The synapse creation with a p given as an expression samples with Brian2's
geometric skipping per source (``sample(N_post, p=...)``), as a literal p
does, except at p = 1, where a literal would take ``range`` without a draw
per pair.

Timings, shared by the cells: ``import_s``, ``codegen_s`` (Python side:
network set-up and code generation), ``compile_s`` (``make``, from Brian's
``device.timers``). Per cell: ``cell_s`` (wall time of ``device.run``: the
``main`` binary, i.e. synapse creation + simulation + writing results, plus
the run arguments), ``binary_s``, ``loop_s`` (``device._last_run_time``: the
simulation loop only, as the binary measures it), ``build_s = binary_s -
loop_s`` (mostly synapse creation). ``accounting_s``: reading the spike
counts and synapse indices back after the run, which ``bench.py`` leaves out
of the process's time. Peak RSS of a cell: the larger of this Python process
before the first results are read (VmHWM) and the cell's ``main`` binary
(``/usr/bin/time -f %M`` as Brian's run command); the compiler is not
counted.
"""

from __future__ import annotations

import time

T_PROCESS = time.perf_counter()

import argparse  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

from procstat import (  # noqa: E402
    add_network_options,
    emit,
    exit_frozen,
    parse_cells,
    vm_hwm_bytes,
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_network_options(ap)
    ap.add_argument("--cells", nargs="+", required=True, metavar="P:LAM", help="cells to run")
    ap.add_argument("--threads", type=int, default=1, help="openmp_threads of the build")
    ap.add_argument("--build-dir", required=True, help="deleted first: every build compiles anew")
    args = ap.parse_args(argv)
    cells = parse_cells(args.cells)

    import brian2 as b2
    import numpy as np
    import yaml

    import_s = time.perf_counter() - T_PROCESS

    with open(args.config) as fh:
        cfg = yaml.safe_load(fh)
    net, neu, sim = cfg["network"], cfg["neuron"], cfg["simulation"]
    N = args.N
    M = int(net["M"])
    dt_ms = float(sim["dt_ms"])
    drive = M > 0 and float(net["nu_ext_Hz"]) > 0 and float(net["p_ext"]) > 0
    Q_mV2ms = float(neu["noise_Q_V2ms"]) * 1e6

    build_dir = Path(args.build_dir).resolve()
    if build_dir.exists():
        shutil.rmtree(build_dir)  # a fresh build every run: compile time counts
    build_dir.parent.mkdir(parents=True, exist_ok=True)

    t_setup = time.perf_counter()
    b2.set_device("cpp_standalone", build_on_run=False, directory=str(build_dir))
    b2.prefs.devices.cpp_standalone.openmp_threads = args.threads
    b2.defaultclock.dt = dt_ms * b2.ms
    b2.seed(args.seed)

    ms, mV, nS, Hz = b2.ms, b2.mV, b2.nS, b2.Hz
    tau_m = float(neu["C_pF"]) / float(neu["g_L_nS"]) * ms
    ns = {
        "tau_m": tau_m,
        "g_L": float(neu["g_L_nS"]) * nS,
        "v_rest": float(neu["v_rest_mV"]) * mV,
        "v_th": float(neu["v_th_mV"]) * mV,
        "v_reset": float(neu["v_reset_mV"]) * mV,
        "vE": float(net["v_E_mV"]) * mV,
        "vI": float(net["v_I_mV"]) * mV,
        "vX": float(net["v_ext_mV"]) * mV,
        "tau_E": float(net["tau_E_ms"]) * ms,
        "tau_I": float(net["tau_I_ms"]) * ms,
        "tau_X": float(net["tau_ext_ms"]) * ms,
        "sigma": np.sqrt(Q_mV2ms) * mV * ms**0.5 / tau_m,
        "w_E": float(net["g_hat_E_nSms"]) / float(net["tau_E_ms"]) * nS,
        "w_I": float(net["g_hat_I_nSms"]) / float(net["tau_I_ms"]) * nS,
        "w_X": float(net["g_hat_ext_nSms"]) / float(net["tau_ext_ms"]) * nS,
        "v_init_mean": float(sim.get("v_init_mean_mV") or 0.0) * mV,
        "v_init_sd": float(sim.get("v_init_sd_mV", 0.0)) * mV,
    }
    eqs = f"""
    dv/dt = (-(v - v_rest) - (gE*(v - vE) + gI*(v - vI){" + gX*(v - vX)" * drive})/g_L)/tau_m
            {"+ sigma*xi" * (Q_mV2ms > 0)} : volt (unless refractory)
    dgE/dt = -gE/tau_E : siemens
    dgI/dt = -gI/tau_I : siemens
    {"dgX/dt = -gX/tau_X : siemens" * drive}
    p_conn : 1 (constant, shared)
    n_exc : integer (constant, shared)
    """
    G = b2.NeuronGroup(
        N,
        eqs,
        threshold="v >= v_th",
        reset="v = v_reset",
        refractory=float(neu["tau_ref_ms"]) * ms,
        method="euler",
        namespace=ns,
    )
    if sim.get("v_init_mean_mV") is None:
        G.v = "v_reset + rand()*(v_th - v_reset)"
    else:
        G.v = "v_init_mean + v_init_sd*randn()"
    for g in ("E", "I"):
        mean, sd = (float(sim.get(f"g_init_{g}_{k}_nS", 0.0)) for k in ("mean", "sd"))
        if mean or sd:
            setattr(G, f"g{g}", f"({mean!r} + {sd!r}*randn())*nS")
    p0, lam0 = cells[0]
    G.p_conn = p0
    G.n_exc = int(round(lam0 * N))
    b2.device.apply_run_args()  # the run arguments are set here, before the synapses
    S_E = b2.Synapses(G, G, on_pre="gE_post += w_E", namespace=ns)
    S_E.connect(condition="i != j", p="p_conn_pre * int(i < n_exc_pre)")
    S_I = b2.Synapses(G, G, on_pre="gI_post += w_I", namespace=ns)
    S_I.connect(condition="i != j", p="p_conn_pre * int(i >= n_exc_pre)")
    mon = b2.SpikeMonitor(G, record=False)  # per-neuron counts only
    if drive:
        P = b2.PoissonGroup(M, float(net["nu_ext_Hz"]) * Hz)
        S_X = b2.Synapses(P, G, on_pre="gX_post += w_X", namespace=ns)
        S_X.connect(condition="j < n_exc_post", p=float(net["p_ext"]))
        mon_X = b2.SpikeMonitor(P, record=False)
    b2.run(args.T_ms * ms)
    t_build = time.perf_counter()
    b2.device.build(directory=str(build_dir), compile=True, run=False, with_output=False)
    build_call_s = time.perf_counter() - t_build
    setup_s = t_build - t_setup
    rss_python = vm_hwm_bytes()  # before the (large) synapse arrays are read back
    timers = b2.device.timers
    compile_s = (timers["compile"]["make"] or 0.0) + (timers["compile"]["clean"] or 0.0)
    codegen_s = setup_s + build_call_s - compile_s
    T_s = args.T_ms * 1e-3

    for k, (p, lam) in enumerate(cells):
        n_E = int(round(lam * N))
        rss_file = build_dir / f"main_maxrss_{k}"
        b2.prefs.devices.cpp_standalone.run_cmd_unix = [
            "/usr/bin/time",
            "-f",
            "%M",
            "-o",
            str(rss_file),
            "./main",
        ]
        t0 = time.perf_counter()
        b2.device.run(run_args={G.p_conn: p, G.n_exc: n_E}, with_output=False)
        cell_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        binary_s = float(b2.device.timers["run_binary"])
        loop_s = float(b2.device._last_run_time)
        rss_main = int(rss_file.read_text().split()[-1]) * 1024
        count = np.asarray(mon.count[:], dtype=np.int64)
        deg_E = np.bincount(np.asarray(S_E.i[:]), minlength=N)
        deg_I = np.bincount(np.asarray(S_I.i[:]), minlength=N)
        external = n_ext_edges = 0.0
        if drive:
            deg_X = np.bincount(np.asarray(S_X.i[:]), minlength=M)
            external = float(np.asarray(mon_X.count[:], dtype=np.int64) @ deg_X)
            n_ext_edges = int(deg_X.sum())
        result = {
            "side": "brian2",
            "brian2_version": b2.__version__,
            "p": p,
            "lam": lam,
            "N": N,
            "n_E": n_E,
            "T_s": T_s,
            "n_steps": int(round(args.T_ms / dt_ms)),
            "threads": args.threads,
            "cells_sharing_build": len(cells),
            "n_edges": int(deg_E.sum() + deg_I.sum()),
            "n_ext_edges": n_ext_edges,
            "import_s": import_s,
            "codegen_s": codegen_s,
            "compile_s": compile_s,
            "cell_s": cell_s,
            "binary_s": binary_s,
            "loop_s": loop_s,
            "build_s": binary_s - loop_s,
            "rate_E_Hz": float(count[:n_E].sum()) / (n_E * T_s) if n_E else 0.0,
            "rate_I_Hz": float(count[n_E:].sum()) / ((N - n_E) * T_s) if N > n_E else 0.0,
            "delivered_internal": float(count @ deg_E + count @ deg_I),
            "delivered_external": external,
            "peak_rss_bytes": max(rss_python, rss_main),
            "peak_rss_main_bytes": rss_main,
            "peak_rss_python_bytes": rss_python,
        }
        result["accounting_s"] = time.perf_counter() - t0
        emit(result)
    return 0


if __name__ == "__main__":
    exit_frozen(main)
