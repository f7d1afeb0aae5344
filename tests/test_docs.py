"""The documentation site builds with Sphinx, warnings as errors (issue #18).

docs/*.md are MyST Markdown; docs/api.md pulls the API reference from the
numpy-style docstrings (autodoc + napoleon), docs/config.md the config keys
generated from the schema (config/README.md). A broken cross-reference, an
unknown role, a malformed docstring or a heading out of order fails the build.
"""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_the_documentation_builds_without_a_warning(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-q", "-b", "html",
         str(ROOT / "docs"), str(tmp_path / "html")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for page in ("index", "model", "models", "architecture", "config", "api"):
        assert (tmp_path / "html" / f"{page}.html").is_file(), page
    api = (tmp_path / "html" / "api.html").read_text()
    assert "fit_cell" in api and "combine_cell" in api  # the docstrings made it in
    config = (tmp_path / "html" / "config.html").read_text()
    assert "fit_gain_max" in config  # the schema's keys made it in
