r"""The SpikingJelly peer: our ``bptt`` network built from SpikingJelly's multi-step layers
(``layer.Linear`` and ``neuron.LIFNode`` with ``step_mode='m'``), and its BPTT trainer.

SpikingJelly is optional: ``scripts/setup.sh`` installs it without its declared dependencies (``pip install
--no-deps spikingjelly==2.0.0`` and ``loguru``: torchvision and torchaudio would replace the pinned CPU torch); it
is imported when a twin is built.
"""

from __future__ import annotations

import torch

from bioleaf.config import TrainConfig
from bioleaf.errors import UsageError
from bioleaf.model.encoding import SpikeStream
from bioleaf.model.neurons import NeuronParams
from bioleaf.tools.bench.peers.base import TWIN_NEURON, PeerNetwork, PeerTrainer, trace_sequence

SPIKINGJELLY_MISSING = ("bench: spikingjelly is not installed; pip install --no-deps spikingjelly==2.0.0 loguru "
                        "(what scripts/setup.sh runs)")


def require_spikingjelly():
    """``(neuron, layer, surrogate, functional)`` of ``spikingjelly.activation_based``, or :class:`UsageError` when
    SpikingJelly is missing."""
    try:
        import spikingjelly  # noqa: F401  (the package: one that is missing fails here, even with its modules cached)
        from spikingjelly.activation_based import functional, layer, neuron, surrogate
    except ImportError:
        raise UsageError(SPIKINGJELLY_MISSING) from None
    return neuron, layer, surrogate, functional


class SpikingJellyTwin(PeerNetwork):
    r"""Our ``bptt`` network in SpikingJelly's multi-step mode: every layer takes the whole ``[T, batch, n]``
    sequence at once, ``layer.Linear`` one product over all ``T`` steps and ``neuron.LIFNode`` the time loop of its
    cells; ``functional.reset_net`` returns the cells to rest after every batch.

    ``LIFNode(tau, decay_input=False, v_threshold, v_reset=None)`` charges and resets

    .. math::  H(t) = V(t-1) - \frac{1}{\tau} V(t-1) + X(t), \quad S(t) = H(H(t) - V_{th}), \quad
               V(t) = H(t) - S(t)\, V_{th}

    (``v_reset=None``: the soft reset, subtracting the threshold), which with :math:`\tau = 1 / (1 - \alpha)`
    (20.5 for our 20 ms) and :math:`X = I` is our soma exactly, :math:`H(t) = \alpha\,(H(t-1) - \vartheta
    S(t-1)) + I(t)`, firing at ``>=`` as ours does, the reset carrying the surrogate gradient as ours does
    (``detach_reset=False``, SpikingJelly's default).

    Where it differs from ours: the surrogate. ``surrogate.SoftSign(alpha=slope)`` has our fast-sigmoid shape
    but SpikingJelly normalises it to a unit integral, :math:`\partial S / \partial H = \alpha / (2 (1 + \alpha
    |H - V_{th}|)^2)`, 2.5 times ours at slope 5. The synaptic traces between the layers (no SpikingJelly layer
    has this filter) are :func:`~bioleaf.tools.bench.peers.base.trace_sequence`.
    """

    library = "SpikingJelly"

    def __init__(self, sizes: list[int], neuron: NeuronParams = TWIN_NEURON, slope: float = 5.0,
                 *, dtype: torch.dtype = torch.float32):
        sj_neuron, layer, surrogate, functional = require_spikingjelly()
        super().__init__(sizes, neuron, dtype, linear=layer.Linear, step_mode="m")
        self.reset_net = functional.reset_net
        tau = 1.0 / (1.0 - neuron.alpha) if neuron.alpha < 1.0 else float("inf")
        self.lif = torch.nn.ModuleList(
            sj_neuron.LIFNode(tau=tau, decay_input=False, v_threshold=neuron.threshold, v_reset=None,
                              surrogate_function=surrogate.SoftSign(alpha=slope), detach_reset=False, step_mode="m")
            for _ in sizes[1:])

    def forward(self, spikes: SpikeStream, *, batch: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Output spike counts and the output cells' final (post-reset) potentials."""
        s = torch.stack([spikes(t) for t in range(steps)])  # the input frames, [T, batch, n_in]
        for fc, lif in zip(self.fc, self.lif):
            s = lif(fc(trace_sequence(s, self.lam)))
        counts, potentials = s.sum(0), self.lif[-1].v
        self.reset_net(self)
        return counts, potentials


class SpikingJellyTrainer(PeerTrainer):
    """BPTT training of :class:`SpikingJellyTwin` (:class:`~bioleaf.tools.bench.peers.base.PeerTrainer`: the
    encoder, loss, optimiser and learning rate of ``bptt``)."""

    def __init__(self, cfg: TrainConfig, sizes: list[int], weights: list[torch.Tensor]):
        self.check_surrogate(cfg, "SpikingJelly")
        super().__init__(cfg, SpikingJellyTwin(sizes, cfg.neuron, cfg.surrogate_slope), weights)
