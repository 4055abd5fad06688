r"""The cell types of the microcircuit, one pure step function each (the soma is :func:`bioleaf.model.neurons.if_step`).

**Pyramidal cell** of hidden layer :math:`l`: basal and apical dendrites feed the soma,

.. math::  I_l(t) = g_B\, v^B_l(t) + g_{A,l}\, v^A_l(t)

(:func:`pyramidal_step`); with the apical compartment decoupled (the teacher-free copy, inference)
:math:`I_l = g_B v^B_l` (:func:`decoupled_pyramidal_step`).

**Interneuron** of hidden layer :math:`l` (one per pyramidal cell of layer :math:`l+1`): its dendrite
integrates the lateral input :math:`(P_l x_l)(t)`, :math:`I^I_l(t) = g_B\, (P_l x_l)(t)`
(:func:`interneuron_step`).

**Output cell**: its basal potential drives the soma, a teacher (when present) pulls the drive toward
the target rate, and the cell keeps its integrated basal potential :math:`a_k(t) = \sum_{t'\le t} v^B_k(t')`,
its own prediction of its teacher-free count :math:`[a_k]_+/\vartheta` (:func:`output_step`):

.. math::  I_k(t) = (1-\beta)\, v^B_k(t) + \beta\, y_k \vartheta / T, \qquad
           c_k(t) = \beta\,\big(y_k \vartheta / T - r_k(t)\big), \qquad r_k(t) = \Delta[a_k]_+(t),

:math:`c_k` the teacher current, the output cell's error signal; :math:`r_k` is the cell's own predicted
rate, or (free error reference) the teacher-free copy's.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from bioleaf.model.neurons import IFState, NeuronParams, SpikeFn, heaviside, if_step


def scaled(gain: float, x: torch.Tensor) -> torch.Tensor:
    """``gain * x``, or ``x`` itself for a gain of 1 (the same numbers, one operation fewer per step)."""
    return x if gain == 1 else gain * x


def pyramidal_step(basal: torch.Tensor, apical: torch.Tensor, state: IFState, neuron: NeuronParams,
                   g_basal: float, g_apical: float) -> tuple[torch.Tensor, IFState]:
    r"""A hidden pyramidal cell with both dendrites coupled: :math:`I = g_B v^B + g_A v^A` (at :math:`g_A = 0`
    the apical potential is still computed, for the cell's learning rules, but adds nothing)."""
    drive = scaled(g_basal, basal)
    return if_step(drive if g_apical == 0 else drive + g_apical * apical, state, neuron)


def decoupled_pyramidal_step(basal: torch.Tensor, state: IFState, neuron: NeuronParams, g_basal: float,
                             spike_fn: SpikeFn = heaviside) -> tuple[torch.Tensor, IFState]:
    r"""A hidden pyramidal cell whose apical compartment is decoupled: :math:`I = g_B v^B`."""
    return if_step(scaled(g_basal, basal), state, neuron, spike_fn)


def interneuron_step(dendrite: torch.Tensor, state: IFState, neuron: NeuronParams,
                     g_basal: float) -> tuple[torch.Tensor, IFState, torch.Tensor]:
    r"""An interneuron: ``(spikes, new_state, I^I)`` with :math:`I^I = g_B\, (P x)`, ``dendrite`` its
    lateral potential :math:`P x` (the P rule reads the integral of :math:`I^I`)."""
    current = scaled(g_basal, dendrite)
    s, state = if_step(current, state, neuron)
    return s, state, current


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


class OutputStep(NamedTuple):
    """What :func:`output_step` returns."""

    spikes: torch.Tensor
    soma: IFState
    basal_integral: torch.Tensor  # a_k(t)
    rate: torch.Tensor  # Delta[a_k]_+(t), the cell's own predicted (teacher-free) rate


def output_step(basal: torch.Tensor, soma: IFState, basal_integral: torch.Tensor, neuron: NeuronParams,
                teacher: Teacher | None, spike_fn: SpikeFn = heaviside) -> OutputStep:
    r"""Advance the output cells one step (equations above); without a teacher :math:`I = v^B`."""
    integral = basal_integral + basal
    rate = torch.relu(integral) - torch.relu(basal_integral)
    s, soma = if_step(basal if teacher is None else teacher.drive(basal), soma, neuron, spike_fn)
    return OutputStep(s, soma, integral, rate)
