# Shared by the other .smk files - config validation, the grid, the one path
# pattern, resource estimates and the resolved config handed to the CLI.

import os
import sys
from pathlib import Path

import yaml
from snakemake.io import report as register_in_report
from snakemake.utils import validate

from nmmval import config as nmmval_config
from nmmval.figures import DIAGNOSTIC as DIAGNOSTIC_REPORT
from nmmval.figures import FIGURES as FIGURE_REGISTRY
from nmmval.figures import diagnostic_name
from nmmval.store import CELL_PATTERN, format_p, format_seed


# ---------------------------------------------------------------- validation
# The schema is the one nmmval.config uses. Both checks run at parse time,
# so a bad value stops the workflow before any job, with one line naming the
# key (nmmval.config's message; snakemake's own is a multi-line dump).
def _fail(message):
    sys.stderr.write(f"nmmval config error: {message}\n")
    raise SystemExit(1)


def _retype(node):
    """Numbers and booleans inside mappings given with --config.

    Snakemake reads `--config cell='{p: 0.5, lam: 0.8, seed: 1}'` with YAML's
    base loader, so nested values arrive as strings; read them as YAML again.
    """
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in list(items):
        if isinstance(value, (dict, list)):
            _retype(value)
        elif isinstance(value, str):
            try:
                typed = yaml.safe_load(value)
            except yaml.YAMLError:
                continue
            if isinstance(typed, (bool, int, float)):
                node[key] = typed


for _section in config.values():
    if isinstance(_section, (dict, list)):
        _retype(_section)

try:
    validate(config, "../schemas/config.schema.yaml", set_default=True)
except Exception as exc:
    try:
        nmmval_config.validate(config)
    except nmmval_config.ConfigError as err:
        _fail(str(err))
    _fail(str(exc).strip().splitlines()[0])
try:
    CFG = nmmval_config.validate(config)
except nmmval_config.ConfigError as err:
    _fail(str(err))


# ---------------------------------------------------------------- grid, paths
RUN = CFG["run"]
RESULTS = f"results/{RUN}"
CELL = f"{RESULTS}/cells/{CELL_PATTERN}"
# fit.nc of a cell <p, lam>: the fitted models' parameters, pooled over its seeds
FIT_PATTERN = "p~{p}/lam~{lam}"
FIT = f"{RESULTS}/cells/{FIT_PATTERN}/fit.nc"
LOGS = f"{RESULTS}/logs"
BENCH = f"{RESULTS}/benchmarks"
RESOLVED_CONFIG = f"{RESULTS}/config.resolved.yaml"
FIGDIR = f"{RESULTS}/figures"

GRID = [
    dict(p=format_p(p), lam=format_p(lam), seed=format_seed(s))
    for p in CFG["grid"]["p"]
    for lam in CFG["grid"]["lam"]
    for s in CFG["grid"]["seeds"]
]
FIRST_SEED = format_seed(CFG["grid"]["seeds"][0])
SEEDS = [format_seed(s) for s in CFG["grid"]["seeds"]]
DIAGNOSTIC = [
    dict(p=format_p(c["p"]), lam=format_p(c["lam"]))
    for c in CFG["figures"]["diagnostic_cells"]
]
# the figures of the cube, registered in nmmval.figures, and one page per diagnostic cell
FIGURES = [f.name for f in FIGURE_REGISTRY]
DIAGNOSTIC_FIGURES = [
    diagnostic_name(c["p"], c["lam"]) for c in CFG["figures"]["diagnostic_cells"]
]


wildcard_constraints:
    p=r"\d\.\d{3}",
    lam=r"\d\.\d{3}",
    seed=r"\d{4}",


def cell_files(name):
    """The file `name` of every cell of the grid."""
    return [f"{CELL.format(**c)}/{name}" for c in GRID]


def fit_files():
    """fit.nc of every cell <p, lam> of the grid."""
    return [
        FIT.format(p=format_p(p), lam=format_p(lam))
        for p in CFG["grid"]["p"]
        for lam in CFG["grid"]["lam"]
    ]


def diagnostic_files(name):
    """The file `name` of the first seed of every diagnostic cell."""
    return [f"{CELL.format(seed=FIRST_SEED, **c)}/{name}" for c in DIAGNOSTIC]


def figure_files(ext):
    return [f"{FIGDIR}/{f}.{ext}" for f in FIGURES + DIAGNOSTIC_FIGURES]


def requested_cell(wildcards):
    """compare.nc of the cell given by --config cell='{p: 0.5, lam: 0.8, seed: 1}'."""
    if "cell" not in CFG:
        raise ValueError(
            "the cell target needs --config cell='{p: 0.5, lam: 0.8, seed: 1}'"
        )
    c = CFG["cell"]
    cell = CELL.format(
        p=format_p(c["p"]), lam=format_p(c["lam"]), seed=format_seed(c["seed"])
    )
    return f"{cell}/compare.nc"


