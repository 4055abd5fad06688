"""Every soma of a training step, seen through the circuit's recording interface (:mod:`bioleaf.model.circuit.recording`):
recorded, held at given spikes, or perturbed, one population (or one half of stacked copies) at a time."""

from __future__ import annotations

from typing import NamedTuple

import torch

from bioleaf.model.circuit import Observer, Population
from bioleaf.model.neurons import SpikeFn
from bioleaf.tools.locality.contract import COPIES_OF_ONE_CIRCUIT


def population_label(population: Population) -> str:
    """``copy:kind{layer}`` of a soma: ``circuit`` for the circuit's own phases, else the copy's name (``shadow``)."""
    copy_name = "circuit" if population.copy in COPIES_OF_ONE_CIRCUIT else population.copy
    return f"{copy_name}:{population.kind}{population.layer}"


class HeldSpikes:
    """A spike function that ignores the potential and returns the spikes it holds."""

    def __init__(self, spikes: torch.Tensor):
        self.spikes = spikes

    def __call__(self, v: torch.Tensor, threshold: float) -> torch.Tensor:
        return self.spikes


class Target(NamedTuple):
    """What a probe perturbs: a population (``circuit:pyr2``) in the batch ``rows`` (``None``: all of them)."""

    label: str
    rows: slice | None


def half_rows(half: str, rows: int, batch: int) -> slice | None:
    """The rows of ``half`` (``free``, ``teacher``, ``circuit``) in a population of ``rows`` rows: stacked copies
    hold the free phase in the first ``batch`` rows and the teacher phase in the others."""
    if half == "circuit" or rows != 2 * batch:
        return None
    return slice(0, batch) if half == "free" else slice(batch, 2 * batch)


class Tap(Observer):
    """Records every soma's current and spikes in the order they fire; given the ``fixed`` spikes of an earlier run
    hands each soma those; given a ``target``, flips a fifth of its held spikes and adds noise to its current."""

    def __init__(self, fixed: list[torch.Tensor] | None = None, target: Target | None = None, seed: int = 0):
        self.fixed, self.target = fixed, target
        self.labels: list[str] = []
        self.currents: list[torch.Tensor] = []
        self.spikes: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def _mask(self, like: torch.Tensor) -> torch.Tensor:
        """Where the target is perturbed in a tensor of its population: random entries of its rows."""
        mask = torch.zeros_like(like, dtype=torch.bool)
        rows = self.target.rows or slice(0, like.shape[0])
        mask[rows] = torch.rand(mask[rows].shape, generator=self.generator) < 0.2
        return mask

    def _targets(self, population: Population) -> bool:
        return self.target is not None and population_label(population) == self.target.label

    def current(self, population: Population, current: torch.Tensor) -> torch.Tensor:
        if not self._targets(population):
            return current
        scale = 0.5 * (float(current.abs().mean()) + 0.05)
        return torch.where(self._mask(current), current + scale, current)

    def spike_fn(self, population: Population, default: SpikeFn) -> SpikeFn:
        if self.fixed is None:
            return default
        held = self.fixed[len(self.currents)]
        if self._targets(population):
            held = torch.where(self._mask(held), 1.0 - held, held)
        return HeldSpikes(held)

    def soma(self, population: Population, current: torch.Tensor, spikes: torch.Tensor) -> None:
        self.labels.append(population_label(population))
        self.currents.append(current.clone())
        self.spikes.append(spikes)


def held_spikes(record: Tap, generator: torch.Generator) -> tuple[list[torch.Tensor], list[str]]:
    """The spike trains the replays hold fixed: each population's recorded ones, or, for a population that never
    fired (whose downstream synapses would otherwise see no activity), random spikes at rate 0.2."""
    fired: dict[str, bool] = {}
    for label, spikes in zip(record.labels, record.spikes):
        fired[label] = fired.get(label, False) or bool(spikes.any())
    fixed = [s if fired[label] else (torch.rand(s.shape, generator=generator) < 0.2).to(s.dtype)
             for label, s in zip(record.labels, record.spikes)]
    return fixed, [label for label, on in fired.items() if not on]


def rows_of(fixed: list[torch.Tensor], row: int, batch: int) -> list[torch.Tensor]:
    """The held spikes of one sample of the batch: its row in every copy of stacked populations."""
    out = []
    for s in fixed:
        copies = s.shape[0] // batch
        out.append(s.view(copies, batch, -1)[:, row].reshape(copies, -1))
    return out
