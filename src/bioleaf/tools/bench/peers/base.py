r"""What every peer shares: the leaky neuron of the comparison, the network's layers and synaptic traces, and
the BPTT training loop (encoder, loss, optimiser).

Every peer is the network of our ``bptt`` (``784-400-400-10`` in the bench): layer ``l`` receives the synaptic
trace of the layer below as its current,

.. math::  x_l(t) = \lambda\, x_l(t-1) + s_l(t), \qquad I_l(t) = W_l\, x_{l-1}(t),

(:math:`x_0` the trace of the input spikes, :math:`\lambda = e^{-1/\tau_{syn}}`, ``nn.Linear(bias=False)``),
and a leaky integrate-and-fire population of the peer's library integrates it; the soma of ours is

.. math::  v(t) = \alpha\,\big(v(t-1) - \vartheta\, s(t-1)\big) + I(t), \qquad s(t) = H(v(t) - \vartheta),

with :math:`\alpha = e^{-1/\tau_{mem}}` (:data:`TWIN_NEURON`). Each peer's module says how its library's neuron
is set to give these dynamics, and where it differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bioleaf.config import TrainConfig
from bioleaf.errors import UsageError
from bioleaf.model.encoding import SpikeStream
from bioleaf.model.losses import predict
from bioleaf.model.neurons import NeuronParams

TWIN_NEURON = NeuronParams(tau_mem=20.0)
"""The leaky neuron of the bptt / peer comparison: snnTorch's ``beta = exp(-1/20)``."""


class PeerNetwork(torch.nn.Module):
    """The layers of a peer network (``fc[l]``: ``linear(n_{l-1}, n_l, bias=False, **linear_options)``, an
    ``nn.Linear`` or the library's own subclass of it, the layout of our ``W[l]``); a subclass adds its library's neurons and ``forward(spikes, batch=, steps=)`` -> (output spike
    counts, the output cells' final potentials after their reset)."""

    library = "peer"
    """The library's name, as messages write it."""

    def __init__(self, sizes: list[int], neuron: NeuronParams, dtype: torch.dtype = torch.float32,
                 linear: type[torch.nn.Linear] = torch.nn.Linear, **linear_options):
        super().__init__()
        if neuron.refractory:
            raise UsageError(f"bench: the {self.library} twin has no refractory period (use --refractory 0)")
        self.threshold, self.lam, self.alpha = neuron.threshold, neuron.lam, neuron.alpha
        self.fc = torch.nn.ModuleList(linear(i, o, bias=False, **linear_options).to(dtype)
                                      for i, o in zip(sizes[:-1], sizes[1:]))

    def load_weights(self, weights: list[torch.Tensor]) -> "PeerNetwork":
        """Copy our ``W[l]`` (``[n_out, n_in]``, the same layout as ``nn.Linear.weight``)."""
        with torch.no_grad():
            for fc, w in zip(self.fc, weights):
                fc.weight.copy_(w.detach())
        return self

    def zeros(self, batch: int, n: int) -> torch.Tensor:
        """A ``[batch, n]`` state of zeros on the device and in the dtype of the weights."""
        weight = self.fc[0].weight
        return torch.zeros(batch, n, device=weight.device, dtype=weight.dtype)

    @property
    def widths(self) -> list[int]:
        """The number of cells of every layer above the input."""
        return [fc.weight.shape[0] for fc in self.fc]


def trace_sequence(spikes: torch.Tensor, lam: float) -> torch.Tensor:
    r"""The synaptic traces :math:`x(t) = \lambda x(t-1) + s(t)` of a spike sequence ``[T, ...]``, ``[T, ...]``."""
    traces = [spikes[0]]
    for t in range(1, spikes.shape[0]):
        traces.append(lam * traces[-1] + spikes[t])
    return torch.stack(traces)


@dataclass
class TwinStats:
    """Summed training loss and number of correct predictions of one batch of a peer."""

    loss_sum: float
    correct: int
    samples: int


class PeerTrainer:
    """BPTT training of a :class:`PeerNetwork` in its library's usual loop, with the encoder, loss (cross-entropy
    of the output counts / ``ce_temperature``), optimiser (Adam) and learning rate of our ``bptt``; the network
    starts from ``weights`` and lives on their device."""

    def __init__(self, cfg: TrainConfig, net: PeerNetwork, weights: list[torch.Tensor]):
        self.cfg, self.encoder = cfg, cfg.encoder_obj()
        self.net = net.to(weights[0].device).load_weights(weights)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.learning_rate)

    def train_batch(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> TwinStats:
        """One BPTT step on a batch, its input spikes drawn from ``generator``."""
        n = images.shape[0]
        counts, potentials = self.net(self.encoder.stream(images, self.cfg.steps, generator), batch=n,
                                      steps=self.cfg.steps)
        loss = F.cross_entropy(counts / self.cfg.ce_temperature, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        correct = int((predict(counts.detach(), potentials.detach()) == labels).sum())
        return TwinStats(n * float(loss.detach()), correct, n)

    @torch.no_grad()
    def infer(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """The predicted class of every image (counts, ties broken by the final potentials)."""
        counts, potentials = self.net(self.encoder.stream(images, self.cfg.steps, generator),
                                      batch=images.shape[0], steps=self.cfg.steps)
        return predict(counts, potentials)

    @staticmethod
    def check_surrogate(cfg: TrainConfig, library: str) -> None:
        """:class:`UsageError` unless ``cfg`` asks for the fast-sigmoid surrogate every peer is set up with."""
        if cfg.surrogate != "fast-sigmoid":
            raise UsageError(f"bench: the {library} twin uses fast-sigmoid, got --surrogate {cfg.surrogate}")
