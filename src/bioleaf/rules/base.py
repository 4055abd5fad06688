"""The trainer interface every rule implements, and the shared optimiser set-up.

A rule owns its synapses and its optimiser. Whatever computes the change (explicit ST-BP formulas,
autograd, or the local plasticity of the microcircuit), it writes ``-change`` into ``.grad`` and
takes one optimiser step, so all rules share SGD-with-momentum and Adam with the same flags.
Per-synapse optimiser state (momentum, Adam moments) depends only on that synapse's own past
updates, so it is local too.

Data parallelism: a rule is handed the whole (global) batch and simulates only its ``shard`` of
the rows; ``reduce`` sums the changes of all shards (an all-reduce, or nothing in one process)
before the step, so every process takes the same step. Rules hand over their batch sums in float64
where they can: the float64 sum of the shards' sums then equals the one-process sum to ~1e-16, so
the float32 step is (up to a rounding tie) the same bits with any number of processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from bioleaf.config import TrainConfig
from bioleaf.model.encoding import Encoder, SpikeStream
from bioleaf.model.losses import predict
from bioleaf.model.network import Forward, simulate


@dataclass
class BatchStats:
    """Summed training loss and number of correct predictions over the samples simulated here."""

    loss_sum: float
    correct: int
    samples: int


Reducer = Callable[[list[torch.Tensor]], None]
"""Sums a list of tensors over the processes of data-parallel training, in place."""


def no_reduce(tensors: list[torch.Tensor]) -> None:
    """Single process: the local sums are already the global ones."""


class Rule:
    """Base class: synapses by name, an optimiser, inference through the bottom-up pathway."""

    g_basal = 1.0
    """Basal -> soma coupling of the hidden somata in the inference network (the microcircuit's ``g_B``)."""

    def __init__(self, cfg: TrainConfig, sizes: list[int], generator: torch.Generator, device: torch.device):
        self.cfg, self.sizes, self.device = cfg, sizes, device
        self.encoder: Encoder = cfg.encoder_obj()
        self.optimizer: torch.optim.Optimizer | None = None
        self.shard: slice | None = None
        self.reduce: Reducer = no_reduce
        # sees every batch's summed changes and their scale before the optimiser step (bioleaf.tools.locality)
        self.change_observer: Callable[[dict[str, torch.Tensor], float], None] | None = None

    @property
    def weights(self) -> list[torch.Tensor]:
        """The bottom-up weights ``W[l]``, each ``[n_l, n_{l-1}]``, the inference network."""
        raise NotImplementedError

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every learned tensor by name (checkpointed)."""
        return self.synapses()

    def synapses(self) -> dict[str, torch.Tensor]:
        """The synapses by name (``model.safetensors``): ``W0``, ``W1``, ... and, in the microcircuit,
        the feedback and interneuron synapses ``B``, ``P``, ``Q``."""
        return {f"W{l}": w for l, w in enumerate(self.weights)}

    def train_batch(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> BatchStats:
        """One learning step on the global batch ``images`` (this process simulates ``shard``)."""
        raise NotImplementedError

    def self_predicting_batches(self) -> int:
        """Batches of the initial self-predicting phase still to present (none for rules without one)."""
        return 0

    def self_predict(self, images: torch.Tensor, generator: torch.Generator) -> list[float]:
        """One teacher-free presentation that trains only the lateral synapses (rules with a free phase)."""
        raise NotImplementedError

    def after_load(self) -> None:
        """Re-establish derived state after tensors were loaded from a checkpoint."""

    def local(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None,
              steps: int | None = None) -> tuple[SpikeStream, torch.Tensor, int]:
        """The input spikes (of ``steps`` steps, default ``T``) and labels of this process's shard, and the shard
        size."""
        stream = self.encoder.stream(images, steps or self.cfg.steps, generator, self.shard)
        labels = labels if self.shard is None else labels[self.shard]
        return stream, labels, labels.shape[0]

    @torch.no_grad()
    def forward(self, images: torch.Tensor, generator: torch.Generator | None) -> Forward:
        """The network with the teacher off (bottom-up pathway only), all rows."""
        return simulate(self.weights, self.encoder.stream(images, self.cfg.steps, generator),
                        batch=images.shape[0], steps=self.cfg.steps, neuron=self.cfg.neuron, g_basal=self.g_basal)

    def infer(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Predicted classes with the teacher off, all rows."""
        fwd = self.forward(images, generator)
        return predict(fwd.output, fwd.potentials)

    def make_optimizer(self, groups: list[dict]) -> torch.optim.Optimizer:
        """SGD (with momentum) or Adam over parameter groups ``{"params": [...], "lr": ...}``."""
        cfg = self.cfg
        for g in groups:
            g.setdefault("weight_decay", cfg.weight_decay)
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=cfg.learning_rate, momentum=cfg.momentum)
        return torch.optim.Adam(groups, lr=cfg.learning_rate)

    def scale_learning_rates(self, factor: float) -> None:
        """Set every parameter group's learning rate to ``factor`` times its initial one (a schedule)."""
        for group in self.optimizer.param_groups:
            group["lr"] = group.setdefault("initial_lr", group["lr"]) * factor

    def apply_changes(self, changes: dict[str, torch.Tensor], scale: float) -> None:
        """Sum ``changes`` over processes (in their own precision, float64 where a rule accumulates in
        float64), write ``-scale * change`` into each named tensor's ``.grad`` (in the tensor's dtype)
        and take one optimiser step."""
        self.reduce(list(changes.values()))
        if self.change_observer is not None:
            self.change_observer(changes, scale)
        tensors = self.tensors()
        for name, change in changes.items():
            tensors[name].grad = (-scale * change).to(tensors[name].dtype)
        self.optimizer.step()
        for name in changes:
            tensors[name].grad = None
