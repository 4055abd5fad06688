"""Sphinx configuration of the BioLeaF reference docs (``bash scripts/docs.sh``)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))  # document the checkout, installed or not
sys.path.insert(0, str(HERE / "_ext"))

import bioleaf  # noqa: E402
import torch  # noqa: E402

# The gallery runs examples/*.py in this process at the quick size (fewer epochs or samples), on one thread
# as every published run does (a docs build shares the machine with whatever else runs there).
os.environ.setdefault("BIOLEAF_QUICK", "1")
torch.set_num_threads(1)

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
    "sphinx_gallery.gen_gallery",
    "cli_reference",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "_ext",
    "figures/*.py",
    "results/*/results.md",  # tables written by `bioleaf compare`; shown through docs/results.md
    "auto_examples/*.ipynb",
]

# The gallery: every script in examples/, executed by the build; its pages go to docs/auto_examples
# (generated, not committed).
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": re.escape(os.sep),  # execute every example, not only plot_*.py
    "within_subsection_order": "gallery_order.TutorialOrder",
    "download_all_examples": False,
    "show_signature": False,
    "capture_repr": (),
    "remove_config_comments": True,
    "write_computation_times": False,
    "min_reported_time": 3600,  # no "total running time" footer: it would change with the machine
}

# Markdown pages: $...$ maths, heading anchors for links between pages
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = True

smartquotes = False  # keep "--flag" in prose and in the generated CLI page as typed

html_theme = "furo"
html_title = f"BioLeaF {release}"
html_static_path: list[str] = []
