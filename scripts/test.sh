#!/usr/bin/env bash
# Set up, then run the whole test suite and build the reference docs with warnings as errors (what CI
# runs). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest "$@"
bash scripts/docs.sh -q
