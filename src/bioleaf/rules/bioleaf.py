"""``bioleaf``: the dendritic microcircuit trained by its local plasticity rules only.

Schedule of one batch (SPEC: a free phase followed by a teacher phase on the same input spikes):

1. **free phase** (only when ``P``/``Q`` or ``B`` are plastic): no teacher; the interneurons learn
   to predict their partners (``P``) and the apical inhibition learns to cancel the top-down input
   (``Q``). This keeps the circuit in the self-predicting state while ``W`` changes. Each cell keeps
   its free-phase apical integral and spike count (:class:`bioleaf.model.circuit.presentation.FreePhaseMemory`).
2. **teacher phase**, on the same input spikes: the teacher current nudges the output cells and the
   bottom-up ``W`` learn from their apical error, gated by their own spiking, on presentation sums
   (:func:`bioleaf.model.plasticity.basal_error_integrated`); learned feedback ``B`` takes the
   increments of its mirror ``W`` of the layer above, read from the change of its presynaptic cells'
   counts (Kolen-Pollack, :func:`bioleaf.model.plasticity.feedback_kolen_pollack`).

The two phases run side by side in one time loop on the same input spikes, as one batch of twice the rows
(:func:`bioleaf.model.circuit.presentation.present_phases`). With ``--schedule one-presentation`` they are the two
periods of one continuous presentation instead, the free period first, on the input spikes of each moment
(:func:`bioleaf.model.circuit.periods.present_periods`): the interneurons learn to predict their partners and
cancel the top-down input in the free period, and once the teacher is on each apical compartment passes on its
potential against its own slow trace of the free period, the cell's error.

With ideal interneurons and symmetric feedback (the special circumstance) nothing lateral is
plastic and only the teacher phase runs. Before the first teacher phase, the trainer presents
``self_predict_batches`` different random training batches in the free phase alone: the initial
self-predicting phase (:meth:`bioleaf.training.trainer.Trainer.self_predicting_phase`).
"""

from __future__ import annotations

import torch

from bioleaf.model.circuit import (Microcircuit, Observer, Plasticity, build_circuit, present, present_periods,
                                   present_phases)
from bioleaf.model.losses import predict, spike_count_error
from bioleaf.rules.base import BatchStats, Rule


