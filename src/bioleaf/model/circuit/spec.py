"""How each copy of the circuit is stepped: a frozen spec per hidden layer and per copy, built once per presentation.

Every simulation of the package is a copy of the circuit, stepped by :func:`bioleaf.model.circuit.step.step_copy`
from the copy's :class:`CopySpec`:

- inference and the backprop twins' forward pass: every apical compartment decoupled, no interneurons,
  no teacher (:func:`inference_copy`);
- the circuit's free phase and teacher phase (:func:`circuit_copy`), side by side as stacked copies of the
  batch that differ only in the teacher's strength when both run;
- the teacher-free copy of the free error reference (:func:`teacher_free_copy`): apical compartments
  decoupled, only the top interneurons, which the teacher phase replays, as it replays the unnudged lowest
  hidden layers' pyramidal cells (they fire alike in both copies);
- two-sided nudging's second teacher phase (:func:`reversed_copy`): from its lowest nudged layer up, the top
  hidden layer's coupling reversed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bioleaf.model.circuit.cells import Teacher
from bioleaf.model.circuit.layout import identical_copies, unnudged_layers
from bioleaf.model.circuit.params import Context
from bioleaf.model.circuit.synapses import Microcircuit
from bioleaf.model.neurons import NeuronParams, SpikeFn, heaviside

COUPLED, DECOUPLED, REPLAYED = "coupled", "decoupled", "replayed"  # a hidden layer's pyramidal cells in a copy
LIVE, ABSENT = "live", "absent"  # its interneurons: LIVE, REPLAYED (another copy's) or ABSENT
OWN, FREE_COPY = "own", "free-copy"  # the prediction the teacher current is measured against


@dataclass(frozen=True)
class LayerSpec:
    """How one hidden layer of a copy is stepped.

    ``soma``: COUPLED (:math:`I = g_B v^B + g_A v^A`, ``g_apical`` its :math:`g_A`), DECOUPLED (:math:`I = g_B v^B`)
    or REPLAYED (an unnudged layer whose spikes are the teacher-free copy's; its apical potential is still this
    copy's own); ``feedback_from``: the layer whose pyramidal cells send its ``B``; ``interneurons``: LIVE,
    REPLAYED or ABSENT; ``shared``: simulated once, in one copy's rows, for every stacked copy; ``inhibited_by``: the
    hidden layer whose interneurons reach its apical dendrite through ``Q``."""

    soma: str
    g_apical: float | None
    feedback_from: int
    interneurons: str
    shared: bool
    inhibited_by: int


@dataclass(frozen=True)
class CopySpec:
    """One copy of the circuit: its synapses, somata, hidden layers (:class:`LayerSpec`) and output teacher.

    ``lowest``: the lowest layer simulated (the layers below come from another copy); ``teacher_reference``: OWN
    (the output cells' own predicted rate) or FREE_COPY (the teacher-free copy's); ``copies``: stacked copies of
    the batch in its rows; ``apical_reference``: per hidden layer, each cell's own slow trace of its apical potential
    over the free period of one presentation (``[batch, n]``), which its apical compartment measures against in the
    teacher period (:func:`bioleaf.model.circuit.pathways.referenced`)."""

    name: str
    circuit: Microcircuit
    neuron: NeuronParams
    g_basal: float
    layers: tuple[LayerSpec, ...]
    ideal_interneurons: bool = False
    teacher: Teacher | None = None
    teacher_reference: str = OWN
    lowest: int = 0
    copies: int = 1
    spike_fn: SpikeFn = heaviside
    apical_reference: tuple[torch.Tensor, ...] | None = None

    def reference_of(self, l: int) -> torch.Tensor | None:
        """Hidden layer ``l``'s apical reference (``None``: its apical potential passes on as it is)."""
        return None if self.apical_reference is None else self.apical_reference[l]

    @property
    def couplings(self) -> list[float | None]:
        """``g_A`` per hidden layer (``None``: decoupled)."""
        return [layer.g_apical for layer in self.layers]


def hidden_layers(couplings: list[float | None], interneurons: list[str], feedback_from: list[int], *,
                  replayed: int, lowest: int, copies: int,
                  inhibited_by: list[int] | None = None) -> tuple[LayerSpec, ...]:
    """The :class:`LayerSpec` of every hidden layer: decoupled where the coupling is ``None``, replayed for the
    lowest ``replayed`` layers, coupled otherwise; shared where every stacked copy is identical; inhibited by its own
    interneurons unless ``inhibited_by`` says whose."""
    shared = [n > 1 for n in identical_copies(couplings, lowest, copies)]
    soma = [DECOUPLED if g is None else REPLAYED if l < replayed else COUPLED for l, g in enumerate(couplings)]
    inhibited_by = list(range(len(couplings))) if inhibited_by is None else inhibited_by
    return tuple(LayerSpec(*fields) for fields in zip(soma, couplings, feedback_from, interneurons, shared,
                                                      inhibited_by))


def circuit_copy(circuit: Microcircuit, ctx: Context, teacher: Teacher | None, *, free_reference: bool,
                 couplings: list[float] | None = None, lowest: int = 0, name: str | None = None,
                 copies: int = 1) -> CopySpec:
    """The circuit with every apical compartment coupled (``couplings``: per hidden layer, default the configured
    ``g_A``) and a teacher on the output cells, or none (the free phase). With the free error reference the top
    interneurons and the output cells' prediction are the teacher-free copy's, and so are the pyramidal cells of
    the unnudged lowest hidden layers (coupling 0: they fire as in the teacher-free copy)."""
    params, L = ctx.params, len(circuit.W)
    couplings = couplings or params.apical_couplings(L - 1)
    inhibited_by = params.inhibition_sources(L)
    interneurons = [LIVE if l in inhibited_by else ABSENT for l in range(L - 1)]  # those no apical dendrite reads: none
    if free_reference and L > 1:
        interneurons[-1] = REPLAYED
    layers = hidden_layers(couplings, interneurons, params.feedback_sources(L), lowest=lowest, copies=copies,
                           replayed=unnudged_layers(couplings) if free_reference else 0, inhibited_by=inhibited_by)
    return CopySpec(name or ("free" if teacher is None else "teacher"), circuit, ctx.neuron, params.g_basal, layers,
                    ideal_interneurons=params.interneurons == "ideal", teacher=teacher, lowest=lowest, copies=copies,
                    teacher_reference=FREE_COPY if free_reference else OWN)


def reversed_copy(circuit: Microcircuit, ctx: Context, teacher: Teacher, first: int, copies: int = 1) -> CopySpec:
    """Two-sided nudging's second teacher phase: from layer ``first`` up, the top hidden layer's coupling reversed."""
    g_apical = ctx.params.apical_couplings(len(circuit.W) - 1)
    return circuit_copy(circuit, ctx, teacher, free_reference=True, lowest=first, name="reversed", copies=copies,
                        couplings=g_apical[:-1] + [-g_apical[-1]])


def teacher_free_copy(circuit: Microcircuit, ctx: Context, copies: int = 1) -> CopySpec:
    """The free error reference's shadow: the bottom-up network with the top hidden layer's interneurons."""
    n_hidden = len(circuit.W) - 1
    interneurons = [ABSENT] * (n_hidden - 1) + [LIVE] if n_hidden else []
    layers = hidden_layers([None] * n_hidden, interneurons, list(range(1, n_hidden + 1)), replayed=0, lowest=0,
                           copies=copies)
    return CopySpec("shadow", circuit, ctx.neuron, ctx.params.g_basal, layers,
                    ideal_interneurons=ctx.params.interneurons == "ideal", copies=copies)


def inference_copy(W: list, neuron: NeuronParams, g_basal: float = 1.0, spike_fn: SpikeFn = heaviside) -> CopySpec:
    """The bottom-up network alone: every apical compartment decoupled, no interneurons, no teacher."""
    n_hidden = len(W) - 1
    layers = hidden_layers([None] * n_hidden, [ABSENT] * n_hidden, list(range(1, n_hidden + 1)), replayed=0,
                           lowest=0, copies=1)
    return CopySpec("inference", Microcircuit(list(W)), neuron, g_basal, layers, spike_fn=spike_fn)
