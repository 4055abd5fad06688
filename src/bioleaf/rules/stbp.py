"""``stbp``: the feed-forward spiking network trained by spike-train-level backprop, the explicit
gradient of :func:`bioleaf.model.backprop.stbp_gradients` (formulas there)."""

from __future__ import annotations

import torch

from bioleaf.model.backprop import stbp_gradients
from bioleaf.model.losses import predict, spike_count_error
from bioleaf.model.network import simulate
from bioleaf.model.weights import uniform_init
from bioleaf.rules.base import BatchStats, Rule


class StbpRule(Rule):
    """Spike-train-level backprop on the feed-forward spiking network."""


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
        y = c.targets.of(labels, self.sizes[-1])
        grads = stbp_gradients(self.W, fwd, y, c.neuron.threshold)
        self.apply_changes({f"W{l}": -g for l, g in enumerate(grads)}, 1.0 / images.shape[0])
        correct = int((predict(fwd.output, fwd.potentials) == labels).sum())
        return BatchStats(n * float(spike_count_error(fwd.output, y)), correct, n)
