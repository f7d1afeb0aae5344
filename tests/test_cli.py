"""The ``nmmval`` command as a user meets it: version, help, default config, progress, last line."""

import argparse
import io
import re
import resource
import subprocess
import sys

import pytest
import xarray as xr

from nmmval import __version__, cli, config
from nmmval.progress import Progress

from conftest import ROOT

SMALL = ["--set", "network.N=300", "--set", "simulation.T_ms=400", "--set", "simulation.T0_ms=100"]


def _subcommands(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def test_version_names_the_package(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"nmmval {__version__}\n"


def test_every_option_of_every_subcommand_has_help():
    parser = cli.build_parser()
    subcommands = dict(_subcommands(parser))
    stages = {"simulate", "fit", "masses", "compare", "gather", "figures", "profile", "doctor"}
    assert stages <= set(subcommands)
    missing = [
        f"{name} {action.dest}"
        for name, sp in [("nmmval", parser), *subcommands.items()]
        for action in sp._actions
        if not isinstance(action, argparse._SubParsersAction)
        and (not action.help or action.help == argparse.SUPPRESS or not action.help.strip())
    ]
    assert missing == []
    for name, sp in subcommands.items():
        assert sp.description, name


def test_config_help_says_what_is_used_without_it():
    sp = dict(_subcommands(cli.build_parser()))["simulate"]
    (action,) = [a for a in sp._actions if a.dest == "config"]
    assert not action.required and "quick config" in action.help


def test_the_default_config_is_the_quick_config():
    assert config.quick_path().read_bytes() == (ROOT / "config" / "config.yaml").read_bytes()
    assert config.load() == config.load(ROOT / "config" / "config.yaml")
    assert config.load(None, ["network.N=300"]).network.N == 300


def test_simulate_without_config_uses_the_quick_config(tmp_path):
    out = tmp_path / "network.nc"
    args = ["simulate", "--p", "0.2", "--lam", "0.8", "--seed", "1", "--out", str(out), *SMALL]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run([sys.executable, "-m", "nmmval.cli", *args], capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    # not a terminal: plain progress lines, every 10 % with the time left, then the file
    progress = [ln for ln in lines if ln.startswith("nmmval simulate p=0.2 lam=0.8 seed=1: ")]
    percents = [ln.split(": ")[1].split("%")[0].strip() for ln in progress if " % (" in ln]
    assert percents == [str(10 * k) for k in range(1, 11)]
    assert all(ln.endswith(" s left)") for ln in progress if " % (" in ln)
    # the file, then the process's CPU seconds and peak memory: those the OS counted for it
    wrote = rf"nmmval simulate: wrote {re.escape(str(out))} \(CPU (\S+) s, peak (\d+) MiB\)"
    last = re.fullmatch(wrote, lines[-1])
    assert last, lines[-1]
    child_cpu_s = sum(getattr(after, f) - getattr(before, f) for f in ("ru_utime", "ru_stime"))
    assert 0.7 * child_cpu_s <= float(last[1]) <= child_cpu_s + 0.05
    assert 50 <= int(last[2]) <= after.ru_maxrss / 1024 + 1
    with xr.open_dataset(out) as ds:
        expected = config.load(ROOT / "config" / "config.yaml", SMALL[1::2])
        assert ds.attrs["config"] == expected.to_json()


def test_a_failed_command_prints_no_wrote_line(tmp_path, capsys):
    code = cli.main(["gather", "--results", str(tmp_path), "--out", str(tmp_path / "cube.nc")])
    assert code == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("nmmval: ") and "wrote" not in err[0]
    assert not (tmp_path / "cube.nc").exists()


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_in_a_log_is_a_line_per_tenth():
    log = io.StringIO()  # not a terminal
    with Progress(1000, "job", stream=log) as bar:
        for done in (5, 40, 100, 350, 1000):  # irregular updates
            bar.update(done)
    lines = log.getvalue().splitlines()
    assert [ln.split(":")[1].split("%")[0].strip() for ln in lines] == ["10", "35", "100"]


def test_progress_on_a_terminal_is_a_bar_with_rate_and_time_left():
    term = _Terminal()
    with Progress(1000, "job", stream=term) as bar:
        print("job: a message", file=bar.log)
        for done in range(100, 1001, 100):
            bar.update(done)
    text = term.getvalue()
    assert "job: a message\n" in text
    assert "100%" in text and "step/s" in text and "<" in text  # tqdm's [elapsed<left, rate]
    assert " % (" not in text  # no plain lines
