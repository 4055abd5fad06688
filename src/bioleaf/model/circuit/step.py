r"""One time step of one copy of the circuit: one plain step function per population kind.

:func:`step_copy` advances a copy from its lowest layer to the output; each hidden layer runs
:func:`hidden_layer_step` (its pyramidal cells, :func:`pyramidal_layer_step`, then its interneurons,
:func:`interneuron_layer_step`), the output cells :func:`output_layer_step`. Each branches on the frozen
:class:`~bioleaf.model.circuit.spec.LayerSpec` of its layer:

.. math::

    v^B_l(t) = W_l x_{l-1}(t),\quad v^A_l(t) = B_l x_{l+1}(t-1) + Q_l x^I_{m(l)}(t-1),\quad
    I_l(t) = g_B v^B_l(t) + g_{A,l} v^A_l(t),\quad I^I_l(t) = g_B P_l x_l(t)

:math:`m(l)` is the hidden layer whose interneurons reach layer :math:`l`'s apical dendrite: :math:`l` itself, or
(``--interneuron-partners feedback-source`` with direct feedback) the top hidden layer, whose interneurons mirror
the output cells that send every layer's feedback; a layer whose interneurons no apical dendrite reads has none.
Bottom-up signals cross every layer within the step; top-down and lateral ones use the previous step's
traces. In the teacher period of one presentation each apical potential is passed on against the cell's reference
(:func:`~bioleaf.model.circuit.pathways.referenced`). Somata fire by :func:`bioleaf.model.neurons.if_step` (:func:`fire`), through an
:class:`~bioleaf.model.circuit.recording.Observer` when one is handed in.
"""

from __future__ import annotations

import torch

from bioleaf.model.circuit.cells import (decoupled_current, interneuron_current, output_current, predicted_rate,
                                         pyramidal_current)
from bioleaf.model.circuit.layout import stacked
from bioleaf.model.circuit.pathways import apical_input, bottom_up, interneuron_input, referenced
from bioleaf.model.circuit.recording import Observer, Population
from bioleaf.model.circuit.spec import DECOUPLED, FREE_COPY, LIVE, REPLAYED, CopySpec
from bioleaf.model.circuit.state import CopyState, Replay, StepSignals
from bioleaf.model.neurons import IFState, if_step


def step_copy(spec: CopySpec, pre: torch.Tensor | None, basal: torch.Tensor, prev: CopyState,
              replay: Replay | None = None, observer: Observer | None = None) -> tuple[CopyState, StepSignals]:
    """Advance every layer of the copy from ``spec.lowest`` up by one step. ``pre``, ``basal``: the trace and basal
    potential reaching the lowest layer; ``replay``: the teacher-free copy's step, where the copy replays part of it."""
    sig = StepSignals.empty(len(spec.circuit.W))
    state = CopyState(list(prev.pyr), list(prev.inter), prev.basal_integral)
    for l in range(spec.lowest, len(spec.circuit.W) - 1):
        pre, basal = hidden_layer_step(spec, l, pre, basal, prev, state, sig, replay, observer)
    integral = output_layer_step(spec, pre, basal, prev, state, sig, replay, observer)
    return state._replace(basal_integral=integral), sig


