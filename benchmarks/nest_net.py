"""NEST 3 side of the benchmark: the same network with ``iaf_cond_exp``, one cell.

Run by ``bench.py`` inside ``benchmarks/.venv-nest`` (``pip install
nest-simulator``), as its own process: ``python benchmarks/nest_net.py --p 0.01
--lam 0.8 --threads 2 ...``. Prints one line ``BENCH_RESULT {json}``.

The model is MODEL.md §2 with the parameters of the config file (read with
pyyaml; nmmval is not imported here):

- ``iaf_cond_exp``: ``C_m`` = ``neuron.C_pF``, ``g_L`` = ``g_L_nS``, ``E_L`` =
  ``v_rest_mV``, ``V_th``, ``V_reset``, ``t_ref`` = ``tau_ref_ms``, ``E_ex`` =
  ``network.v_E_mV``, ``E_in`` = ``v_I_mV``, ``tau_syn_ex`` = ``tau_E_ms``,
  ``tau_syn_in`` = ``tau_I_ms``, ``I_e`` = 0. A spike at V_m ≥ V_th, V_m
  clamped to V_reset for t_ref. NEST integrates the membrane with GSL's
  adaptive Runge-Kutta-Fehlberg 4(5), not Euler-Maruyama.
- Synapses: ``static_synapse_hom_w`` copies, one weight each. A spike adds
  its weight (nS) to ``g_ex`` if the weight is positive and its magnitude to
  ``g_in`` if negative: E sources carry +ĝ_E/τ_E, I sources −ĝ_I/τ_I.
  The external trains share the excitatory conductance (g_ex, ``E_ex``,
  ``tau_syn_ex``), which is nmmval's model only if τ_ext = τ_E and
  v_ext = v_E; the script stops otherwise.
- Delay 0.1 ms, NEST's smallest (one step of ``resolution`` = dt): NEST adds
  an arrival to g at the end of the step after the spike, so a spike is
  felt one step later than in nmmval and Brian2 (from the step after next).
- Internal graph: E cells -> all and I cells -> all, ``pairwise_bernoulli``
  with p and ``allow_autapses=False`` (``all_to_all`` without autapses at
  p = 1, the same graph without a draw per pair).
- External drive: one ``poisson_generator`` at ν_ext -> M ``parrot_neuron``s
  (one independent train each; the trains are shared, each reaching several
  cells) -> E cells, ``pairwise_bernoulli`` with p_ext, weight ĝ_ext/τ_ext.
- Membrane noise: one ``noise_generator`` -> every cell (NEST draws an
  independent current for each target), mean 0, ``dt`` = the resolution, so
  the current is constant over each step and fresh in the next. Over a step
  of length dt a current I moves v by I·dt/C (to first order in dt/τ_m); nmmval's
  Euler-Maruyama noise moves it by sqrt(Q·dt)/τ_m·ξ. Equal variance per step:
  ``std_pA = C_pF·sqrt(Q_mV2ms·dt_ms)/(tau_m_ms·dt_ms)`` (pF·mV/ms = pA); for
  config/paper.yaml (C = 200 pF, Q = 318 mV²·ms, τ_m = 20 ms, dt = 0.1 ms)
  563.9 pA. Left out when Q = 0.
- Initial state: V_m uniform in [v_reset, v_th), or normal
  (``simulation.v_init_mean_mV``, ``v_init_sd_mV``); ``g_ex``, ``g_in``
  normal (``simulation.g_init_*``) where the config sets them.

Timings: ``import_s`` (``import nest``), ``build_s`` (kernel set-up, Create,
Connect, ``nest.Prepare()``), ``loop_s`` (``nest.Run(T)``). Delivered spikes:
each population's spike count times its sources' mean out-degree (the
synapse models' ``num_connections`` over the number of sources: reading the
10⁸ connections of p = 1 back would cost more than the run); rates from a
``spike_recorder`` of every cell, the external spikes from one of the
parrots. ``accounting_s``: reading these back after the run, which
``bench.py`` leaves out of the process's time. Peak RSS: VmHWM of this
process before the accounting.
"""

from __future__ import annotations

import time

T_PROCESS = time.perf_counter()

import argparse  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402

from procstat import add_network_options, emit, exit_frozen, vm_hwm_bytes  # noqa: E402


