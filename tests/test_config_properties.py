"""Bad configuration and bad command lines: rejected up front, in one line naming the key.

- Property-based (hypothesis) over the config schema
  (``src/nmmval/config.schema.yaml``): every random config drawn from the
  schema's types and ranges (and the relations between keys) validates; for
  every key of the schema, an out-of-range, wrong-type or missing required
  value is rejected with one line starting with its dotted name.
- The workflow stops on a bad value before any job starts (``snakemake -n``
  with ``--config`` or a bad ``--configfile``): one line naming the key, exit
  code not 0, nothing under ``results/``.
- Every ``nmmval`` subcommand rejects a bad command line (wrong type, missing
  required option, missing input file) with exit code not 0, one line on
  stderr and no output file.
"""

from __future__ import annotations

import copy
import math
import subprocess
import sys

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nmmval import cli, config

from conftest import ROOT

SCHEMA = config.load_schema()
TINY = ROOT / "tests" / "data" / "tiny.yaml"
SNAKEFILE = ROOT / "Snakefile"


def _base() -> dict:
    return yaml.safe_load(TINY.read_text())


# ------------------------------------------------------------------ the schema's keys
def _leaves(schema: dict, prefix: tuple = ()) -> dict[tuple, dict]:
    """Every property of the schema (sections and leaves): path -> (subschema, required)."""
    out = {}
    required = set(schema.get("required", []))
    for name, sub in schema.get("properties", {}).items():
        path = (*prefix, name)
        out[path] = (sub, name in required)
        if sub.get("type") == "object":
            out.update(_leaves(sub, path))
    return out


KEYS = _leaves(SCHEMA)


def _dotted(path) -> str:
    return ".".join(map(str, path))


def _kind(sub: dict) -> str | None:
    """The schema type of a key; of a nullable one (``[number, "null"]``) the non-null type."""
    kind = sub.get("type")
    return next(k for k in kind if k != "null") if isinstance(kind, list) else kind


def _bounds(sub: dict):
    lo = sub.get("minimum", sub.get("exclusiveMinimum"))
    hi = sub.get("maximum", sub.get("exclusiveMaximum"))
    return lo, hi


def _number(sub: dict) -> st.SearchStrategy:
    lo, hi = _bounds(sub)
    if _kind(sub) == "integer":
        lo = 0 if lo is None else lo + (1 if "exclusiveMinimum" in sub else 0)
        hi = 2**40 if hi is None else hi - (1 if "exclusiveMaximum" in sub else 0)
        return st.integers(lo, hi)
    return st.floats(
        min_value=lo,
        max_value=hi,
        exclude_min="exclusiveMinimum" in sub,
        exclude_max="exclusiveMaximum" in sub,
        allow_nan=False,
        allow_infinity=False,
    )


def _section(name: str, draw, skip=()) -> dict:
    """A random valid section: each key present or left to its default."""
    out = {}
    for key, sub in SCHEMA["properties"][name]["properties"].items():
        if key in skip or not draw(st.booleans()):
            continue
        if isinstance(sub["type"], list) and draw(st.booleans()):
            out[key] = None  # a nullable key's null
            continue
        out[key] = draw(st.booleans()) if _kind(sub) == "boolean" else draw(_number(sub))
    return out


