"""The locality contract of SPEC as sets, and the idealisations as the exact dependencies each one excuses.

A measured dependency is named by what was perturbed: a synapse (``W1``), a population's spikes and somatic
current, and with them its counts and potentials (``activity:free:pyr2``: ``free``/``teacher`` are the two
halves of stacked copies, ``circuit`` a population of one copy or shared by both, ``shadow`` the teacher-free
copy), the labels (``labels``), the
other samples of the batch (``other samples``), state a step left behind (``state:W0.exp_avg``: the
optimiser state of ``W0``) or any other tensor the rule holds (``tensor:NAME``). An *item* is a population's
input (``circuit:pyr1``) or a synapse's change (``change:W0``).

The contract: a population's input may depend on the synapses onto it and the populations they come from
(and, at the output cells, the labels, through the teacher current); a synapse's change may depend on the
synapses onto its postsynaptic cell, the populations they come from, that cell itself, its own optimiser
state (and, at the output cells, the labels). Nothing may depend on another sample or on a tensor that is
not a registered synapse.
"""

from __future__ import annotations

import re
from typing import NamedTuple

LABELS, OTHER_SAMPLES = "labels", "other samples"
ACTIVITY, STATE, TENSOR = "activity:", "state:", "tensor:"
COPIES_OF_ONE_CIRCUIT = ("free", "teacher", "reversed", "circuit")  # the circuit's own phases


class Wiring(NamedTuple):
    """What the contract needs of a circuit's wiring: its layers, the layer each hidden layer's ``B`` comes from
    (``feedback``), the hidden layer whose interneurons reach each hidden layer's apical dendrite (``inhibitors``), and
    whether it learns in one presentation (``periods``: the interneurons' ``P`` rule reads their partners' spikes at a
    teaching compartment; its free and teacher period are one copy of the same cells, recorded as ``circuit``)."""

    n_layers: int
    feedback: list[int]
    inhibitors: list[int]
    periods: bool = False

    @classmethod
    def of(cls, params, n_layers: int) -> "Wiring":
        """The wiring of the circuit of :class:`~bioleaf.model.circuit.params.CircuitParams` ``params``."""
        return cls(n_layers, params.feedback_sources(n_layers), params.inhibition_sources(n_layers),
                   params.one_presentation())


def population_of(label: str) -> tuple[str, str, int]:
    """``"free:pyr2"`` -> ``("free", "pyr", 2)``."""
    copy, kind, layer = re.fullmatch(r"([a-z]+):(pyr|inter)(\d+)", label).groups()
    return copy, kind, int(layer)


def onto(kind: str, layer: int, wiring: Wiring, teaching: bool = False) -> tuple[set[str], set[str]]:
    """The synapses onto a population and the populations (``pyr2``, ``inter0``) they come from; ``teaching``: an
    interneuron's teaching compartment, which its partner reaches (one presentation; what its ``P`` rule reads)."""
    if kind == "inter":
        return {f"P{layer}"}, {f"pyr{layer}"} | ({f"pyr{layer + 1}"} if teaching else set())
    below = {f"pyr{layer - 1}"} if layer > 0 else set()
    if layer == wiring.n_layers - 1:
        return {f"W{layer}"}, below
    return ({f"W{layer}", f"B{layer}", f"Q{layer}"},
            below | {f"pyr{wiring.feedback[layer]}", f"inter{wiring.inhibitors[layer]}"})


def postsynaptic(synapse: str) -> tuple[str, int]:
    """The population a synapse ends on: ``W``, ``B``, ``Q`` of layer ``l`` on its pyramidal cells, ``P`` on its
    interneurons."""
    layer = int(synapse[1:])
    return ("inter" if synapse[0] == "P" else "pyr"), layer


def change_copy(synapse: str) -> str:
    """The half of stacked copies a synapse's change is computed in: the free phase for ``P``, ``Q``, the teacher
    phase for ``W``, ``B``."""
    return "free" if synapse[0] in "PQ" else "teacher"


def same_cells(copy: str, other: str) -> bool:
    """Whether two copies' populations may exchange signals: the same copy, or a population of one copy's rows."""
    if "shadow" in (copy, other):
        return copy == other
    return copy == other or "circuit" in (copy, other)


def allowed(item: str, dep: str, wiring: Wiring) -> bool:
    """Whether ``item`` may depend on ``dep`` under the contract, in a circuit of this ``wiring``."""
    if item.startswith("change:"):
        synapse = item[len("change:"):]
        kind, layer = postsynaptic(synapse)
        copy, own = change_copy(synapse), f"{kind}{layer}"
        if dep.startswith(STATE):
            return dep[len(STATE):].split(".")[0] == synapse
    else:
        copy, kind, layer = population_of(item)
        own = f"{kind}{layer}"
    output = kind == "pyr" and layer == wiring.n_layers - 1
    synapses, populations = onto(kind, layer, wiring, wiring.periods and item.startswith("change:P"))
    if dep == LABELS:
        return output
    if dep.startswith(ACTIVITY):
        dep_copy, dep_kind, dep_layer = population_of(dep[len(ACTIVITY):])
        return same_cells(copy, dep_copy) and f"{dep_kind}{dep_layer}" in populations | {own}
    return dep in synapses


def in_copy(name: str, copy: str) -> str:
    """A population, population input or activity ``name`` moved to ``copy`` (``activity:shadow:pyr1`` ->
    ``activity:circuit:pyr1``)."""
    return re.sub(r"(^|activity:)[a-z]+:(pyr|inter)", rf"\g<1>{copy}:\g<2>", name, count=1)


def explanations(item: str, dep: str, measured: dict[str, list[str]], wiring: Wiring) -> list[str]:
    """The idealisations that would cause ``item`` to depend on ``dep`` (outside the contract), most specific first.
    ``measured``: every synapse's measured dependencies (a copied synapse reads what its original reads). The
    teacher-free copy excuses what the contract allows of the same cells in the circuit itself; replayed input,
    a teacher-phase change reading the free phase of the cells it may read in its own phase; partner-count, a
    ``P`` change reading the free phase of its partner cells (each judged as in two copies)."""
    wiring = wiring._replace(periods=False)
    measured_as = dep  # a copied synapse's dependency, as measured on its original
    if "shadow:" in item or dep.startswith(ACTIVITY + "shadow:"):  # judged as the same cells of the circuit
        item, dep = (in_copy(item, "circuit") if "shadow:" in item else item), in_copy(dep, "circuit")
        if allowed(item, dep, wiring):
            return ["teacher-free-copy"]
    if not item.startswith("change:"):
        _, kind, layer = population_of(item)
        return ["copied-interneurons"] if kind == "inter" and dep == f"W{layer + 1}" else []
    synapse = item[len("change:"):]
    layer, found = int(synapse[1:]), []
    originals = {"B": [f"W{layer + 1}"], "P": [f"W{layer + 1}"], "Q": [f"B{layer}", f"W{layer + 1}"]}
    if any(dep == original or measured_as in measured.get(original, []) for original in originals.get(synapse[0], [])):
        found.append("copied-feedback" if synapse[0] == "B" else "copied-interneurons")
    if synapse[0] in "WB" and dep.startswith(ACTIVITY + "free:") and allowed(item, in_copy(dep, "teacher"), wiring):
        found.append("replayed-input")
    if synapse[0] == "P" and dep == f"{ACTIVITY}free:pyr{layer + 1}":
        found.append("partner-count")
    return found
