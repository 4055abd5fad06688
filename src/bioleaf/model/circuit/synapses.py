"""The plastic synapses of the microcircuit: the four synapse types of every layer, and how they start."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from bioleaf.model.circuit.params import CircuitParams
from bioleaf.model.weights import uniform_init


@dataclass
class Microcircuit:
    """The plastic synapses. ``W[l]``: ``[n_l, n_{l-1}]``; for hidden ``l``: ``B[l]``, ``Q[l]``:
    ``[n_l, n_{l+1}]`` and ``P[l]``: ``[n_{l+1}, n_l]`` (with direct feedback ``B[l]``: ``[n_l, n_out]``, and with
    interneurons mirroring the feedback source ``Q[l]``: ``[n_l, n_out]``, ``P[l]`` empty below the top layer)."""

    W: list[torch.Tensor]
    B: list[torch.Tensor] = field(default_factory=list)
    P: list[torch.Tensor] = field(default_factory=list)
    Q: list[torch.Tensor] = field(default_factory=list)

    @property
    def sizes(self) -> list[int]:
        return [self.W[0].shape[1]] + [w.shape[0] for w in self.W]

    def tensors(self) -> dict[str, torch.Tensor]:
        """All synapses by name (``W0``, ``B0``, ...), e.g. for checkpoints."""
        out = {f"W{l}": w for l, w in enumerate(self.W)}
        for name in "BPQ":
            out.update({f"{name}{l}": t for l, t in enumerate(getattr(self, name))})
        return out

    def feedback_angles(self, sources: list[int] | None = None) -> list[float]:
        r"""Per hidden layer, the angle in degrees between ``B_l`` and :math:`W_{l+1}^\top` (as flat vectors;
        NaN where ``B_l`` comes from another layer than ``l + 1``: ``sources``, from
        :meth:`CircuitParams.feedback_sources`; direct feedback)."""
        sources = sources or list(range(1, len(self.W)))
        return [angle_deg(b, w.T) if source == l + 1 else math.nan
                for l, (b, w, source) in enumerate(zip(self.B, self.W[1:], sources))]

    def sync_ideal(self, params: CircuitParams) -> None:
        """Impose the labelled idealisations: ``B = W_above^T`` (symmetric), ``P = W_above``,
        ``Q = -B`` (ideal interneurons). Copies in place so optimisers keep their tensors."""
        for l in range(len(self.B)):
            if params.feedback == "symmetric":
                self.B[l].copy_(self.W[l + 1].T)
            if params.interneurons == "ideal":
                self.P[l].copy_(self.W[l + 1])
                self.Q[l].copy_(-self.B[l])


def angle_deg(a: torch.Tensor, b: torch.Tensor) -> float:
    """The angle in degrees between ``a`` and ``b`` as flat vectors (NaN when their shapes differ)."""
    if a.shape != b.shape:
        return math.nan
    cosine = float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))


def build_circuit(sizes: list[int], params: CircuitParams, generator: torch.Generator,
                  init_scale: float = 1.0, device: str | torch.device = "cpu") -> Microcircuit:
    """A circuit with random ``W`` and ``B`` (``B_l`` drawn like the transposed bottom-up weights of the layer it
    comes from: ``W_{l+1}^T``, or the output's with direct feedback); interneuron synapses ``P``, ``Q`` start at zero
    (silent, non-inhibiting interneurons) unless the idealisations impose them. ``Q_l`` comes from the interneurons
    that inhibit layer ``l`` (:meth:`CircuitParams.inhibition_sources`); a hidden layer whose interneurons no apical
    dendrite reads has none (its ``P`` has no rows)."""
    W = [uniform_init(o, i, init_scale, generator) for i, o in zip(sizes[:-1], sizes[1:])]
    hidden = range(len(sizes) - 2)
    sources = params.feedback_sources(len(sizes) - 1)
    B = [uniform_init(sizes[sources[l] + 1], sizes[l + 1], init_scale, generator).T.contiguous() for l in hidden]
    if params.center_feedback:
        B = [b - b.mean(dim=1, keepdim=True) for b in B]
    inhibitors = params.inhibition_sources(len(sizes) - 1)
    P = [torch.zeros(sizes[l + 2] if l in inhibitors else 0, sizes[l + 1]) for l in hidden]
    Q = [torch.zeros(sizes[l + 1], sizes[inhibitors[l] + 2]) for l in hidden]
    circuit = Microcircuit(*[[t.to(device) for t in ts] for ts in (W, B, P, Q)])
    circuit.sync_ideal(params)
    return circuit