class BioleafRule(Rule):
    """Local learning in the dendritic microcircuit."""


    def __init__(self, cfg, sizes, generator, device):
        super().__init__(cfg, sizes, generator, device)
        p = cfg.circuit
        p.validate_depth(len(sizes) - 2)  # without --arch the depth is known only here, before any training
        self.g_basal = p.g_basal
        self.circuit: Microcircuit = build_circuit(sizes, p, generator, cfg.init_scale, device)
        hidden = len(sizes) > 2
        learned = hidden and p.interneurons == "learned"
        self.lateral = Plasticity(W=False, P=learned, Q=learned)
        self.learning = Plasticity(W=True, B=hidden and p.feedback == "learned")
        lrs = cfg.layer_lrs(len(self.circuit.W))
        groups = [{"params": [w], "lr": lr} for w, lr in zip(self.circuit.W, lrs)]
        if self.lateral.P:
            groups.append({"params": [t for t in self.circuit.P + self.circuit.Q if t.numel()],  # absent: no synapse
                           "lr": cfg.lr_interneuron})
        if self.learning.B:  # each B_l steps like its mirror W_{l+1} (plasticity.feedback_kolen_pollack)
            groups += [{"params": [b], "lr": lr} for b, lr in zip(self.circuit.B, lrs[1:])]
        self.optimizer = self.make_optimizer(groups)
        self.has_free_phase = self.lateral.P or self.learning.B
        self.one_presentation = p.one_presentation()
        self.presentation_steps = cfg.steps + (p.free_steps if self.one_presentation else 0)
        self.decays_upper = hidden and p.reads_count_change()  # W above the lowest hidden layer decays
        self.self_predict_left = torch.tensor(cfg.self_predict_batches if self.has_free_phase else 0)
        self.last_apical_residual: list[float] = []
        self.observer: Observer | None = None  # sees every soma of every presentation (bioleaf.tools.locality)

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

    def _present(self, images, labels, targets, generator, learn: Plasticity):
        """One presentation of this process's shard (no teacher when ``targets`` is ``None``)."""
        stream, _, n = self.local(images, labels, generator)
        return present(self.circuit, stream, targets, self.cfg.context, batch=n, learn=learn, observer=self.observer)

    def _present_phases(self, images, labels, targets, generator):
        """The free and the teacher phase of this process's shard: side by side (:func:`present_phases`), or the
        free and the teacher period of one presentation (:func:`present_periods`; without ``targets`` all free)."""
        if self.one_presentation:
            stream, _, n = self.local(images, labels, generator, self.presentation_steps)
            return present_periods(self.circuit, stream, targets, self.cfg.context, batch=n, lateral=self.lateral,
                                   learn=self.learning, observer=self.observer)
        stream, _, n = self.local(images, labels, generator)
        return present_phases(self.circuit, stream, targets, self.cfg.context, batch=n, lateral=self.lateral,
                              learn=self.learning, observer=self.observer)

    def _apply(self, updates, batch):
        self.apply_changes(updates, 1.0 / batch)
        if self.decays_upper and any(k.startswith("W") for k in updates):
            self._decay_upper_layers()
        if self.cfg.circuit.interneuron_decay and any(k.startswith("P") for k in updates):
            self._decay_interneurons()
        self.circuit.sync_ideal(self.cfg.circuit)

    def _decay_upper_layers(self):
        r"""The decay of the layers whose ``W`` reads the count change: :math:`W_{l+1}` (and, with learned feedback,
        its mirror ``B_l``) shrinks by :math:`1 - \eta_{l+1} \lambda_B` (``feedback_decay``, at :math:`W_{l+1}`'s
        current learning rate) after every teacher step, so the part of :math:`B_l - W_{l+1}^\top` the equal
        increments of a learned pair leave decays too."""
        for b, w, group in zip(self.circuit.B, self.circuit.W[1:], self.optimizer.param_groups[1:]):
            factor = 1.0 - group["lr"] * self.cfg.feedback_decay
            if self.learning.B:
                b.mul_(factor)
            w.mul_(factor)

    def _decay_interneurons(self):
        r"""The decay of the interneurons' ``P``: each :math:`P_l` shrinks by :math:`1 - \eta_P \lambda_P`
        (``--interneuron-decay``, at P's current learning rate) after every batch it learns from, so the part of ``P``
        its partners' spikes do not ask for fades."""
        group = self.optimizer.param_groups[len(self.circuit.W)]
        for p in self.circuit.P:
            p.mul_(1.0 - group["lr"] * self.cfg.circuit.interneuron_decay)

    def self_predict(self, images, generator) -> list[float]:
        """One free-phase presentation (no teacher, lateral synapses plastic), counted against the initial
        self-predicting phase's batches; the apical residual."""
        if int(self.self_predict_left) > 0:
            self.self_predict_left -= 1
        labels = torch.zeros(images.shape[0], dtype=torch.long, device=images.device)
        if self.one_presentation:
            res, _ = self._present_phases(images, labels, None, generator)
        else:
            res = self._present(images, labels, None, generator, self.lateral)
        if res.updates:
            self._apply(res.updates, images.shape[0])
        return res.apical_residual

    def train_batch(self, images, labels, generator):
        c = self.cfg
        local_labels = labels if self.shard is None else labels[self.shard]
        y = c.targets.of(local_labels, self.sizes[-1])
        if self.has_free_phase:
            free, teach = self._present_phases(images, labels, y, generator)
        else:
            free, teach = None, self._present(images, labels, y, generator, self.learning)
        # every change of this batch (free-phase P, Q and teacher-phase W, B) in one synchronous step
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
