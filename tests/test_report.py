"""`snakemake --report` on the tiny run: the landing page, every figure's caption, readable
job parameters, and those parameters as the rerun trigger of exactly the stages that use a key.

Snakemake 9 writes the report as one HTML file whose data are JavaScript literals
(``var results = {...};``, ``var workflow_desc = "...";``): the tests read those, not the page
the browser builds from them.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
import yaml

from nmmval import figures

from conftest import ROOT, TINY, job_counts, snakemake_in

REPORT_DIR = ROOT / "workflow" / "report"


def _words(text: str) -> list[str]:
    """The words of a text, without markup, entities or line breaks."""
    return re.findall(r"\w+", html.unescape(re.sub(r"<[^>]+>", " ", text)))


def _report_data(page: str, name: str):
    """The value of ``var <name> = <JSON>;`` in the report page (the last such line)."""
    found = re.findall(rf"^\s*var {name} = (.*);$", page, re.MULTILINE)
    assert found, f"no {name} in the report"
    return json.loads(found[-1])


@pytest.fixture(scope="module")
def report(tiny_run, tmp_path_factory):
    """The report of the tiny run: its page and the data it shows."""
    path = tmp_path_factory.mktemp("report") / "report.html"
    workdir = tiny_run.parents[1]
    res = snakemake_in(workdir, "--configfile", str(TINY), "--report", str(path), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    page = path.read_text()
    return {
        "page": page,
        "description": _report_data(page, "workflow_desc"),
        "results": _report_data(page, "results"),
    }


@pytest.mark.slow
def test_landing_page_describes_the_workflow_and_the_run(report):
    words = _words(report["description"])
    text = " ".join(words)
    source = (REPORT_DIR / "workflow.rst").read_text()
    sentence = "The verdicts (adequate, undecided, inadequate) come from the validation"
    assert sentence in " ".join(source.split())
    assert " ".join(_words(sentence)) in text
    # the run's own numbers, filled in from the config by the report's template
    assert "This report is of run tiny 2 values of the connection probability p" in text
    assert "N 400 neurons" in text
    for rule in ("simulate", "fit", "masses", "compare", "gather", "figures"):
        assert rule in words, rule
    # the reference to a figure became a link to it
    assert (
        "app.showResultInfo('results/tiny/figures/validity_held_out.png')"
        in (report["description"])
    )


@pytest.mark.slow
def test_every_figure_has_its_caption(report):
    results = {Path(path).stem: r for path, r in report["results"].items()}
    captions = {f.name: f.caption for f in figures.FIGURES}
    for cell in yaml.safe_load(TINY.read_text())["figures"]["diagnostic_cells"]:
        captions[figures.diagnostic_name(cell["p"], cell["lam"])] = figures.DIAGNOSTIC[1]
    assert set(results) == set(captions)
    for name, caption in captions.items():
        expected = _words((REPORT_DIR / caption).read_text())
        assert _words(results[name]["caption"]) == expected, name


@pytest.mark.slow
def test_job_parameters_are_readable(report):
    for path, result in report["results"].items():
        params = result["job_properties"]["params"]
        assert '\\"' not in params and '{"' not in params and "&quot;" not in params, path
        assert "simulation.dt_ms=0.1, " in params, params
        assert "figures.diagnostic_cells=[{'lam': 0.8, 'p': 0.1}]" in params, params
    assert "science={" not in report["page"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        # the protocol's level: compare and what gathers it, no simulation or mass model
        ("analysis={alpha: 0.05}", {"compare": 8, "gather": 1, "figures": 1, "all": 1}),
        # the mass models' time constant: fit and masses, and what reads them
        (
            "masses={tau_s_ms: 6.0}",
            {"fit": 4, "masses": 8, "compare": 8, "gather": 1, "figures": 1, "all": 1},
        ),
        # one more diagnostic cell: the figures only
        ("figures={diagnostic_cells: [{p: 0.5, lam: 1.0}]}", {"figures": 1, "all": 1}),
    ],
)
def test_job_parameters_rerun_exactly_the_stages_that_use_a_changed_key(
    tiny_run, override, expected
):
    workdir = tiny_run.parents[1]
    res = snakemake_in(workdir, "--configfile", str(TINY), "-n", "--config", override, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    counts = job_counts(res.stdout + res.stderr)
    counts.pop("total", None)
    assert counts == expected, res.stdout[-3000:]