def noise_std_pA(C_pF: float, Q_mV2ms: float, tau_m_ms: float, dt_ms: float) -> float:
    """Standard deviation (pA) of a current held over each step of ``dt_ms`` that moves
    v with the variance per step of nmmval's membrane noise, (sqrt(Q·dt)/τ_m)² mV²."""
    return C_pF * math.sqrt(Q_mV2ms * dt_ms) / (tau_m_ms * dt_ms)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_network_options(ap)
    ap.add_argument("--p", type=float, required=True)
    ap.add_argument("--lam", type=float, default=0.8)
    ap.add_argument("--threads", type=int, default=1, help="local_num_threads")
    args = ap.parse_args(argv)

    os.environ.setdefault("PYNEST_QUIET", "1")  # no banner
    import nest
    import yaml

    import_s = time.perf_counter() - T_PROCESS

    with open(args.config) as fh:
        cfg = yaml.safe_load(fh)
    net, neu, sim = cfg["network"], cfg["neuron"], cfg["simulation"]
    N, M = args.N, int(net["M"])
    n_E = int(round(args.lam * N))
    dt_ms = float(sim["dt_ms"])
    drive = M > 0 and float(net["nu_ext_Hz"]) > 0 and float(net["p_ext"]) > 0
    if drive and (net["tau_ext_ms"] != net["tau_E_ms"] or net["v_ext_mV"] != net["v_E_mV"]):
        raise SystemExit(
            "nest_net.py: iaf_cond_exp has one excitatory conductance; the external drive "
            "needs tau_ext_ms = tau_E_ms and v_ext_mV = v_E_mV"
        )
    C_pF, g_L_nS = float(neu["C_pF"]), float(neu["g_L_nS"])
    Q_mV2ms = float(neu["noise_Q_V2ms"]) * 1e6

    t0 = time.perf_counter()
    nest.verbosity = nest.VerbosityLevel.ERROR
    nest.ResetKernel()
    nest.set(
        resolution=dt_ms,
        local_num_threads=args.threads,
        rng_seed=args.seed + 1,
        print_time=False,
    )
    cells = nest.Create(
        "iaf_cond_exp",
        N,
        params={
            "C_m": C_pF,
            "g_L": g_L_nS,
            "E_L": float(neu["v_rest_mV"]),
            "V_th": float(neu["v_th_mV"]),
            "V_reset": float(neu["v_reset_mV"]),
            "t_ref": float(neu["tau_ref_ms"]),
            "E_ex": float(net["v_E_mV"]),
            "E_in": float(net["v_I_mV"]),
            "tau_syn_ex": float(net["tau_E_ms"]),
            "tau_syn_in": float(net["tau_I_ms"]),
            "I_e": 0.0,
        },
    )
    if sim.get("v_init_mean_mV") is None:
        cells.V_m = nest.random.uniform(float(neu["v_reset_mV"]), float(neu["v_th_mV"]))
    else:
        cells.V_m = nest.random.normal(float(sim["v_init_mean_mV"]), float(sim["v_init_sd_mV"]))
    for g, name in (("E", "g_ex"), ("I", "g_in")):
        mean, sd = (float(sim.get(f"g_init_{g}_{k}_nS", 0.0)) for k in ("mean", "sd"))
        if mean or sd:
            cells.set({name: nest.random.normal(mean, sd)})
    weights = {
        "syn_E": float(net["g_hat_E_nSms"]) / float(net["tau_E_ms"]),
        "syn_I": -float(net["g_hat_I_nSms"]) / float(net["tau_I_ms"]),
        "syn_X": float(net["g_hat_ext_nSms"]) / float(net["tau_ext_ms"]),
    }
    for name, w in weights.items():
        nest.CopyModel("static_synapse_hom_w", name, {"weight": w, "delay": dt_ms})
    if args.p >= 1.0:
        rule = {"rule": "all_to_all", "allow_autapses": False}
    else:
        rule = {"rule": "pairwise_bernoulli", "p": args.p, "allow_autapses": False}
    if args.p > 0:
        if n_E:
            nest.Connect(cells[:n_E], cells, rule, {"synapse_model": "syn_E"})
        if N > n_E:
            nest.Connect(cells[n_E:], cells, rule, {"synapse_model": "syn_I"})
    rec = nest.Create("spike_recorder")
    nest.Connect(cells, rec)
    if drive:
        gen = nest.Create("poisson_generator", params={"rate": float(net["nu_ext_Hz"])})
        parrots = nest.Create("parrot_neuron", M)
        nest.Connect(gen, parrots, syn_spec={"delay": dt_ms})
        ext = {"rule": "pairwise_bernoulli", "p": float(net["p_ext"])}
        nest.Connect(parrots, cells[:n_E], ext, {"synapse_model": "syn_X"})
        rec_X = nest.Create("spike_recorder")
        nest.Connect(parrots, rec_X)
    std_pA = noise_std_pA(C_pF, Q_mV2ms, C_pF / g_L_nS, dt_ms)
    if Q_mV2ms > 0:
        noise = nest.Create("noise_generator", params={"mean": 0.0, "std": std_pA, "dt": dt_ms})
        nest.Connect(noise, cells)
    nest.Prepare()
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    nest.Run(args.T_ms)
    loop_s = time.perf_counter() - t0
    nest.Cleanup()
    rss = vm_hwm_bytes()

    t0 = time.perf_counter()
    first = cells[0].global_id
    senders = rec.get("events")["senders"]
    n_spk_E = int((senders < first + n_E).sum())
    n_spk_I = int(senders.size) - n_spk_E
    n_conn = {name: nest.GetDefaults(name)["num_connections"] for name in weights}
    internal = (n_spk_E * n_conn["syn_E"] / n_E if n_E else 0.0) + (
        n_spk_I * n_conn["syn_I"] / (N - n_E) if N > n_E else 0.0
    )
    external = rec_X.get("n_events") * n_conn["syn_X"] / M if drive else 0.0
    T_s = args.T_ms * 1e-3
    result = {
        "side": "nest",
        "nest_version": nest.__version__,
        "p": args.p,
        "lam": args.lam,
        "N": N,
        "n_E": n_E,
        "T_s": T_s,
        "n_steps": int(round(args.T_ms / dt_ms)),
        "threads": args.threads,
        "n_edges": n_conn["syn_E"] + n_conn["syn_I"],
        "n_ext_edges": n_conn["syn_X"],
        "noise_std_pA": std_pA if Q_mV2ms > 0 else 0.0,
        "import_s": import_s,
        "build_s": build_s,
        "loop_s": loop_s,
        "rate_E_Hz": n_spk_E / (n_E * T_s) if n_E else 0.0,
        "rate_I_Hz": n_spk_I / ((N - n_E) * T_s) if N > n_E else 0.0,
        "delivered_internal": float(internal),
        "delivered_external": float(external),
        "peak_rss_bytes": rss,
    }
    result["accounting_s"] = time.perf_counter() - t0
    emit(result)
    return 0


if __name__ == "__main__":
    exit_frozen(main)
