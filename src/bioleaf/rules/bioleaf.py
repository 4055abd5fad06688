"""``bioleaf``: the dendritic microcircuit trained by its local plasticity rules only.

Schedule of one batch (SPEC: a free phase followed by a teacher phase on the same input spikes):

1. **free phase** (only when ``P``/``Q`` or ``B`` are plastic): no teacher; the interneurons learn
   to predict their partners (``P``), the apical inhibition learns to cancel the top-down input
   (``Q``) and, with learned feedback, ``B`` mirrors the layer above. This keeps the circuit in the
   self-predicting state while ``W`` changes.
2. **teacher phase**, replaying the same input spikes: the teacher current nudges the output cells
   and the bottom-up ``W`` learn by error-gated STDP on their apical error.

With ideal interneurons and symmetric feedback (the special circumstance) nothing lateral is
plastic and only the teacher phase runs. Before the first teacher phase, the trainer presents
``self_predict_batches`` different random training batches in the free phase alone: the initial
self-predicting phase (:meth:`bioleaf.train.Trainer.self_predicting_phase`).
"""

from __future__ import annotations

import math

import torch

from ..equivalence import agreement, spiking_updates
from ..losses import predict, spike_count_error, target_counts
from ..microcircuit import Microcircuit, Plasticity, build_circuit, present
from .base import BatchStats, Rule


class BioleafRule(Rule):
    """Local learning in the dendritic microcircuit."""


    def __init__(self, cfg, sizes, generator, device):
        super().__init__(cfg, sizes, generator, device)
        p = cfg.circuit
        p.apical_couplings(len(sizes) - 2)  # a wrong count of multipliers fails here, before any training
        self.g_basal = p.g_basal
        self.circuit: Microcircuit = build_circuit(sizes, p, generator, cfg.init_scale, device)
        hidden = len(sizes) > 2
        self.lateral = Plasticity(W=False, P=hidden and p.interneurons == "learned",
                                  Q=hidden and p.interneurons == "learned", B=hidden and p.feedback == "learned")
        groups = [{"params": [w], "lr": lr} for w, lr in zip(self.circuit.W, cfg.layer_lrs(len(self.circuit.W)))]
        if self.lateral.P:
            groups.append({"params": self.circuit.P + self.circuit.Q, "lr": cfg.lr_interneuron})
        if self.lateral.B:
            groups.append({"params": self.circuit.B, "lr": cfg.lr_feedback, "weight_decay": cfg.feedback_decay})
        self.optimizer = self.make_optimizer(groups)
        self.has_free_phase = self.lateral.P or self.lateral.B
        self.self_predict_left = torch.tensor(cfg.self_predict_batches if self.has_free_phase else 0)
        self.last_apical_residual: list[float] = []

    @property
    def weights(self):
        return self.circuit.W

    def synapses(self):
        return self.circuit.tensors()

    def tensors(self):
        return {**self.circuit.tensors(), "self_predict_left": self.self_predict_left}

    def self_predicting_batches(self):
        return int(self.self_predict_left)

    def after_load(self):
        self.circuit.sync_ideal(self.cfg.circuit)

    def diagnostics(self, images, labels):
        """On a fixed probe batch with fixed spikes: the angle (degrees) between this circuit's ``W`` updates
        and the ST-BP gradient per layer, the teacher-free apical residual (mean ``|A| / T`` per hidden
        layer) and that residual relative to the same cells' apical signal in the teacher phase (0: the
        interneurons cancel every top-down input the teacher did not cause)."""
        gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed + 4)
        updates, grads, residual = spiking_updates(self.circuit, images, labels, self.cfg, gen)
        angles = [math.degrees(math.acos(max(-1.0, min(1.0, row["cosine"])))) for row in agreement(updates, grads)]
        ratio = [free / taught if taught > 0 else math.nan for free, taught in zip(residual.free, residual.teacher)]
        return {"stbp_angle_deg": angles, "apical_residual": residual.free, "apical_residual_ratio": ratio}

    def _present(self, images, labels, targets, generator, learn: Plasticity, baseline=None, apply=True):
        """One presentation of this process's shard; applies (all-reduced) updates if any and ``apply``."""
        c = self.cfg
        stream, _, n = self.local(images, labels, generator)
        res = present(self.circuit, stream, targets, batch=n, steps=c.steps, neuron=c.neuron,
                      params=c.circuit, learn=learn, apical_baseline=baseline)
        if res.updates and apply:
            self._apply(res.updates, images.shape[0])
        return res

    def _apply(self, updates, batch):
        self.apply_changes(updates, 1.0 / batch)
        self.circuit.sync_ideal(self.cfg.circuit)

    def self_predict(self, images, generator) -> list[float]:
        """One free-phase presentation (no teacher, lateral synapses plastic), counted against the initial
        self-predicting phase's batches; the apical residual."""
        if int(self.self_predict_left) > 0:
            self.self_predict_left -= 1
        labels = torch.zeros(images.shape[0], dtype=torch.long, device=images.device)
        return self._present(images, labels, None, generator, self.lateral).apical_residual

    def train_batch(self, images, labels, generator):
        c = self.cfg
        local_labels = labels if self.shard is None else labels[self.shard]
        y = target_counts(local_labels, self.sizes[-1], c.circuit.target_high, c.circuit.target_low)
        free = None
        if self.has_free_phase:
            replay = generator.get_state()
            free = self._present(images, labels, None, generator, self.lateral, apply=False)
            generator.set_state(replay)
        baseline = free.apical_sums if free is not None and c.circuit.contrastive else None
        teach = self._present(images, labels, y, generator, Plasticity(W=True), baseline, apply=False)
        # every change of this batch (free-phase P, Q, B and teacher-phase W) in one synchronous step
        self._apply({**(free.updates if free is not None else {}), **teach.updates}, images.shape[0])
        self.last_apical_residual = (free or teach).apical_residual
        if teach.free_output is not None:  # the teacher-free copy: what inference would answer
            counts, potentials = teach.free_output
        else:
            counts = teach.basal_counts if free is None else free.counts
            potentials = teach.potentials if free is None else free.potentials
        correct = int((predict(counts, potentials) == local_labels).sum())
        n = local_labels.shape[0]
        return BatchStats(n * float(spike_count_error(counts, y)), correct, n)
