r"""``bptt``: surrogate-gradient backprop through time via autograd (the snnTorch / SpikingJelly /
Norse mainstream), on the same feed-forward network, minimising the count cross-entropy.

The forward spike is the Heaviside step; the backward pass replaces its derivative by

.. math::

    \text{fast-sigmoid:}\ \ \frac{\partial s}{\partial u} = \frac{1}{(k|u| + 1)^2},\qquad
    \text{arctan:}\ \ \frac{\partial s}{\partial u} = \frac{1}{1 + (\pi k u / 2)^2}

with ``u = v - threshold`` and slope ``k``. The graph spans all ``T`` steps, so its memory grows with ``T``.

The forward pass and the backward pass through the cells run in float32; only the weight gradient
of each step, the sum over the batch of :math:`\partial E/\partial I_l(t)\, x_{l-1}(t)^{\top}`, is
accumulated in float64 (:class:`_Float64GradWeight`), so it does not depend on how the batch is
split across processes and data-parallel training takes the same float32 steps as one process.
"""

from __future__ import annotations

import math

import torch

from ..losses import count_cross_entropy, predict
from ..microcircuit import uniform_init
from ..network import batch_outer_sum, simulate
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


class _Linear64(torch.autograd.Function):
    """``x @ w.T`` with the float32 weights ``w``; their gradient, summed over the batch in float64,
    goes to the float64 leaf ``w64``."""

    @staticmethod
    def forward(ctx, x, w, w64):
        ctx.save_for_backward(x, w)
        return x @ w.T

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        grad_x = grad @ w if ctx.needs_input_grad[0] else None
        return grad_x, None, batch_outer_sum(grad, x)


class _Float64GradWeight:
    """Stands in for one weight matrix ``w`` in :func:`bioleaf.network.simulate`, which only reads its
    ``shape`` and ``device`` and computes ``x @ w.T``: that product runs as :class:`_Linear64`, so the
    weight gradient accumulates in float64 in ``w64.grad`` (any other use fails loudly)."""

    def __init__(self, w: torch.Tensor, w64: torch.Tensor):
        self.w, self.w64, self.shape, self.device = w, w64, w.shape, w.device

    @property
    def T(self) -> "_Float64GradWeight._Transposed":
        return self._Transposed(self)

    class _Transposed:
        def __init__(self, weight: "_Float64GradWeight"):
            self.weight = weight

        def __rmatmul__(self, x: torch.Tensor) -> torch.Tensor:
            return _Linear64.apply(x, self.weight.w, self.weight.w64)


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
        weights64 = [w.detach().to(torch.float64).requires_grad_() for w in self.W]  # float64 gradient sums
        weights = [_Float64GradWeight(w.detach(), w64) for w, w64 in zip(self.W, weights64)]
        fwd = simulate(weights, stream, batch=n, steps=c.steps, neuron=c.neuron, spike_fn=self.spike_fn)
        loss_sum = count_cross_entropy(fwd.output, labels, c.ce_temperature, reduction="sum")
        (loss_sum / images.shape[0]).backward()
        grads = [w64.grad if w64.grad is not None else torch.zeros_like(w64) for w64 in weights64]
        self.reduce(grads)
        for w, g in zip(self.W, grads):
            w.grad = g.to(w.dtype)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        correct = int((predict(fwd.output.detach(), fwd.potentials.detach()) == labels).sum())
        return BatchStats(float(loss_sum.detach()), correct, n)
