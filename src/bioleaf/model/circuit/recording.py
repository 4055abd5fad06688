"""The recording interface of a presentation: what an :class:`Observer` sees of every step.

A presentation or a forward pass handed an observer calls, for every soma of every copy in every step,
:meth:`Observer.current` (the somatic current the soma integrates: its own unless the observer perturbs it),
:meth:`Observer.spike_fn` (which spike function that soma fires by: the copy's own unless the observer holds
its spikes) and :meth:`Observer.soma` (its somatic current and spikes), and, after every step, :meth:`Observer.step`
with the input spikes and the main copy's :class:`~bioleaf.model.circuit.state.StepSignals`. :class:`Recorder`
keeps rasters and apical potentials for plots; :mod:`bioleaf.tools.locality` taps every soma through the same
interface.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from bioleaf.model.circuit.state import StepSignals
from bioleaf.model.neurons import SpikeFn


class Population(NamedTuple):
    """One population of one copy: the copy's name (``free``, ``teacher``, ``shadow``, ``reversed``,
    ``inference``), ``pyr`` (pyramidal or output cells) or ``inter`` (interneurons), and its layer."""

    copy: str
    kind: str
    layer: int


class Observer:
    """Sees every step of a presentation; each method does nothing here, a subclass overrides what it needs."""

    def current(self, population: Population, current: torch.Tensor) -> torch.Tensor:
        """The somatic current ``population`` integrates in this step (``current``: its own)."""
        return current

    def spike_fn(self, population: Population, default: SpikeFn) -> SpikeFn:
        """The spike function ``population`` fires by in this step (``default``: the copy's own)."""
        return default

    def soma(self, population: Population, current: torch.Tensor, spikes: torch.Tensor) -> None:
        """``population``'s somatic current and spikes in this step."""

    def step(self, input_spikes: torch.Tensor, signals: StepSignals) -> None:
        """The input spikes and the main copy's signals at the end of a step."""


class Recorder(Observer):
    """Every step's input spikes, spikes, interneuron spikes and apical potentials, stacked over time into
    ``[T, batch, n]`` by :meth:`stacked` (for plots and inspection only: memory grows with ``T``)."""

    def __init__(self) -> None:
        self.record: dict[str, list[torch.Tensor]] = {"input": []}

    def step(self, input_spikes: torch.Tensor, signals: StepSignals) -> None:
        self.record["input"].append(input_spikes.clone())
        for l, s in enumerate(signals.spikes):
            self.record.setdefault(f"pyr{l}", []).append(s.clone())
        for l, (s, apical) in enumerate(zip(signals.inter_spikes, signals.apical)):
            if s is not None:
                self.record.setdefault(f"inter{l}", []).append(s.clone())
            if apical is not None:
                self.record.setdefault(f"apical{l}", []).append(apical.clone())

    def stacked(self) -> dict[str, torch.Tensor]:
        return {key: torch.stack(steps) for key, steps in self.record.items()}
