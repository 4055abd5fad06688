"""Sphinx configuration of the BioLeaF reference docs (``bash scripts/docs.sh``)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))  # document the checkout, installed or not
sys.path.insert(0, str(HERE / "_ext"))

import bioleaf  # noqa: E402

project = "BioLeaF"
author = "the BioLeaF authors"
copyright = "2026, the BioLeaF authors"
release = bioleaf.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_parser",
    "cli_reference",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "_ext",
    "figures/*.py",
    "results/*/results.md",  # tables written by `bioleaf compare`; shown through docs/results.md
]

# Markdown pages: $...$ maths, heading anchors for links between pages
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = True

smartquotes = False  # keep "--flag" in prose and in the generated CLI page as typed

html_theme = "alabaster"
html_title = f"BioLeaF {release}"
html_static_path: list[str] = []
