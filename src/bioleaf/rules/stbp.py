r"""``stbp``: spike-train-level backprop with explicit formulas (no autograd).

Count model of a layer: :math:`o_l \approx [W_l X_{l-1}]_+ / \vartheta`, with :math:`X = \sum_t x(t)`
the summed trace. With the spiking error :math:`E = \tfrac12\sum_k (o_k - y_k)^2`:

.. math::

    \delta_{L} &= (o_L - y) \odot g_L / \vartheta, \qquad g_L = [o_L > 0] \lor [y > o_L]\\
    \delta_{l} &= (W_{l+1}^{\top} \delta_{l+1}) \odot \kappa_l \odot [o_l > 0] / \vartheta,
        \qquad \kappa_l = X_l / o_l \ (= dX/do, \text{ measured per cell})\\
    \partial E / \partial W_l &= \delta_l\, X_{l-1}^{\top}

:math:`\kappa` is the trace mass each spike actually contributed in this presentation (spikes late in
the window contribute less), and the output gate lets a silent cell that should fire receive its
error (a surrogate for silent cells). BioLeaF's equivalence is shown against this same definition.
"""

from __future__ import annotations

import torch

from ..losses import predict, spike_count_error, target_counts
from ..network import Forward, batch_outer_sum, simulate
from ..microcircuit import uniform_init
from .base import BatchStats, Rule


def stbp_gradients(weights: list[torch.Tensor], fwd: Forward, targets: torch.Tensor,
                   threshold: float) -> list[torch.Tensor]:
    """``dE/dW_l`` summed over the batch, for every layer (formulas above), in float64.

    The per-sample factors are computed row by row in the working precision; only the sum over the
    batch is taken in float64, so it hardly depends on how the batch is split into shards (data
    parallelism) and the float32 step rounds to the same value as in one process.
    """
    o = fwd.counts
    delta = (o[-1] - targets) * ((o[-1] > 0) | (targets > o[-1])).to(targets.dtype) / threshold
    grads = [batch_outer_sum(delta, fwd.trace_sums[-2])]
    for l in range(len(weights) - 2, -1, -1):
        active = o[l] > 0
        kappa = torch.where(active, fwd.trace_sums[l + 1] / torch.where(active, o[l], 1.0), 0.0)
        delta = (delta @ weights[l + 1]) * kappa / threshold
        grads.append(batch_outer_sum(delta, fwd.trace_sums[l]))
    return grads[::-1]



class StbpRule(Rule):
    """Spike-train-level backprop on the feed-forward spiking network."""

    name = "stbp"

    def __init__(self, cfg, sizes, generator, device):
        super().__init__(cfg, sizes, generator, device)
        self.W = [uniform_init(o, i, cfg.init_scale, generator).to(device) for i, o in zip(sizes[:-1], sizes[1:])]
        self.optimizer = self.make_optimizer([{"params": [w], "lr": lr}
                                              for w, lr in zip(self.W, cfg.layer_lrs(len(self.W)))])

    @property
    def weights(self):
        return self.W

    @torch.no_grad()
    def train_batch(self, images, labels, generator):
        c = self.cfg
        stream, labels, n = self.local(images, labels, generator)
        fwd = simulate(self.W, stream, batch=n, steps=c.steps, neuron=c.neuron)
        y = target_counts(labels, self.sizes[-1], c.circuit.target_high, c.circuit.target_low)
        grads = stbp_gradients(self.W, fwd, y, c.neuron.threshold)
        self.apply_changes({f"W{l}": -g for l, g in enumerate(grads)}, 1.0 / images.shape[0])
        correct = int((predict(fwd.output, fwd.potentials) == labels).sum())
        return BatchStats(n * float(spike_count_error(fwd.output, y)), correct, n)
