"""Load, validate and type the nmmval configuration.

The JSON schema ``workflow/schemas/config.schema.yaml`` is the single source
of defaults, ranges and units; Snakemake validates the workflow config with
the same file. Every failure is one :class:`ConfigError` line that names the
key, the value and what is allowed, e.g. ``network.p_ext: 1.7 is not in
[0, 1]``.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jsonschema
import yaml


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


def schema_path() -> Path:
    """Path of the JSON schema (shipped inside the package, mirrored in workflow/)."""
    return Path(str(resources.files("nmmval") / "config.schema.yaml"))


def quick_path() -> Path:
    """Path of the quick config, what ``nmmval`` uses without ``--config``.

    It is ``config/config.yaml``: the package's ``quick.yaml`` links to it in
    the repository and is a copy of it in an installed wheel.
    """
    return Path(str(resources.files("nmmval") / "quick.yaml"))


#: PyYAML's safe loader, in C (libyaml) where PyYAML has it: the same objects, read 6x
#: faster (the schema: 15 ms in Python, of every job's start-up)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def _schema() -> dict:
    with open(schema_path()) as fh:
        return yaml.load(fh, Loader=_LOADER)


def load_schema() -> dict:
    """The config schema as a dict (a fresh copy; the file is read once)."""
    return copy.deepcopy(_schema())


def _fill_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _fill_defaults(jsonschema.Draft202012Validator)


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<config>"


def _describe(error: jsonschema.ValidationError) -> str:
    key = _key(error.absolute_path)
    value = error.instance
    schema = error.schema
    v = error.validator
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        lo = schema.get("minimum", schema.get("exclusiveMinimum", "-inf"))
        hi = schema.get("maximum", schema.get("exclusiveMaximum", "inf"))
        left = "(" if "exclusiveMinimum" in schema else "["
        right = ")" if "exclusiveMaximum" in schema else "]"
        return f"{key}: {value!r} is not in {left}{lo}, {hi}{right}"
    if v == "type":
        return f"{key}: {value!r} is not of type {schema['type']}"
    if v == "required":
        missing = error.message.split("'")[1]
        return f"{_key([*error.absolute_path, missing])}: missing, it is required"
    if v == "additionalProperties":
        extra = sorted(set(value) - set(schema.get("properties", {})))
        return f"{key}: unknown key(s) {', '.join(map(repr, extra))}"
    return f"{key}: {error.message}"


def _check_relations(cfg: dict) -> None:
    """Constraints between keys that a JSON schema cannot state."""
    neu, sim = cfg["neuron"], cfg["simulation"]
    if not neu["v_reset_mV"] < neu["v_th_mV"]:
        raise ConfigError(
            f"neuron.v_reset_mV: {neu['v_reset_mV']!r} must be below "
            f"neuron.v_th_mV = {neu['v_th_mV']!r}"
        )
    if not sim["T0_ms"] < sim["T_ms"]:
        raise ConfigError(
            f"simulation.T0_ms: {sim['T0_ms']!r} must be below simulation.T_ms = {sim['T_ms']!r}"
        )
    if sim["v_init_mean_mV"] is None and sim["v_init_sd_mV"] > 0:
        raise ConfigError(
            f"simulation.v_init_sd_mV: {sim['v_init_sd_mV']!r} needs simulation.v_init_mean_mV "
            "(null: uniform initial potentials, no spread to set)"
        )
    if (sim["T_ms"] - sim["T0_ms"]) / sim["dt_ms"] < 16:
        raise ConfigError(
            f"simulation.dt_ms: {sim['dt_ms']!r} leaves fewer than 16 steps in [T0_ms, T_ms)"
        )
    v_min = cfg["masses"]["pdm_v_min_mV"]
    if v_min is not None and not v_min < neu["v_reset_mV"]:
        raise ConfigError(
            f"masses.pdm_v_min_mV: {v_min!r} must be below neuron.v_reset_mV = "
            f"{neu['v_reset_mV']!r}"
        )
    for axis in ("p", "lam"):
        for value in cfg["grid"][axis]:
            if not math.isclose(round(value, 3), value, abs_tol=1e-12):
                raise ConfigError(
                    f"grid.{axis}: {value!r} has more than 3 decimals (cell paths are p~0.050)"
                )
    for i, cell in enumerate(cfg["figures"]["diagnostic_cells"]):
        if cell["p"] not in cfg["grid"]["p"] or cell["lam"] not in cfg["grid"]["lam"]:
            raise ConfigError(
                f"figures.diagnostic_cells.{i}: {cell!r} is not a cell of grid.p x grid.lam"
            )


def _non_finite(node, path=()):
    """(path, value) of every NaN or infinite number in a config tree."""
    if isinstance(node, float) and not math.isfinite(node):
        yield path, node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _non_finite(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _non_finite(v, (*path, i))


def validate(cfg: dict) -> dict:
    """Validate a config dict and return a copy with every default filled in.

    Raises
    ------
    ConfigError
        One line naming the first offending key (sorted by key).
    """
    cfg = copy.deepcopy(cfg)
    if not isinstance(cfg, dict):
        raise ConfigError(f"<config>: {cfg!r} is not a mapping")
    for path, value in _non_finite(cfg):
        raise ConfigError(f"{_key(path)}: {value!r} is not a finite number")
    errors = sorted(_Validator(load_schema()).iter_errors(cfg), key=lambda e: _key(e.absolute_path))
    if errors:
        raise ConfigError(_describe(errors[0]))
    _check_relations(cfg)
    return cfg


def apply_overrides(cfg: dict, overrides: list[str]) -> dict:
    """Apply ``section.key=value`` overrides (value parsed as YAML)."""
    cfg = copy.deepcopy(cfg)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        path, raw = item.split("=", 1)
        keys = path.strip().split(".")
        node = cfg
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {k} is not a section")
        node[keys[-1]] = _parse_value(raw)
    return cfg


def _parse_value(raw: str):
    """YAML value of an override; also reads ``4e-4``, which YAML 1.1 leaves a string."""
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def load(path: str | Path | None = None, overrides: list[str] | None = None) -> Params:
    """Read a YAML config file, apply overrides, validate and build :class:`Params`.

    Parameters
    ----------
    path : str or Path, optional
        The YAML config; default :func:`quick_path`, the quick config. The
        schema alone is not a config: ``run``, ``seed`` and ``grid`` have no
        default, and its defaults are the paper's network, not the quick one.
    overrides : list of str, optional
        ``section.key=value`` items (:func:`apply_overrides`).
    """
    path = quick_path() if path is None else Path(path)
    try:
        with open(path) as fh:
            raw = yaml.load(fh, Loader=_LOADER)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return from_dict(apply_overrides(raw or {}, overrides or []))


@dataclass(frozen=True)
class NetworkParams:
    """Network of MODEL.md §2 (Eqs. 5-11): sizes, drive, synapses."""

    N: int
    M: int
    nu_ext_Hz: float
    p_ext: float
    tau_E_ms: float
    tau_I_ms: float
    tau_ext_ms: float
    g_hat_E_nSms: float
    g_hat_I_nSms: float
    g_hat_ext_nSms: float
    v_E_mV: float
    v_I_mV: float
    v_ext_mV: float


@dataclass(frozen=True)
class NeuronParams:
    """LIF neuron of Eq. 11a."""

    C_pF: float
    g_L_nS: float
    v_rest_mV: float
    v_th_mV: float
    v_reset_mV: float
    tau_ref_ms: float
    noise_Q_V2ms: float

    @property
    def tau_m_ms(self) -> float:
        """Membrane time constant c/g_L (ms)."""
        return self.C_pF / self.g_L_nS

    @property
    def noise_Q_mV2ms(self) -> float:
        """Noise variance Q in mV² ms (the V² ms reading of the paper's 5e-4)."""
        return self.noise_Q_V2ms * 1e6


@dataclass(frozen=True)
class SimulationParams:
    """Time grid (step, duration, discarded transient), what is recorded, and the
    initial state: membrane potentials (mV) uniform on [v_reset, v_th) or, with
    ``v_init_mean_mV``, normal; conductances g_E, g_I (nS) normal across cells
    (0 by default)."""

    dt_ms: float
    T_ms: float
    T0_ms: float
    store_spikes: bool
    record_closures: bool
    v_init_mean_mV: float | None
    v_init_sd_mV: float
    g_init_E_mean_nS: float
    g_init_E_sd_nS: float
    g_init_I_mean_nS: float
    g_init_I_sd_nS: float

    @property
    def n_steps(self) -> int:
        """Number of Euler steps in [0, T)."""
        return int(round(self.T_ms / self.dt_ms))

    @property
    def n0_steps(self) -> int:
        """First step of the analysis window [T0, T)."""
        return int(round(self.T0_ms / self.dt_ms))


@dataclass(frozen=True)
class MassParams:
    """Mass models: Freeman models (Eqs. 20, 24), the PDM's grid, the fits' bounds (MODEL.md §5)."""

    tau_s_ms: float
    pdm_n_bins: int
    pdm_v_min_mV: float | None
    pdm_boundary_correction: bool
    fit_tau_s_max_ms: float
    fit_gain_max: float


@dataclass(frozen=True)
class AnalysisParams:
    """Comparison measures and the validation protocol of MODEL.md §6."""

    alpha: float
    max_lag_ms: float
    fmax_store_Hz: float
    welch_segment_ms: float
    equivalence_factor: float
    rho_adequate: float
    n_surrogates: int
    sc_min_bin_ms: float
    rate_bin_ms: float


@dataclass(frozen=True)
class Params:
    """Every parameter of one run, typed and frozen.

    ``resolved`` holds the validated config dict (defaults filled in); it is
    what files store as their ``config`` attribute.
    """

    run: str
    seed: int
    network: NetworkParams
    neuron: NeuronParams
    simulation: SimulationParams
    masses: MassParams
    analysis: AnalysisParams
    grid_p: tuple[float, ...]
    grid_lam: tuple[float, ...]
    grid_seeds: tuple[int, ...]
    resolved: dict

    def to_json(self) -> str:
        """The resolved config as canonical JSON."""
        return json.dumps(self.resolved, sort_keys=True)


def _section(cls, values: dict):
    return cls(**values)


def from_dict(raw: dict) -> Params:
    """Validate a config dict and build :class:`Params`."""
    cfg = validate(raw)
    return Params(
        run=cfg["run"],
        seed=cfg["seed"],
        network=_section(NetworkParams, cfg["network"]),
        neuron=_section(NeuronParams, cfg["neuron"]),
        simulation=_section(SimulationParams, cfg["simulation"]),
        masses=_section(MassParams, cfg["masses"]),
        analysis=_section(AnalysisParams, cfg["analysis"]),
        grid_p=tuple(cfg["grid"]["p"]),
        grid_lam=tuple(cfg["grid"]["lam"]),
        grid_seeds=tuple(cfg["grid"]["seeds"]),
        resolved=cfg,
    )


def from_json(text: str) -> Params:
    """Rebuild :class:`Params` from the ``config`` attribute of a stored file."""
    return from_dict(json.loads(text))


def schema_markdown() -> str:
    """Markdown tables of every config key with its default and meaning (config/README.md)."""
    schema = load_schema()
    lines = []
    for section, sub in schema["properties"].items():
        props = sub.get("properties")
        if props is None or sub.get("type") != "object" or section == "cell":
            desc = sub.get("description", "")
            lines.append(f"- `{section}`: {desc}")
            continue
        lines += ["", f"### `{section}`", "", "| key | default | meaning |", "|---|---|---|"]
        for key, spec in props.items():
            default = spec.get("default", "(required)")
            lines.append(f"| `{key}` | `{default}` | {spec.get('description', '')} |")
    return "\n".join(lines) + "\n"