# ------------------------------------------------------------------ valid configs
@st.composite
def valid_configs(draw) -> dict:
    thousandths = st.integers(0, 1000).map(lambda i: i / 1000)
    axis = st.lists(thousandths, min_size=1, max_size=4, unique=True)
    grid = {
        "p": draw(axis),
        "lam": draw(axis),
        "seeds": draw(st.lists(st.integers(0, 9999), min_size=1, max_size=4, unique=True)),
    }
    cfg = {
        "run": draw(st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True)),
        "seed": draw(st.integers(0, 2**63)),
        "grid": grid,
    }
    if draw(st.booleans()):
        cfg["network"] = _section("network", draw)
    if draw(st.booleans()):
        # v_reset < v_th: both or neither (a default could break the relation)
        neuron = _section("neuron", draw, skip=("v_reset_mV", "v_th_mV"))
        if draw(st.booleans()):
            v_th = draw(st.floats(-199, 200, allow_nan=False))
            neuron["v_th_mV"] = v_th
            neuron["v_reset_mV"] = draw(st.floats(-200, v_th, exclude_max=True))
        cfg["neuron"] = neuron
    if draw(st.booleans()):
        # T0 < T and at least 16 steps in [T0, T): the three keys together
        dt = draw(st.floats(1e-3, 10))
        T = draw(st.floats(17 * dt, 1e7))
        T0 = draw(st.floats(0, T - 17 * dt))
        sim = {"dt_ms": dt, "T_ms": T, "T0_ms": T0}
        if draw(st.booleans()):
            sim["store_spikes"] = draw(st.booleans())
        cfg["simulation"] = sim
    if draw(st.booleans()):
        # the PDM's lower boundary, if a number, below the v_reset in effect
        masses = _section("masses", draw, skip=("pdm_v_min_mV",))
        if draw(st.booleans()):
            v_reset = cfg.get("neuron", {}).get("v_reset_mV", -60.0)
            v_min = st.floats(-1000, v_reset, exclude_max=True)
            masses["pdm_v_min_mV"] = draw(st.none() | v_min)
        cfg["masses"] = masses
    if draw(st.booleans()):
        cfg["analysis"] = _section("analysis", draw)
    if draw(st.booleans()):
        cells = st.fixed_dictionaries(
            {"p": st.sampled_from(grid["p"]), "lam": st.sampled_from(grid["lam"])}
        )
        cfg["figures"] = {"diagnostic_cells": draw(st.lists(cells, max_size=3))}
    if draw(st.booleans()):
        cfg["cell"] = {
            "p": draw(st.floats(0, 1)),
            "lam": draw(st.floats(0, 1)),
            "seed": draw(st.integers(0, 9999)),
        }
    return cfg


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_configs())
def test_every_valid_config_passes(cfg):
    original = copy.deepcopy(cfg)
    resolved = config.validate(cfg)
    assert cfg == original, "validate must not modify its argument"
    for section in ("network", "neuron", "simulation", "masses", "analysis", "figures"):
        assert section in resolved  # defaults filled in
    params = config.from_dict(cfg)
    assert params.simulation.n_steps - params.simulation.n0_steps >= 16


# ------------------------------------------------------------------ invalid values
def _bad_values(sub: dict) -> st.SearchStrategy:
    """Values that break the subschema: out of range or of the wrong type."""
    kind = _kind(sub)
    options = []
    if kind in ("number", "integer"):
        lo, hi = _bounds(sub)
        if lo is not None:
            below = st.floats(max_value=lo, exclude_max="exclusiveMinimum" not in sub)
            options.append(below.filter(lambda x: not math.isnan(x)))
            if kind == "integer":
                options.append(st.integers(max_value=lo - (0 if "exclusiveMinimum" in sub else 1)))
        if hi is not None:
            above = st.floats(min_value=hi, exclude_min="exclusiveMaximum" not in sub)
            options.append(above.filter(lambda x: not math.isnan(x)))
        options.append(st.text(max_size=5))
        options.append(st.booleans())  # JSON schema: a boolean is not a number
        if kind == "integer":
            options.append(st.floats(allow_nan=False).filter(lambda x: not float(x).is_integer()))
    elif kind == "boolean":
        options += [st.integers(), st.text(max_size=5), st.floats(allow_nan=False)]
    elif kind == "string":
        options += [st.integers(), st.just("a/b"), st.just(""), st.booleans()]
    elif kind == "array":
        options += [st.integers(), st.text(max_size=5)]
        if sub.get("minItems", 0) > 0:
            options.append(st.just([]))
        if sub.get("uniqueItems"):
            options.append(st.just([0, 0]))
        item = sub["items"]
        if item.get("type") in ("number", "integer"):
            bad_item = _bad_values(item)
            options.append(st.lists(bad_item, min_size=1, max_size=2))
    elif kind == "object":
        options += [st.integers(), st.text(max_size=5), st.just([1, 2])]
        if sub.get("additionalProperties") is False:
            options.append(st.just({"no_such_key": 1}))
    return st.one_of(options)


def _set(cfg: dict, path, value) -> None:
    node = cfg
    for k in path[:-1]:
        node = node.setdefault(k, {})
    node[path[-1]] = value


def _one_line_naming(err: config.ConfigError, key: str) -> None:
    text = str(err)
    assert "\n" not in text, text
    assert text.startswith(f"{key}:") or text.startswith(f"{key}."), (key, text)


def _config_with_cell() -> dict:
    cfg = _base()
    cfg["cell"] = {"p": 0.1, "lam": 0.8, "seed": 0}
    return cfg


@pytest.mark.parametrize("path", sorted(KEYS), ids=_dotted)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_every_bad_value_is_rejected_naming_its_key(path, data):
    sub, _required = KEYS[path]
    bad = data.draw(_bad_values(sub), label="bad value")
    cfg = _config_with_cell()
    _set(cfg, path, bad)
    with pytest.raises(config.ConfigError) as err:
        config.validate(cfg)
    _one_line_naming(err.value, _dotted(path))


REQUIRED = [p for p, (_, req) in sorted(KEYS.items()) if req]


