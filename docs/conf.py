"""Sphinx configuration of nmmval's documentation (MyST Markdown; API from the docstrings)."""

from nmmval import __version__

project = "nmmval"
author = "nmmval developers"
copyright = "2026, nmmval developers"
release = __version__
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "results", "calibration", "img"]
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_ivar = True  # "Attributes" as fields of the class, not objects of their own
autodoc_member_order = "bysource"
myst_heading_anchors = 3
html_theme = "alabaster"
