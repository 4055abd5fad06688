"""The peers of the bench: our ``bptt`` network built from the parts of other SNN libraries, each trained by BPTT
in its library's usual way, from our initial weights, on the same input spike frames.

- :mod:`bioleaf.tools.bench.peers.base`: what they share (the neuron, the layers and traces, the training loop);
- :mod:`bioleaf.tools.bench.peers.snntorch_twin`: snnTorch (``Leaky``, step by step), required by the bench;
- :mod:`bioleaf.tools.bench.peers.norse_twin`: Norse (``LIFBoxCell``, step by step), optional;
- :mod:`bioleaf.tools.bench.peers.spikingjelly_twin`: SpikingJelly (``LIFNode``, multi-step), optional.

A missing optional peer is skipped (:func:`installed`); a missing snnTorch stops the bench.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

import torch

from bioleaf.config import TrainConfig
from bioleaf.tools.bench.peers.base import TWIN_NEURON, PeerTrainer, TwinStats
from bioleaf.tools.bench.peers.norse_twin import NorseTrainer
from bioleaf.tools.bench.peers.snntorch_twin import SnnTorchTrainer, SnnTorchTwin, require_snntorch
from bioleaf.tools.bench.peers.spikingjelly_twin import SpikingJellyTrainer

PEERS = {"snntorch": SnnTorchTrainer, "norse": NorseTrainer, "spikingjelly": SpikingJellyTrainer}
"""Every peer by its name in the bench (the name of its Python package) and its trainer."""
OPTIONAL_PEERS = ("norse", "spikingjelly")
"""The peers the bench skips when their package is missing."""
SKIPPED = "skipped: not installed"
"""What the bench reports for an optional peer whose package is missing."""

__all__ = ["OPTIONAL_PEERS", "PEERS", "SKIPPED", "TWIN_NEURON", "PeerTrainer", "SnnTorchTrainer", "SnnTorchTwin",
           "TwinStats", "installed", "make_peer", "package_version", "require_snntorch"]


def installed(name: str) -> bool:
    """Whether the package of the peer ``name`` imports."""
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def package_version(name: str) -> str:
    """The installed version of the peer ``name``'s distribution, or ``"unknown"`` where it has no metadata."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def make_peer(name: str, cfg: TrainConfig, sizes: list[int], weights: list[torch.Tensor]) -> PeerTrainer:
    """The trainer of the peer ``name`` for the configuration ``cfg`` of our ``bptt``, starting from ``weights``
    (:class:`~bioleaf.errors.UsageError` when its package is missing)."""
    return PEERS[name](cfg, sizes, weights)