# ------------------------------------------------------------ rerun triggers
# Jobs read the whole resolved config, but only the keys a stage uses are
# given as params, so Snakemake's params trigger reruns a stage exactly when
# its science changes (e.g. adding a diagnostic cell reruns only figures).
# The param is also what the report shows under "Job parameters".
def _canonical(value):
    """`value` with the keys of every mapping in it sorted, so that its repr is deterministic."""
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _leaves(path, node):
    """(dotted key, value) of every leaf under `node`; lists are leaves."""
    if not isinstance(node, dict):
        return [(path, node)]
    return [leaf for k, v in node.items() for leaf in _leaves(f"{path}.{k}", v)]


def _keys(*paths):
    """The config values under `paths` as `section.key=value, ...`: one item per leaf,
    sorted by key, values as their repr (e.g. `masses.tau_s_ms=5.0, simulation.dt_ms=0.1`).
    """
    leaves = {}
    for path in paths:
        node = CFG
        for k in path.split("."):
            node = node[k]
        leaves.update(_leaves(path, node))
    return ", ".join(f"{k}={_canonical(v)!r}" for k, v in sorted(leaves.items()))


SCIENCE_SIMULATE = _keys(
    "seed", "network", "neuron", "simulation", "analysis.sc_min_bin_ms"
)
SCIENCE_MASSES = _keys("masses", "simulation")
SCIENCE_COMPARE = _keys("simulation", "analysis")
SCIENCE_GATHER = _keys("seed", "grid", "simulation", "analysis")
SCIENCE_FIGURES = _keys("grid", "simulation", "analysis", "figures")


# ------------------------------------------------------------------ resources
# Measured (README, "Time, memory, disk"): quick config (N = 2 000, T = 3 s)
# simulate 2-3 s CPU and <= 0.28 GB per job; N = 10 000 at 1 thread: graph
# build 2.7 s and 0.3 ms per step at p = 0.5 (5e7 synapses, 0.41 GB), 0.1 ms
# per step at p = 1 (stored as its empty complement). The estimates below
# scale these with N, the number of steps and the stored synapses
# min(p, 1 - p) N^2, with a margin of ~3; profiles may override them
# (set-resources, set-threads). One thread per job: on a loaded 2-core
# machine 2 Numba threads ran 5-12x slower than 1, so parallelism comes from
# running cells side by side.
_N = CFG["network"]["N"]
_STEPS = CFG["simulation"]["T_ms"] / CFG["simulation"]["dt_ms"]
_DURATION_S = CFG["simulation"]["T_ms"] / 1000
SIMULATE_THREADS = 1


def _stored_synapses(p):
    return min(p, 1.0 - p) * _N * _N


def simulate_mem_mb(wildcards):
    """Graph (8 B a stored synapse while built) + traces + spikes (100 Hz worst case)."""
    graph = 8 * _stored_synapses(float(wildcards.p))
    traces = 36 * _STEPS
    spikes = 8 * 100 * _N * _DURATION_S
    return int(500 + (graph + traces + spikes) / 1e6)


def simulate_runtime(wildcards):
    """Minutes: ~3e-8 s per neuron-step, doubled at the densest stored graph, x3 margin."""
    dense = 1 + 2 * _stored_synapses(float(wildcards.p)) / max(_N * _N, 1)
    seconds = _STEPS * _N * 3e-8 * dense
    return int(5 + 3 * seconds / 60)


# fit: every seed's input and V of the cell in memory (~60 B a step and seed), the MFM-fit's
# Jacobian over the training half (5 x 8 B a step and seed)
FIT_MEM_MB = int(300 + 100 * _STEPS * len(CFG["grid"]["seeds"]) / 1e6)
# masses: 0.36 GB peak on a paper cell (3e5 steps, closures recorded) with the five models
MASSES_MEM_MB = int(300 + 500 * _STEPS / 1e6)
COMPARE_MEM_MB = int(400 + 600 * _STEPS / 1e6)


# ------------------------------------------------------- job environment
# Numba compiles the kernels once per machine and user, not once per job.
os.environ.setdefault(
    "NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "nmmval" / "numba")
)


def write_resolved_config():
    """Write results/{run}/config.resolved.yaml, only if its content changed.

    The CLI reads this file, so `--configfile` and `--config` overrides reach
    every job. Not rewriting an unchanged file keeps its mtime, so nothing
    reruns needlessly; reruns are driven by the params above.
    """
    resolved = {k: v for k, v in CFG.items() if k != "cell"}
    text = "# written by the workflow: the validated config with every default\n"
    text += yaml.safe_dump(resolved, sort_keys=False)
    path = Path(RESOLVED_CONFIG)
    if path.exists() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------- report
_CAPTIONS = {f.name: (f.category, f.caption) for f in FIGURE_REGISTRY}


def report_figures():
    """The PNGs of the figures rule, registered for `snakemake --report`."""
    files = []
    for name in FIGURES + DIAGNOSTIC_FIGURES:
        category, caption = _CAPTIONS.get(name, DIAGNOSTIC_REPORT)
        png = f"{FIGDIR}/{name}.png"
        labels = {"figure": name}
        files.append(
            register_in_report(
                png, caption=f"../report/{caption}", category=category, labels=labels
            )
        )
    return files
