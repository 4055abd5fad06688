r"""The bottom-up pathway alone: a feed-forward spiking network.

This is the inference network of every rule (the teacher is off at test time and the apical
compartments are decoupled), the network the bptt twin differentiates through, and the forward
pass from which stbp reads spike counts :math:`o_l` and trace sums :math:`X_l = \sum_t x_l(t)`:

.. math::  I_l(t) = W_l\, x_{l-1}(t), \qquad s_l(t), x_l(t) \text{ from } :func:`bioleaf.neurons.if_step`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .encoding import SpikeStream
from .neurons import NeuronParams, SpikeFn, heaviside, if_init, if_step


def batch_outer_sum(post: torch.Tensor, pre: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``post.T @ pre``: the per-sample outer products ``[n_post, n_pre]`` summed over the batch rows,
    by default in float64, so the sum does not depend on how the batch is split across processes."""
    return post.to(dtype).T @ pre.to(dtype)


@dataclass
class Forward:
    """Spike counts ``o_l`` and trace sums ``X_l`` per layer (``X[0]`` is the input's), and the
    output cells' final membrane potentials."""

    counts: list[torch.Tensor]
    trace_sums: list[torch.Tensor]
    potentials: torch.Tensor

    @property
    def output(self) -> torch.Tensor:
        return self.counts[-1]


def simulate(weights: list[torch.Tensor], spikes: SpikeStream, *, batch: int, steps: int,
             neuron: NeuronParams, spike_fn: SpikeFn = heaviside) -> Forward:
    """Run ``steps`` time steps on the input spike stream; differentiable through ``weights`` when
    ``spike_fn`` has a surrogate gradient (otherwise call it under ``torch.no_grad()``)."""
    dev = weights[0].device
    states = [if_init(batch, w.shape[0], device=dev) for w in weights]
    x_in = torch.zeros(batch, weights[0].shape[1], device=dev)
    sums = [torch.zeros_like(x_in)] + [torch.zeros(batch, w.shape[0], device=dev) for w in weights]
    for t in range(steps):
        x_in = neuron.lam * x_in + spikes(t)
        sums[0] = sums[0] + x_in
        pre = x_in
        for l, w in enumerate(weights):
            _, states[l] = if_step(pre @ w.T, states[l], neuron, spike_fn)
            pre = states[l].trace
            sums[l + 1] = sums[l + 1] + pre
    return Forward([s.count for s in states], sums, states[-1].v)
