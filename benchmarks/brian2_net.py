"""Brian2 side of the benchmark: the same network, cpp_standalone, one thread.

Run by ``bench.py`` inside ``benchmarks/.venv-brian2`` (Brian2 pins numpy), as
its own process: ``python benchmarks/brian2_net.py --p 0.01 ...``. Prints one
line ``BENCH_RESULT {json}``.

The model is MODEL.md §2 with the parameters of the config file (read with
pyyaml; nmmval is not imported here):

- conductance-based LIF, ``dv/dt = (-(v - v_rest) - (gE (v - vE) + gI (v - vI)
  + gX (v - vX))/g_L)/tau_m + sqrt(Q)/tau_m xi`` ``(unless refractory)``,
  Euler-Maruyama (``method="euler"``, the same scheme as nmmval);
- ``dg/dt = -g/tau`` per type; each arriving spike adds ``g_hat/tau`` (nS);
  (Euler also for g: ``g *= 1 - dt/tau`` where nmmval decays exactly by
  ``exp(-dt/tau)``; a relative difference of ~1e-4 per step in the decay);
- internal synapses ``connect(condition="i != j", p=p)``, E cells first
  (``round(lam N)``), two Synapses objects (E sources -> gE, I sources -> gI);
- external ``PoissonGroup(M, nu_ext)`` -> E cells only, ``connect(p=p_ext)``;
- ``v`` initially uniform in ``[v_reset, v_th)``.

Timings: ``codegen_s`` (Python side: network set-up and code generation),
``compile_s`` (``make``, from Brian's ``device.timers``), ``binary_s`` (the
``main`` binary: synapse creation + simulation + writing results), ``loop_s``
(``device._last_run_time``: the simulation loop only, as the binary measures
it), ``build_s = binary_s - loop_s`` (mostly synapse creation). Peak RSS: the
larger of this Python process (VmHWM, read before the results are loaded) and
the ``main`` binary (``/usr/bin/time -f %M`` as Brian's run command); the
compiler is not counted.
"""

from __future__ import annotations

import time