@pytest.mark.parametrize("path", REQUIRED, ids=_dotted)
def test_every_missing_required_key_is_named(path):
    cfg = _config_with_cell()
    node = cfg
    for k in path[:-1]:
        node = node[k]
    del node[path[-1]]
    with pytest.raises(config.ConfigError) as err:
        config.validate(cfg)
    assert str(err.value) == f"{_dotted(path)}: missing, it is required"


def test_missing_required_key_of_a_diagnostic_cell_is_named():
    cfg = _base()
    cfg["figures"] = {"diagnostic_cells": [{"p": 0.1}]}
    with pytest.raises(config.ConfigError, match=r"^figures\.diagnostic_cells\.0\.lam: missing"):
        config.validate(cfg)


NUMBER_KEYS = [p for p, (sub, _) in sorted(KEYS.items()) if _kind(sub) == "number"]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_is_rejected_for_every_number_key(value):
    accepted = []
    for path in NUMBER_KEYS:
        cfg = _config_with_cell()
        _set(cfg, path, value)
        try:
            config.validate(cfg)
        except config.ConfigError as err:
            _one_line_naming(err, _dotted(path))
        else:
            accepted.append(_dotted(path))
    assert not accepted, f"{value} accepted for {accepted}"


# ------------------------------------------------------------------ the workflow
def _dry_run(workdir, *args):
    cmd = ["snakemake", "-s", str(SNAKEFILE), "--directory", str(workdir), "-n", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=workdir)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "run=a/b"], "run: 'a/b' does not match"),
        (
            ["--config", "grid={p: [0.1, 1.5], lam: [0.8], seeds: [0]}"],
            "grid.p.1: 1.5 is not in [0, 1]",
        ),
        (["--config", "neuron={C_pF: abc}"], "neuron.C_pF: 'abc' is not of type number"),
        (["--configfile", "{no_seeds}"], "grid.seeds: missing, it is required"),
    ],
    ids=["pattern", "range", "type", "missing"],
)
def test_workflow_rejects_a_bad_value_before_any_job(tmp_path, args, message):
    # --config merges into the configfile's mappings, so a missing key needs a configfile
    cfg = _base()
    del cfg["grid"]["seeds"]
    no_seeds = tmp_path / "no_seeds.yaml"
    no_seeds.write_text(yaml.safe_dump(cfg))
    args = [str(no_seeds) if a == "{no_seeds}" else a for a in args]
    res = _dry_run(tmp_path, "--configfile", str(TINY), *args)
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if message in ln]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"nmmval config error: {message}"), lines
    assert "Traceback" not in res.stderr
    assert "rule simulate" not in res.stdout + res.stderr
    assert not (tmp_path / "results").exists()


