r"""Error functions on output spike counts, and the prediction rule.

The **spiking error function** (SPEC) compares output spike counts :math:`o_k` with target counts
:math:`y_k` (:class:`CountTargets`: ``high`` for the label, ``low`` for the others):

.. math::  E = \tfrac12 \sum_k (o_k - y_k)^2

The **count cross-entropy** used by the bptt twin treats scaled counts as logits:

.. math::  L = -\log \mathrm{softmax}(o / \tau)_{label}
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bioleaf.errors import UsageError


def target_counts(labels: torch.Tensor, num_classes: int, high: float, low: float) -> torch.Tensor:
    """Target spike counts ``y``: ``high`` at the label, ``low`` elsewhere; shape ``[batch, classes]``."""
    y = torch.full((labels.shape[0], num_classes), float(low), device=labels.device)
    return y.scatter_(1, labels.view(-1, 1), float(high))


@dataclass(frozen=True)
class CountTargets:
    """The target spike counts of the spiking error function: ``high`` for the labelled output cell, ``low`` for
    the others (``--target-high``, ``--target-low``)."""

    high: float = 10.0
    low: float = 0.0

    def validate(self, steps: int) -> "CountTargets":
        """Raise :class:`UsageError` unless ``0 <= low < high <= steps`` (a cell spikes at most once per step)."""
        for name in ("high", "low"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise UsageError(f"--target-{name}: expected a number, got {value!r}")
        if 0 <= self.low < self.high < math.inf and self.high > steps:
            raise UsageError(f"--steps/--target-high: a cell spikes at most once per step, so --target-high "
                             f"{self.high} needs --steps >= {math.ceil(self.high)}, got --steps {steps}")
        if not 0 <= self.low < self.high <= steps:
            raise UsageError(f"--target-high/--target-low: expected 0 <= low < high <= steps ({steps}) "
                             f"spikes, got low={self.low}, high={self.high}")
        return self

    def of(self, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
        """The targets of ``labels``, ``[batch, classes]`` (:func:`target_counts`)."""
        return target_counts(labels, num_classes, self.high, self.low)


def spike_count_error(counts: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``E = 1/2 sum_k (o_k - y_k)^2``, averaged over the batch."""
    return 0.5 * ((counts - targets) ** 2).sum(dim=1).mean()


def count_cross_entropy(counts: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0,
                        reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy with output spike counts as logits (divided by ``temperature``)."""
    return F.cross_entropy(counts / temperature, labels, reduction=reduction)


def predict(counts: torch.Tensor, potentials: torch.Tensor) -> torch.Tensor:
    """Predicted class: the output cell with the most spikes.

    Ties are broken by the highest final membrane potential (the cell closest to its next spike),
    then by the lowest index. Potentials are below threshold after reset, so adding a value
    squashed into (0, 1) to the integer counts never overturns a count difference.
    """
    return torch.argmax(counts + torch.sigmoid(potentials) * 0.999, dim=1)
