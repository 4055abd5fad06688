#!/usr/bin/env bash
# Set up, then train BioLeaF on Fashion-MNIST (or the bundled digits if it is absent) with the
# preset behind docs/results.md, and print the test accuracy. Extra arguments go to `bioleaf train`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/bioleaf train --preset fashion-mnist --out runs/main --overwrite "$@"