# ------------------------------------------------------------------ the command line
def _cli(capsys, argv):
    """Run ``nmmval argv`` in process; (exit code, stderr lines)."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    err = capsys.readouterr().err
    return code, [ln for ln in err.splitlines() if ln.strip()]


def _cases(tmp):
    cfg = str(TINY)
    junk = tmp / "junk.nc"
    junk.write_bytes(b"not a netcdf file\n" * 10)
    sim = ["simulate", "--config", cfg, "--p", "0.1", "--lam", "0.8", "--seed", "0"]
    return [
        # (argv, expected exit code, start of the stderr line, output that must not appear)
        (["frobnicate"], 2, "nmmval: error: argument command: invalid choice", None),
        (
            [*sim[:-2], "--out", str(tmp / "n.nc")],
            2,
            "nmmval simulate: error: the following arguments are required: --seed",
            "n.nc",
        ),
        (
            [*sim, "--p", "abc", "--out", str(tmp / "n.nc")],
            2,
            "nmmval simulate: error: argument --p: invalid float value: 'abc'",
            "n.nc",
        ),
        (
            [*sim, "--threads", "two", "--out", str(tmp / "n.nc")],
            2,
            "nmmval simulate: error: argument --threads: invalid int value",
            "n.nc",
        ),
        (
            [*sim, "--lam", "-0.5", "--out", str(tmp / "n.nc")],
            1,
            "nmmval: --lam: -0.5 is not in [0, 1]",
            "n.nc",
        ),
        (
            [*sim, "--seed", "-1", "--out", str(tmp / "n.nc")],
            1,
            "nmmval: --seed: -1 must be >= 0",
            "n.nc",
        ),
        (
            ["simulate", "--config", str(tmp / "nope.yaml"), *sim[3:], "--out", str(tmp / "n.nc")],
            1,
            f"nmmval: {tmp / 'nope.yaml'}: cannot read config",
            "n.nc",
        ),
        (
            [*sim, "--set", "network.N=many", "--out", str(tmp / "n.nc")],
            1,
            "nmmval: network.N: 'many' is not of type integer",
            "n.nc",
        ),
        (
            ["masses", "--config", cfg, "--out", str(tmp / "m.nc")],
            2,
            "nmmval masses: error: the following arguments are required: --network",
            "m.nc",
        ),
        (
            [
                "masses",
                "--config",
                cfg,
                "--network",
                str(tmp / "none.nc"),
                "--out",
                str(tmp / "m.nc"),
            ],
            1,
            f"nmmval: {tmp / 'none.nc'}: missing network file",
            "m.nc",
        ),
        (
            ["masses", "--config", cfg, "--network", str(junk), "--out", str(tmp / "m.nc")],
            1,
            f"nmmval: {junk}: corrupt network file (",
            "m.nc",
        ),
        (
            ["fit", "--config", cfg, "--out", str(tmp / "f.nc")],
            2,
            "nmmval fit: error: the following arguments are required: --network",
            "f.nc",
        ),
        (
            ["fit", "--config", cfg, "--network", str(junk), "--out", str(tmp / "f.nc")],
            1,
            f"nmmval: {junk}: corrupt network file (",
            "f.nc",
        ),
        (
            [
                "masses",
                "--config",
                cfg,
                "--network",
                str(junk),
                "--fit",
                str(tmp / "none.nc"),
                "--out",
                str(tmp / "m.nc"),
            ],
            1,
            f"nmmval: {junk}: corrupt network file (",
            "m.nc",
        ),
        (
            ["compare", "--config", cfg, "--network", str(junk), "--out", str(tmp / "c.nc")],
            2,
            "nmmval compare: error: the following arguments are required: --masses",
            "c.nc",
        ),
        (
            [
                "compare",
                "--config",
                cfg,
                "--network",
                str(tmp / "none.nc"),
                "--masses",
                str(junk),
                "--out",
                str(tmp / "c.nc"),
            ],
            1,
            f"nmmval: {tmp / 'none.nc'}: missing network file",
            "c.nc",
        ),
        (
            ["gather", "--config", cfg, "--out", str(tmp / "cube.nc")],
            2,
            "nmmval gather: error: the following arguments are required: --results",
            "cube.nc",
        ),
        (
            [
                "gather",
                "--config",
                cfg,
                "--results",
                str(tmp / "nowhere"),
                "--out",
                str(tmp / "cube.nc"),
            ],
            1,
            f"nmmval: {tmp / 'nowhere' / 'cells'}/p~0.100/lam~0.800/seed~0000/compare.nc: "
            "missing compare file",
            "cube.nc",
        ),
        (
            ["figures", "--config", cfg, "--results", str(tmp), "--outdir", str(tmp / "figs")],
            2,
            "nmmval figures: error: the following arguments are required: --cube",
            "figs",
        ),
        (
            [
                "figures",
                "--config",
                cfg,
                "--cube",
                str(tmp / "none.nc"),
                "--results",
                str(tmp),
                "--outdir",
                str(tmp / "figs"),
            ],
            1,
            f"nmmval: {tmp / 'none.nc'}: missing cube file",
            "figs",
        ),
        (
            [
                "figures",
                "--config",
                cfg,
                "--cube",
                str(junk),
                "--results",
                str(tmp),
                "--outdir",
                str(tmp / "figs"),
            ],
            1,
            f"nmmval: {junk}: corrupt cube file (",
            "figs",
        ),
        (
            ["profile", "install"],
            2,
            "nmmval profile: error: the following arguments are required: name",
            None,
        ),
        (
            ["profile", "remove", "slurm"],
            2,
            "nmmval profile: error: argument action: invalid choice: 'remove'",
            None,
        ),
        (
            ["profile", "install", "slurm", "--force=yes"],
            2,
            "nmmval profile: error: argument --force: ignored explicit argument 'yes'",
            None,
        ),
    ]


def test_every_subcommand_rejects_a_bad_command_line_in_one_line(tmp_path, capsys):
    covered = set()
    for argv, code, start, output in _cases(tmp_path):
        got, lines = _cli(capsys, argv)
        assert got == code, (argv, got, lines)
        assert len(lines) == 1, (argv, lines)
        assert lines[0].startswith(start), (argv, lines[0])
        if output:
            assert not (tmp_path / output).exists(), argv
        assert not list(tmp_path.glob("*.tmp.nc")) and not list(tmp_path.glob(".*.tmp.nc"))
        covered.add(argv[0])
    assert covered >= {"simulate", "fit", "masses", "compare", "gather", "figures", "profile"}


def test_console_script_prints_one_line_for_a_bad_command_line(tmp_path):
    out = tmp_path / "m.nc"
    res = subprocess.run(
        [sys.executable, "-m", "nmmval.cli", "masses", "--config", str(TINY), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        "nmmval masses: error: the following arguments are required: --network"
    ]
    assert not out.exists()
