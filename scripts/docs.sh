#!/usr/bin/env bash
# Build the HTML reference docs (API from the docstrings, CLI from the parser, the Markdown pages)
# into docs/_build/html, with every warning an error. Extra arguments go to sphinx-build.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c 'import sphinx, myst_parser, furo, sphinx_gallery' 2>/dev/null; then
  .venv/bin/pip install -q -e ".[docs]"
fi
exec .venv/bin/python -m sphinx -W --keep-going -b html docs docs/_build/html "$@"
