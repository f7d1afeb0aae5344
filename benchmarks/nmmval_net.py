"""nmmval side of the benchmark: one network run, as its own process.

Run by ``bench.py`` (``python benchmarks/nmmval_net.py --p 0.01 ...``); prints
one line ``BENCH_RESULT {json}`` with the timings of every phase, the rates,
the delivered spikes, the peak RSS of this process, and the noise floor: the
time the same process needs just to draw the N·steps Gaussian numbers the
membrane noise requires, with nmmval's generator, in the kernel's chunks of
``nmmval.sim.lif.CHUNK_NEURONS`` neurons (one xoshiro256** stream per chunk), on
the same threads.

The floor is measured after the simulation; its time (JIT/cache load
included) is reported as ``floor_section_s`` so that ``bench.py`` can
subtract it from the whole-process wall time.
"""

from __future__ import annotations

import time

T_PROCESS = time.perf_counter()  # as early as possible: import time is measured from here

import argparse  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import prange  # noqa: E402
from procstat import add_network_options, emit, exit_frozen, vm_hwm_bytes  # noqa: E402

from nmmval import config as nconfig  # noqa: E402

try:  # the revisions mode runs this file against earlier commits' packages
    from nmmval.sim import lif
    from nmmval.sim.rng import fill_standard_normal, seed_chunk_lanes
except ImportError:  # before the modules were grouped (sim/, analysis/, ...)
    from nmmval import lif
    from nmmval.rng import fill_standard_normal, seed_chunk_lanes

IMPORT_S = time.perf_counter() - T_PROCESS


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_network_options(ap)
    ap.add_argument("--p", type=float, required=True)
    ap.add_argument("--lam", type=float, default=0.8)
    ap.add_argument("--threads", type=int, default=2, help="Numba threads; 0: nmmval's own default")
    ap.add_argument("--no-floor", action="store_true", help="skip the noise-floor measurement")
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override"
    )
    args = ap.parse_args(argv)

    overrides = [
        f"network.N={args.N}",
        f"simulation.T_ms={args.T_ms}",
        # T0 only sets the window of Recording.rate_*; rates here are over the whole run
        f"simulation.T0_ms={min(100.0, args.T_ms / 2)}",
        *args.set,
    ]
    params = nconfig.load(args.config, overrides)

    # JIT-cache load of the kernels (graph sampler and nmmval.sim.kernel.run_block), separated from
    # build and loop by a tiny run of the same code with the same argument types.
    t0 = time.perf_counter()
    tiny = nconfig.load(
        args.config, ["network.N=300", "simulation.T_ms=5.0", "simulation.T0_ms=1.0", *args.set]
    )
    threads = args.threads or None
    lif.simulate(tiny, 0.1, args.lam, args.seed, threads=threads)
    lif.simulate(tiny, 0.9, args.lam, args.seed, threads=threads)  # complement path
    jit_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    rec = lif.simulate(params, args.p, args.lam, args.seed, threads=threads)
    simulate_s = time.perf_counter() - t0
    rss = vm_hwm_bytes()

    N = params.network.N
    n_steps = params.simulation.n_steps
    T_s = n_steps * params.simulation.dt_ms * 1e-3
    n_E = rec.n_E
    # steps run per thread count (commits before the thread governor: all on one count)
    steps_by_threads = getattr(rec, "steps_by_threads", {numba.get_num_threads(): n_steps})
    n_spk_E = int(np.count_nonzero(rec.spike_neuron < n_E))
    n_spk_I = int(rec.spike_neuron.size) - n_spk_E
    internal = float(N * (rec.phi_E.sum() + rec.phi_I.sum()))
    external = float(N * rec.phi_ext.sum())
    result = {
        "side": "nmmval",
        "p": args.p,
        "N": N,
        "n_E": n_E,
        "T_s": T_s,
        "n_steps": n_steps,
        # the threads asked for, or the most it ran on (simulate restores the caller's count)
        "threads": args.threads or max(steps_by_threads),
        "steps_by_threads": steps_by_threads,
        "n_edges": int(rec.n_edges),
        "n_ext_edges": int(rec.n_ext_edges),
        "import_s": IMPORT_S,
        "jit_s": jit_s,
        "build_s": rec.build_s,
        "loop_s": rec.loop_s,
        "simulate_s": simulate_s,
        "rate_E_Hz": n_spk_E / (n_E * T_s) if n_E else 0.0,
        "rate_I_Hz": n_spk_I / ((N - n_E) * T_s) if N > n_E else 0.0,
        "delivered_internal": internal,
        "delivered_external": external,
        "arrivals_per_neuron_step": (internal + external) / (N * n_steps),
        "peak_rss_bytes": rss,
    }

    if not args.no_floor:
        t0 = time.perf_counter()
        # on the threads of the simulation (simulate restored the process's count)
        numba.set_num_threads(result["threads"])
        floor = noise_floor(N, n_steps, args.seed)
        result["floor_s"] = floor
        result["floor_section_s"] = time.perf_counter() - t0
    emit(result)
    return 0


def noise_floor(N: int, n_steps: int, seed: int, repeat: int = 3) -> float:
    """Seconds to draw N·n_steps standard normals as the kernel does (JIT excluded).

    Same chunk layout (``CHUNK_NEURONS`` neurons, ``LANES`` xoshiro256**
    streams per chunk), same generator (:func:`nmmval.sim.rng.fill_standard_normal`,
    a normal per neuron and step), same Numba threads, each a fixed run of
    chunks as the kernel's parts. The shortest of ``repeat`` timed draws:
    other load only ever lengthens one, and a floor measured too high would
    flatter the loop's ratio to it.
    """
    states = seed_chunk_lanes(np.random.SeedSequence(seed), lif.chunk_count(N))
    n_parts = numba.get_num_threads()
    _floor_kernel(states.copy(), N, 1, n_parts)  # compile / load from cache
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        total = _floor_kernel(states.copy(), N, n_steps, n_parts)
        best = min(best, time.perf_counter() - t0)
        if not np.isfinite(total):
            raise RuntimeError("noise floor: non-finite sum")
    return best


@numba.njit(parallel=True, cache=True)
def _floor_kernel(state, N, n_steps, n_parts):
    """The kernel's draws alone: per part, step by step, each chunk's normals
    (:func:`nmmval.sim.rng.fill_standard_normal`) into its buffer; returns a
    sum of some of them, so that the draws are not optimised away."""
    chunk = lif.CHUNK_NEURONS
    n_chunks = state.shape[0]
    xbuf = np.zeros((n_chunks, chunk))
    sums = np.zeros(n_parts)
    for t in prange(n_parts):
        raw = np.empty(chunk, dtype=np.uint64)
        acc = 0.0
        for b in range(n_steps):
            for c in range(t * n_chunks // n_parts, (t + 1) * n_chunks // n_parts):
                m = min(chunk, N - c * chunk)
                xb = xbuf[c]
                fill_standard_normal(state, c, m, raw, xb)
                acc += xb[b % m]
        sums[t] = acc
    return sums.sum()


if __name__ == "__main__":
    exit_frozen(main)
