r"""``bptt``: surrogate-gradient backprop through time via autograd (the snnTorch / SpikingJelly /
Norse mainstream), on the same feed-forward network, minimising the count cross-entropy.

The forward spike is the Heaviside step; the backward pass replaces its derivative by

.. math::

    \text{fast-sigmoid:}\ \ \frac{\partial s}{\partial u} = \frac{1}{(k|u| + 1)^2},\qquad
    \text{arctan:}\ \ \frac{\partial s}{\partial u} = \frac{1}{1 + (\pi k u / 2)^2}

with ``u = v - threshold`` and slope ``k``. The graph spans all ``T`` steps, so its memory grows with ``T``.

**Multi-step layers.** The network is feed-forward, so layer ``l``'s currents at all steps,
:math:`I_l = X_{l-1} W_l^{\top}` with ``X`` the traces stacked over time (``[T, n, N]``), are one
matrix product, and the soma runs over time on them (:class:`IFSequence`, the "multi-step mode" of
SpikingJelly). Its backward pass is the exact BPTT of :func:`bioleaf.model.neurons.if_step` with the
surrogate above, run backwards in time with the adjoints (``v'`` the pre-reset potential,
``g`` the incoming gradients of the traces and of the counts ``o``):

.. math::

    \bar x_t = g_{x,t} + \lambda \bar x_{t+1},\quad \bar v_t = \alpha\, \bar v'_{t+1},\quad
    \bar s_t = \bar x_t + g_o - \vartheta\, \bar v_t,\quad
    \bar v'_t = \bar v_t + \bar s_t\, \sigma'(v'_t - \vartheta) = \partial E / \partial I_t

(the reset :math:`v \leftarrow v' - \vartheta s` carries gradient; a refractory step has
:math:`\sigma' = 0`). ``tests/test_bptt.py`` checks it against autograd through the step-by-step
reference (:func:`bioleaf.model.network.simulate` with :func:`surrogate_spike`) to 1e-10 in float64.

Autograd chains the layers through the products; the weight gradient of layer ``l``,
:math:`\sum_{t,\text{rows}} \bar v'_t\, x_{l-1}(t)^{\top}`, is then one product over all ``T n``
rows (:func:`bioleaf.model.weights.batch_outer_sum`). ``grad_sums`` sets its precision: ``float32`` (the
default, the arithmetic of snnTorch) or ``float64``, whose sum does not depend on how the batch is
split across processes, so data-parallel training takes the same float32 steps as one process
(``bioleaf bench`` times both; docs/bench_notes.md).
"""

from __future__ import annotations

import math

import torch

from bioleaf.model.losses import count_cross_entropy, predict
from bioleaf.model.weights import batch_outer_sum, uniform_init
from bioleaf.model.neurons import NeuronParams, heaviside
from bioleaf.rules.base import BatchStats, Rule


def surrogate_derivative(u: torch.Tensor, kind: str, slope: float) -> torch.Tensor:
    """The surrogate :math:`\\partial s/\\partial u` at ``u = v - threshold`` (formulas above)."""
    if kind == "arctan":
        return (u * (math.pi * slope / 2)).square_().add_(1.0).reciprocal_()
    return (u.abs() * slope).add_(1.0).square_().reciprocal_()


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, slope, kind):
        ctx.save_for_backward(u)
        ctx.slope, ctx.kind = slope, kind
        return heaviside(u)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return grad * surrogate_derivative(u, ctx.kind, ctx.slope), None, None


def surrogate_spike(kind: str, slope: float):
    """A spike function for :func:`bioleaf.model.neurons.if_step` with the named surrogate gradient: the
    step-by-step reference that :class:`IFSequence` is checked against."""
    return lambda v, threshold: _Spike.apply(v - threshold, slope, kind)


