r"""``bptt``: surrogate-gradient backprop through time via autograd (the snnTorch / SpikingJelly /
Norse mainstream), on the same feed-forward network, minimising the count cross-entropy.

The forward spike is the Heaviside step; the backward pass replaces its derivative by

.. math::

    \text{fast-sigmoid:}\ \ \frac{\partial s}{\partial u} = \frac{1}{(k|u| + 1)^2},\qquad
    \text{arctan:}\ \ \frac{\partial s}{\partial u} = \frac{1}{1 + (\pi k u / 2)^2}

with ``u = v - threshold`` and slope ``k``. The graph spans all ``T`` steps, so its memory grows with ``T``.
"""

from __future__ import annotations

import math

import torch

from ..losses import count_cross_entropy, predict
from ..microcircuit import uniform_init
from ..network import simulate
from .base import BatchStats, Rule


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, slope, kind):
        ctx.save_for_backward(u)
        ctx.slope, ctx.kind = slope, kind
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        k = ctx.slope
        if ctx.kind == "arctan":
            d = 1.0 / (1.0 + (math.pi * k * u / 2) ** 2)
        else:
            d = 1.0 / (k * u.abs() + 1.0) ** 2
        return grad * d, None, None


def surrogate_spike(kind: str, slope: float):
    """A spike function for :func:`bioleaf.neurons.if_step` with the named surrogate gradient."""
    return lambda u: _Spike.apply(u, slope, kind)


class BpttRule(Rule):
    """Backprop through time with a surrogate gradient."""

    name = "bptt"

    def __init__(self, cfg, sizes, generator, device):
        super().__init__(cfg, sizes, generator, device)
        self.W = [uniform_init(o, i, cfg.init_scale, generator).to(device).requires_grad_()
                  for i, o in zip(sizes[:-1], sizes[1:])]
        self.optimizer = self.make_optimizer([{"params": [w], "lr": lr}
                                              for w, lr in zip(self.W, cfg.layer_lrs(len(self.W)))])
        self.spike_fn = surrogate_spike(cfg.surrogate, cfg.surrogate_slope)

    @property
    def weights(self):
        return self.W

    def train_batch(self, images, labels, generator):
        c = self.cfg
        stream, labels, n = self.local(images, labels, generator)
        fwd = simulate(self.W, stream, batch=n, steps=c.steps, neuron=c.neuron, spike_fn=self.spike_fn)
        loss_sum = count_cross_entropy(fwd.output, labels, c.ce_temperature, reduction="sum")
        self.optimizer.zero_grad(set_to_none=True)
        (loss_sum / images.shape[0]).backward()
        self.reduce([w.grad for w in self.W])
        self.optimizer.step()
        correct = int((predict(fwd.output.detach(), fwd.potentials.detach()) == labels).sum())
        return BatchStats(float(loss_sum), correct, n)
