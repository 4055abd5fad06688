r"""Spike encoders: pixel intensities ``p`` in [0, 1] -> spike trains, one step at a time.

Encoders are generated step by step (never a ``[T, batch, n]`` tensor), so memory does not grow
with the number of steps ``T``. All randomness goes through an explicit ``torch.Generator``.

- ``bernoulli``: :math:`s_j(t) \sim \mathrm{Bernoulli}(r_{max}\, p_j)` independently per step.
- ``regular``: deterministic rate code; a phase accumulates :math:`\phi_j(t) = t\, r_{max} p_j`
  and the neuron spikes whenever :math:`\lfloor \phi_j(t) \rfloor` increases (evenly spaced spikes,
  :math:`\lfloor T r_{max} p_j \rfloor` in total).
- ``latency``: one spike at :math:`t_j = \mathrm{round}\big((1 - p_j)(T - 1)\big)` for pixels with
  :math:`p_j > p_{min}`; brighter pixels fire earlier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from bioleaf.errors import UsageError
from bioleaf.model.neurons import indicator

ENCODERS = ("bernoulli", "regular", "latency")

SpikeStream = Callable[[int], torch.Tensor]
"""``stream(t)`` -> the input spikes of step ``t`` (``[batch, n]``); steps are asked for in order."""


@dataclass(frozen=True)
class Encoder:
    """One encoder kind with its parameters; :meth:`step` gives the spikes of step ``t``."""

    kind: str = "bernoulli"
    max_rate: float = 0.5  # spikes per step at intensity 1 (bernoulli, regular)
    min_intensity: float = 0.05  # latency: dimmer pixels never fire

    def __post_init__(self) -> None:
        if self.kind not in ENCODERS:
            raise UsageError(f"--encoder: expected one of {', '.join(ENCODERS)}, got {self.kind!r}")
        if not 0 < self.max_rate <= 1:
            raise UsageError(f"--max-rate: expected a spike probability per step in (0, 1], got {self.max_rate}")
        if not 0 <= self.min_intensity < 1:
            raise UsageError(f"--min-intensity: expected a value in [0, 1), got {self.min_intensity}")

    def step(self, images: torch.Tensor, t: int, steps: int,
             generator: torch.Generator | None) -> torch.Tensor:
        """Spikes (0/1 float tensor shaped like ``images``) at step ``t`` in ``0..steps-1``."""
        if self.kind == "bernoulli":
            u = torch.rand(images.shape, generator=generator, device=images.device, dtype=images.dtype)
            return indicator(torch.lt, u, self.max_rate * images)
        if self.kind == "regular":
            rate = self.max_rate * images
            return indicator(torch.gt, torch.floor((t + 1) * rate + 1e-6), torch.floor(t * rate + 1e-6))
        fire_at = torch.round((1.0 - images) * (steps - 1))
        return ((fire_at == t) & (images > self.min_intensity)).to(images.dtype)

    def stream(self, images: torch.Tensor, steps: int, generator: torch.Generator | None,
               rows: slice | None = None) -> SpikeStream:
        """The spike train of ``images`` step by step, keeping only batch ``rows``.

        Spikes are drawn for the whole batch and then sliced, so a sample's spikes do not depend
        on how the batch is split across processes (distributed training gives the same spikes).
        """
        def spikes_at(t: int) -> torch.Tensor:
            s = self.step(images, t, steps, generator)
            return s if rows is None else s[rows]
        return spikes_at