class IFSequence(torch.autograd.Function):
    """One population over all steps: currents ``[T, n, N]`` -> (traces ``[T, n, N]``, spike counts
    ``[n, N]``, final potentials ``[n, N]``), the same numbers as ``T`` calls of
    :func:`bioleaf.model.neurons.if_step`; the potentials carry no gradient."""

    @staticmethod
    def forward(ctx, currents: torch.Tensor, p: NeuronParams, kind: str, slope: float):
        v = torch.zeros_like(currents[0])
        refrac, count = torch.zeros_like(v), torch.zeros_like(v)
        traces, u = torch.empty_like(currents), torch.empty_like(currents)
        prev = torch.zeros_like(v)
        for t in range(currents.shape[0]):
            if p.alpha != 1.0:
                v.mul_(p.alpha)
            v.add_(currents[t])
            torch.sub(v, p.threshold, out=u[t])
            s = heaviside(u[t])
            if p.refractory > 0:
                blocked = refrac > 0
                s.masked_fill_(blocked, 0.0)
                u[t].masked_fill_(blocked, math.inf)  # no spike possible: surrogate derivative 0
                refrac = torch.clamp(refrac - 1, min=0) + p.refractory * s
            v.sub_(p.threshold * s)
            prev = torch.mul(prev, p.lam, out=traces[t]).add_(s)
            count.add_(s)
        ctx.save_for_backward(u)
        ctx.p, ctx.kind, ctx.slope = p, kind, slope
        ctx.mark_non_differentiable(v)
        return traces, count, v

    @staticmethod
    def backward(ctx, g_traces, g_count, _):
        (u,) = ctx.saved_tensors
        p = ctx.p
        d_current = torch.empty_like(u)
        x_bar = torch.zeros_like(u[0])
        vp_bar = torch.zeros_like(u[0])  # dE/dv'(t+1)
        for t in reversed(range(u.shape[0])):  # step by step: each slice stays in cache
            x_bar.mul_(p.lam).add_(g_traces[t])
            v_bar = vp_bar * p.alpha if p.alpha != 1.0 else vp_bar  # dE/dv(t); vp_bar is d_current[t+1]
            s_bar = x_bar + g_count - p.threshold * v_bar
            vp_bar = torch.addcmul(v_bar, s_bar, surrogate_derivative(u[t], ctx.kind, ctx.slope), out=d_current[t])
        return d_current, None, None, None


def input_traces(stream, steps: int, n: int, n_in: int, lam: float, device=None,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The input layer's traces at every step, ``[T, n, n_in]`` (spikes drawn in step order)."""
    traces = torch.empty(steps, n, n_in, device=device, dtype=dtype)
    prev = torch.zeros(n, n_in, device=device, dtype=dtype)
    for t in range(steps):
        prev = torch.mul(prev, lam, out=traces[t]).add_(stream(t))
    return traces


def multistep_forward(weights: list[torch.Tensor], traces: torch.Tensor, p: NeuronParams, kind: str, slope: float):
    """The network on input ``traces`` ``[T, n, n_in]``: per layer its input traces and its currents
    (the tensors :func:`weight_gradients` differentiates by), then the output counts and potentials."""
    inputs, currents = [], []
    for w in weights:
        inputs.append(traces)
        current = traces @ w.detach().T  # autograd chains through the traces, never into w
        currents.append(current if current.requires_grad else current.requires_grad_())
        traces, counts, potentials = IFSequence.apply(current, p, kind, slope)
    return inputs, currents, counts, potentials


def weight_gradients(loss: torch.Tensor, inputs: list[torch.Tensor], currents: list[torch.Tensor],
                     dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    """``dloss/dW_l``: the batch-and-time sum of ``dloss/dI_l(t) x_{l-1}(t)^T``, summed in ``dtype``."""
    d_currents = torch.autograd.grad(loss, currents)
    return [batch_outer_sum(d.flatten(0, 1), x.flatten(0, 1), dtype) for d, x in zip(d_currents, inputs)]


class BpttRule(Rule):
    """Backprop through time with a surrogate gradient."""


    def __init__(self, cfg, sizes, generator, device):
        super().__init__(cfg, sizes, generator, device)
        self.W = [uniform_init(o, i, cfg.init_scale, generator).to(device).requires_grad_()
                  for i, o in zip(sizes[:-1], sizes[1:])]
        self.optimizer = self.make_optimizer([{"params": [w], "lr": lr}
                                              for w, lr in zip(self.W, cfg.layer_lrs(len(self.W)))])

    @property
    def weights(self):
        return self.W

    def train_batch(self, images, labels, generator):
        c = self.cfg
        stream, labels, n = self.local(images, labels, generator)
        traces = input_traces(stream, c.steps, n, self.sizes[0], c.neuron.lam, self.device)
        inputs, currents, counts, potentials = multistep_forward(self.W, traces, c.neuron, c.surrogate,
                                                                 c.surrogate_slope)
        loss_sum = count_cross_entropy(counts, labels, c.ce_temperature, reduction="sum")
        grads = weight_gradients(loss_sum / images.shape[0], inputs, currents, getattr(torch, c.grad_sums))
        self.reduce(grads)
        for w, g in zip(self.W, grads):
            w.grad = g.to(w.dtype)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        correct = int((predict(counts.detach(), potentials) == labels).sum())
        return BatchStats(float(loss_sum.detach()), correct, n)