def hidden_layer_step(spec: CopySpec, l: int, pre: torch.Tensor, basal: torch.Tensor, prev: CopyState,
                      state: CopyState, sig: StepSignals, replay: Replay | None,
                      observer: Observer | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden layer ``l``: its pyramidal cells, then its interneurons, writing into ``state`` and ``sig``.
    ``pre``, ``basal`` arrive in the rows of the population below; returns this layer's trace and the basal
    potential of the layer above."""
    basal = stacked(basal, prev.pyr[l].v.shape[0])
    sig.inputs[l], sig.basal[l] = pre, basal
    sig.spikes[l], state.pyr[l] = pyramidal_layer_step(spec, l, basal, prev, sig, replay, observer)
    pre = state.pyr[l].trace
    if spec.layers[l].soma == REPLAYED:  # it fires as in the teacher-free copy, and so does its output
        basal_above = replay.signals.basal[l + 1]
    else:
        basal_above = bottom_up(pre, spec.circuit.W[l + 1])
    interneuron_layer_step(spec, l, pre, basal_above, prev, state, sig, replay, observer)
    return pre, basal_above


def pyramidal_layer_step(spec: CopySpec, l: int, basal: torch.Tensor, prev: CopyState, sig: StepSignals,
                         replay: Replay | None, observer: Observer | None) -> tuple[torch.Tensor, IFState]:
    """The pyramidal cells of hidden layer ``l``: decoupled (:math:`I = g_B v^B`), coupled
    (:math:`I = g_B v^B + g_A v^A`) or replayed (the teacher-free copy's spikes); every coupled or replayed
    layer computes its apical potential into ``sig.apical[l]``."""
    layer = spec.layers[l]
    if layer.soma == DECOUPLED:
        return fire(spec, "pyr", l, decoupled_current(basal, spec.g_basal), prev.pyr[l], observer)
    sig.apical[l] = apical_potential(spec, l, prev)
    if layer.soma == REPLAYED:
        return replay.signals.spikes[l], replay.state.pyr[l]
    current = pyramidal_current(basal, sig.apical[l], spec.g_basal, layer.g_apical)
    return fire(spec, "pyr", l, current, prev.pyr[l], observer)


def apical_potential(spec: CopySpec, l: int, prev: CopyState) -> torch.Tensor:
    r"""Hidden layer ``l``'s apical potential from the traces in ``prev``, :math:`v^A_l = B_l x_{l+1} + Q_l x^I_{m(l)}`,
    passed on against the cell's reference where it has one (:func:`~bioleaf.model.circuit.pathways.referenced`)."""
    layer = spec.layers[l]
    above, inter = prev.pyr[layer.feedback_from].trace, prev.inter[layer.inhibited_by].trace
    apical = apical_input(spec.circuit.B[l], spec.circuit.Q[l], above, inter, spec.ideal_interneurons)
    return referenced(apical, spec.reference_of(l))


def interneuron_layer_step(spec: CopySpec, l: int, pre: torch.Tensor, basal_above: torch.Tensor, prev: CopyState,
                           state: CopyState, sig: StepSignals, replay: Replay | None,
                           observer: Observer | None) -> None:
    """The interneurons of hidden layer ``l``: live (:math:`I^I = g_B P_l x_l`), replayed (the teacher-free copy's)
    or absent."""
    mode = spec.layers[l].interneurons
    if mode == LIVE:
        dendrite = interneuron_input(spec.circuit.P[l], pre, basal_above, spec.ideal_interneurons)
        current = interneuron_current(dendrite, spec.g_basal)
        sig.inter_spikes[l], state.inter[l] = fire(spec, "inter", l, current, prev.inter[l], observer)
        sig.inter_current[l], sig.inter_dendrite[l] = current, dendrite
    elif mode == REPLAYED:
        sig.inter_spikes[l], state.inter[l] = replay.signals.inter_spikes[l], replay.state.inter[l]


def output_layer_step(spec: CopySpec, pre: torch.Tensor, basal: torch.Tensor, prev: CopyState, state: CopyState,
                      sig: StepSignals, replay: Replay | None, observer: Observer | None) -> torch.Tensor:
    r"""The output cells: soma driven by :math:`v^B` (with a teacher, :math:`(1-\beta) v^B + \beta y\vartheta/T`),
    their predicted rate and teacher current into ``sig``; returns the integrated basal potential."""
    top = len(spec.circuit.W) - 1
    basal = stacked(basal, prev.basal_integral.shape[0])
    sig.inputs[top], sig.basal[top] = pre, basal
    integral, sig.rate = predicted_rate(basal, prev.basal_integral)
    current = output_current(basal, spec.teacher)
    sig.spikes[top], state.pyr[top] = fire(spec, "pyr", top, current, prev.pyr[top], observer)
    if spec.teacher is not None:
        reference = replay.signals.rate if spec.teacher_reference == FREE_COPY else sig.rate
        sig.teacher_current = spec.teacher.current(reference)
    return integral


def fire(spec: CopySpec, kind: str, layer: int, current: torch.Tensor, state: IFState,
         observer: Observer | None) -> tuple[torch.Tensor, IFState]:
    """One population's soma (:func:`bioleaf.model.neurons.if_step`) by the copy's spike function, or through the
    ``observer``, which may perturb the current and choose the spike function, and then sees both."""
    if observer is None:
        return if_step(current, state, spec.neuron, spec.spike_fn)
    population = Population(spec.name, kind, layer)
    current = observer.current(population, current)
    spikes, state = if_step(current, state, spec.neuron, observer.spike_fn(population, spec.spike_fn))
    observer.soma(population, current, spikes)
    return spikes, state
