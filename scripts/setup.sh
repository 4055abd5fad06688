#!/usr/bin/env bash
# Set up BioLeaF on a fresh Debian machine: the Fashion-MNIST package, a virtual environment,
# the pinned CPU build of PyTorch, the package with its test and benchmark extras, and the optional
# peers of bioleaf bench (Norse, SpikingJelly).
# Idempotent: a second run only checks. Sourced by scripts/main.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
TORCH_PIN=${TORCH_PIN:-torch==2.13.0}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

if ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
  if command -v apt-get >/dev/null && as_root apt-get update -qq && as_root apt-get install -y -qq dataset-fashion-mnist >/dev/null; then
    echo "setup: installed dataset-fashion-mnist"
  else
    echo "setup: notice: could not install dataset-fashion-mnist; the bundled digits dataset will be used" >&2
  fi
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "setup: Python >= 3.11 is required" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    as_root apt-get install -y -qq python3-venv >/dev/null
    "$PYTHON" -m venv .venv
  fi
fi
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  .venv/bin/pip install -q "$TORCH_PIN"   # pinned CPU build first: a loose requirement would pull CUDA
fi
.venv/bin/pip install -q -e ".[test,bench,docs]"
# The peers without their declared dependencies: torchvision and torchaudio would replace the pinned CPU torch
# (loguru, which SpikingJelly needs, and nir/nirtorch, which Norse needs, come with the bench extra).
.venv/bin/pip install -q --no-deps "norse==1.1.0" "spikingjelly==2.0.0"