T_PROCESS = time.perf_counter()

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from procstat import vm_hwm_bytes  # noqa: E402

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(HERE.parent / "config" / "paper.yaml"))
    ap.add_argument("--p", type=float, required=True)
    ap.add_argument("--lam", type=float, default=0.8)
    ap.add_argument("--N", type=int, default=10_000)
    ap.add_argument("--T-ms", type=float, default=1000.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--build-dir", default=None, help="default: benchmarks/out/brian2_p<p>")
    args = ap.parse_args(argv)

    import brian2 as b2
    import numpy as np
    import yaml

    import_s = time.perf_counter() - T_PROCESS

    with open(args.config) as fh:
        cfg = yaml.safe_load(fh)
    net, neu, sim = cfg["network"], cfg["neuron"], cfg["simulation"]
    N = args.N
    n_E = int(round(args.lam * N))
    M = int(net["M"])
    dt_ms = float(sim["dt_ms"])

    build_dir = Path(args.build_dir or HERE / "out" / f"brian2_N{N}_p{args.p:g}")
    if build_dir.exists():
        shutil.rmtree(build_dir)  # a fresh build every run: compile time counts
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    rss_file = build_dir.parent / (build_dir.name + ".main_maxrss")
    rss_file.unlink(missing_ok=True)

    t_setup = time.perf_counter()
    b2.set_device("cpp_standalone", build_on_run=False, directory=str(build_dir))
    b2.prefs.devices.cpp_standalone.openmp_threads = 0
    b2.prefs.devices.cpp_standalone.run_cmd_unix = [
        "/usr/bin/time",
        "-f",
        "%M",
        "-o",
        str(rss_file),
        "./main",
    ]
    b2.defaultclock.dt = dt_ms * b2.ms
    b2.seed(args.seed)

    ms, mV, nS, Hz = b2.ms, b2.mV, b2.nS, b2.Hz
    tau_m = float(neu["C_pF"]) / float(neu["g_L_nS"]) * ms
    Q = float(neu["noise_Q_V2ms"]) * 1e6 * mV**2 * ms
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
        "sigma": np.sqrt(Q) / tau_m,
        "w_E": float(net["g_hat_E_nSms"]) / float(net["tau_E_ms"]) * nS,
        "w_I": float(net["g_hat_I_nSms"]) / float(net["tau_I_ms"]) * nS,
        "w_X": float(net["g_hat_ext_nSms"]) / float(net["tau_ext_ms"]) * nS,
        "n_E": n_E,
    }
    eqs = """
    dv/dt = (-(v - v_rest) - (gE*(v - vE) + gI*(v - vI) + gX*(v - vX))/g_L)/tau_m
            + sigma*xi : volt (unless refractory)
    dgE/dt = -gE/tau_E : siemens
    dgI/dt = -gI/tau_I : siemens
    dgX/dt = -gX/tau_X : siemens
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
    G.v = "v_reset + rand()*(v_th - v_reset)"
    S_E = b2.Synapses(G[:n_E], G, on_pre="gE_post += w_E", namespace=ns)
    S_E.connect(condition="i != j", p=args.p)
    S_I = b2.Synapses(G[n_E:], G, on_pre="gI_post += w_I", namespace=ns)
    S_I.connect(condition="i + n_E != j", p=args.p)  # i counts from the first I cell
    P = b2.PoissonGroup(M, float(net["nu_ext_Hz"]) * Hz)
    S_X = b2.Synapses(P, G[:n_E], on_pre="gX_post += w_X", namespace=ns)
    S_X.connect(p=float(net["p_ext"]))
    mon = b2.SpikeMonitor(G, record=False)  # per-neuron counts only
    mon_X = b2.SpikeMonitor(P, record=False)
    b2.run(args.T_ms * ms)
    t_build = time.perf_counter()
    b2.device.build(directory=str(build_dir), compile=True, run=True, with_output=False)
    build_call_s = time.perf_counter() - t_build
    setup_s = t_build - t_setup
    rss_python = vm_hwm_bytes()  # before the (large) synapse arrays are read back

    timers = b2.device.timers
    compile_s = (timers["compile"]["make"] or 0.0) + (timers["compile"]["clean"] or 0.0)
    binary_s = float(timers["run_binary"])
    loop_s = float(b2.device._last_run_time)
    rss_main = int(rss_file.read_text().split()[-1]) * 1024
    codegen_s = setup_s + build_call_s - compile_s - binary_s

    count = np.asarray(mon.count[:], dtype=np.int64)
    count_X = np.asarray(mon_X.count[:], dtype=np.int64)
    deg_E = np.bincount(np.asarray(S_E.i[:]), minlength=n_E)
    deg_I = np.bincount(np.asarray(S_I.i[:]), minlength=N - n_E)
    deg_X = np.bincount(np.asarray(S_X.i[:]), minlength=M)
    T_s = args.T_ms * 1e-3
    result = {
        "side": "brian2",
        "brian2_version": b2.__version__,
        "p": args.p,
        "N": N,
        "n_E": n_E,
        "T_s": T_s,
        "n_steps": int(round(args.T_ms / dt_ms)),
        "n_edges": int(deg_E.sum() + deg_I.sum()),
        "n_ext_edges": int(deg_X.sum()),
        "import_s": import_s,
        "codegen_s": codegen_s,
        "compile_s": compile_s,
        "binary_s": binary_s,
        "loop_s": loop_s,
        "build_s": binary_s - loop_s,
        "rate_E_Hz": float(count[:n_E].sum()) / (n_E * T_s) if n_E else 0.0,
        "rate_I_Hz": float(count[n_E:].sum()) / ((N - n_E) * T_s) if N > n_E else 0.0,
        "delivered_internal": float(count[:n_E] @ deg_E + count[n_E:] @ deg_I),
        "delivered_external": float(count_X @ deg_X),
        "peak_rss_bytes": max(rss_python, rss_main),
        "peak_rss_main_bytes": rss_main,
        "peak_rss_python_bytes": rss_python,
    }
    print("BENCH_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    # As nmmval's console script does (nmmval.cli.run), and on both sides
    # alike: exit without the garbage collector's passes over the objects
    # the libraries keep for the life of the process (benchmarks/README.md).
    gc.freeze()
    sys.exit(code)
