"""The state of one copy of the circuit, and what one of its steps produced."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from bioleaf.model.circuit.layout import copy_rows
from bioleaf.model.circuit.spec import ABSENT, REPLAYED, CopySpec
from bioleaf.model.neurons import IFState, if_init


class CopyState(NamedTuple):
    """Every population of one copy: pyramidal (and output) somata per layer, interneurons per hidden
    layer (``None``: not simulated in this copy), the output cells' integrated basal potential."""

    pyr: list[IFState | None]
    inter: list[IFState | None]
    basal_integral: torch.Tensor

    def rows(self, rows: slice) -> "CopyState":
        """The same populations restricted to the batch ``rows`` of one stacked copy (views, no copies)."""
        return CopyState([population_rows(p, rows) for p in self.pyr], [population_rows(i, rows) for i in self.inter],
                         self.basal_integral[rows])


def population_rows(state: IFState | None, rows: slice) -> IFState | None:
    """One population's state in the batch ``rows`` of one stacked copy."""
    return None if state is None else IFState(*(copy_rows(t, rows) for t in state))


def init_state(spec: CopySpec, batch: int, device: torch.device | str) -> CopyState:
    """Every population of ``spec`` at rest, in ``batch`` rows, or one copy's where every copy shares it (replayed
    interneurons are the teacher-free copy's, which every copy shares)."""
    sizes, one, L = [w.shape[0] for w in spec.circuit.W], batch // spec.copies, len(spec.circuit.W)
    rows = [one if l < L - 1 and spec.layers[l].shared else batch for l in range(L)]
    pyr = [None if l < spec.lowest else if_init(rows[l], n, device=device) for l, n in enumerate(sizes)]
    inter = [None if l < spec.lowest or layer.interneurons == ABSENT else
             if_init(one if layer.interneurons == REPLAYED else rows[l], sizes[l + 1], device=device)
             for l, layer in enumerate(spec.layers)]
    return CopyState(pyr, inter, torch.zeros(batch, sizes[-1], device=device))


@dataclass
class StepSignals:
    """What one step of a copy produced, per layer (``None`` where the copy has nothing): the presynaptic trace
    and basal potential reaching each layer, apical potentials, spikes, interneuron spikes, somatic currents and
    dendritic potentials, the output cells' own predicted rate and teacher current."""

    inputs: list[torch.Tensor | None]
    basal: list[torch.Tensor | None]
    apical: list[torch.Tensor | None]
    spikes: list[torch.Tensor | None]
    inter_spikes: list[torch.Tensor | None]
    inter_current: list[torch.Tensor | None]
    inter_dendrite: list[torch.Tensor | None]
    rate: torch.Tensor | None = None
    teacher_current: torch.Tensor | None = None

    @classmethod
    def empty(cls, n_layers: int) -> "StepSignals":
        hidden = n_layers - 1
        return cls([None] * n_layers, [None] * n_layers, [None] * hidden, [None] * n_layers, [None] * hidden,
                   [None] * hidden, [None] * hidden)


class Replay(NamedTuple):
    """Another copy's populations and signals in this step, read by a copy that replays part of them (free
    error reference: the teacher-free copy's top interneurons, output prediction and unnudged lower layers)."""

    state: CopyState
    signals: StepSignals
