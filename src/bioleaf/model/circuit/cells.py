r"""The cell types of the microcircuit: the somatic current of each, from its compartments' potentials (the
soma itself is :func:`bioleaf.model.neurons.if_step`).

**Pyramidal cell** of hidden layer :math:`l`: basal and apical dendrites feed the soma,

.. math::  I_l(t) = g_B\, v^B_l(t) + g_{A,l}\, v^A_l(t)

(:func:`pyramidal_current`); with the apical compartment decoupled (the teacher-free copy, inference)
:math:`I_l = g_B v^B_l` (:func:`decoupled_current`).

**Interneuron** of hidden layer :math:`l` (one per pyramidal cell of layer :math:`l+1`, its partner): its dendrite
integrates the lateral input :math:`(P_l x_l)(t)`, :math:`I^I_l(t) = g_B\, (P_l x_l)(t)`
(:func:`interneuron_current`). In one presentation its partner's spikes also reach it, at a teaching compartment
that does not drive its soma and that its ``P`` rule reads
(:class:`bioleaf.model.circuit.eligibility.SpikeTimingSums`).

**Output cell**: its basal potential drives the soma, a teacher (when present) pulls the drive toward
the target rate (:func:`output_current`), and the cell keeps its integrated basal potential
:math:`a_k(t) = \sum_{t'\le t} v^B_k(t')`, its own prediction of its teacher-free count
:math:`[a_k]_+/\vartheta` (:func:`predicted_rate`):

.. math::  I_k(t) = (1-\beta)\, v^B_k(t) + \beta\, y_k \vartheta / T, \qquad
           c_k(t) = \beta\,\big(y_k \vartheta / T - r_k(t)\big), \qquad r_k(t) = \Delta[a_k]_+(t),

:math:`c_k` the teacher current, the output cell's error signal; :math:`r_k` is the cell's own predicted
rate, or (free error reference) the teacher-free copy's. :math:`\Delta[a]_+(t) = [a(t)]_+ - [a(t-1)]_+`, so
:math:`\sum_t \Delta[a]_+ = [\sum_t v^B]_+`, the count model's :math:`[W X]_+`, and
:math:`\sum_t c_k = \beta\vartheta\,(y_k - [\sum_t v^B_k]_+/\vartheta)`: the (negative, scaled) output error of
the spiking error function.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


def scaled(gain: float, x: torch.Tensor) -> torch.Tensor:
    """``gain * x``, or ``x`` itself for a gain of 1 (the same numbers, one operation fewer per step)."""
    return x if gain == 1 else gain * x


def pyramidal_current(basal: torch.Tensor, apical: torch.Tensor, g_basal: float, g_apical: float) -> torch.Tensor:
    r"""A hidden pyramidal cell with both dendrites coupled: :math:`I = g_B v^B + g_A v^A` (at :math:`g_A = 0`
    the apical potential is still computed, for the cell's learning rules, but adds nothing)."""
    drive = scaled(g_basal, basal)
    return drive if g_apical == 0 else drive + g_apical * apical


def decoupled_current(basal: torch.Tensor, g_basal: float) -> torch.Tensor:
    r"""A hidden pyramidal cell whose apical compartment is decoupled: :math:`I = g_B v^B`."""
    return scaled(g_basal, basal)


def interneuron_current(dendrite: torch.Tensor, g_basal: float) -> torch.Tensor:
    r"""An interneuron: :math:`I^I = g_B\, (P x)`, ``dendrite`` its lateral potential :math:`P x` (the P rule
    reads the integral of :math:`I^I`, or in one presentation the same potential against its partner's spikes)."""
    return scaled(g_basal, dendrite)


class Teacher(NamedTuple):
    """The teacher of the output cells: target rates :math:`y \\vartheta / T` and strength :math:`\\beta`
    (a number, or one per batch row ``[batch, 1]``: 0 in rows that run without a teacher), with the two
    factors of its drive computed once per presentation (:meth:`of`)."""

    rate: torch.Tensor
    strength: float | torch.Tensor
    keep: float | torch.Tensor  # 1 - beta
    pull: torch.Tensor  # beta y theta / T

    @classmethod
    def of(cls, rate: torch.Tensor, strength: float | torch.Tensor) -> "Teacher":
        return cls(rate, strength, 1 - strength, strength * rate)

    def drive(self, basal: torch.Tensor) -> torch.Tensor:
        r""":math:`(1-\beta) v^B + \beta y\vartheta/T`."""
        return self.keep * basal + self.pull

    def current(self, reference_rate: torch.Tensor) -> torch.Tensor:
        r"""The teacher current :math:`c = \beta (y\vartheta/T - r)` against the predicted rate ``r``."""
        return self.strength * (self.rate - reference_rate)


def output_current(basal: torch.Tensor, teacher: Teacher | None) -> torch.Tensor:
    r"""An output cell's somatic current: :math:`v^B`, or with a teacher :math:`(1-\beta) v^B + \beta y\vartheta/T`."""
    return basal if teacher is None else teacher.drive(basal)


def predicted_rate(basal: torch.Tensor, basal_integral: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(a(t), r(t))``: the output cell's integrated basal potential :math:`a(t) = a(t-1) + v^B(t)` and its own
    predicted teacher-free rate :math:`r(t) = [a(t)]_+ - [a(t-1)]_+`."""
    integral = basal_integral + basal
    return integral, torch.relu(integral) - torch.relu(basal_integral)
