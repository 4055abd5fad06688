#!/usr/bin/env bash
# Set up, then train the fashion-mnist-one-presentation BioLeaF circuit (local learning only: no label) on Fashion-MNIST
# (or the bundled digits if it is absent) with the preset behind docs/results.md, three seeds two at a time, and print
# the headline row of its table (test accuracy mean +- std). Extra arguments go to `bioleaf compare` (e.g. --jobs 1,
# --seeds 0).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
rm -rf runs/main  # this script's own output: every call trains afresh (compare reuses finished runs of the same settings)
exec .venv/bin/bioleaf compare --preset fashion-mnist-one-presentation --rules bioleaf --feedbacks direct \
    --seeds 0,1,2 --jobs 2 --out runs/main "$@"
