r"""The snnTorch peer: our ``bptt`` network built from stock snnTorch parts, and its BPTT trainer.

snnTorch is the bench's required peer (``pip install 'bioleaf[bench]'``); it is imported when a twin is built.
"""

from __future__ import annotations

import torch

from bioleaf.config import TrainConfig
from bioleaf.errors import UsageError
from bioleaf.model.encoding import SpikeStream
from bioleaf.model.neurons import NeuronParams
from bioleaf.tools.bench.peers.base import TWIN_NEURON, PeerNetwork, PeerTrainer

SNNTORCH_MISSING = "bench: snntorch is not installed; pip install 'bioleaf[bench]'"


def require_snntorch():
    """``(snntorch, snntorch.surrogate)``, or :class:`UsageError` when snnTorch is missing."""
    try:
        import snntorch
        from snntorch import surrogate
    except ImportError:
        raise UsageError(SNNTORCH_MISSING) from None
    return snntorch, surrogate


class SnnTorchTwin(PeerNetwork):
    r"""Our ``bptt`` network built from stock snnTorch parts (``nn.Linear`` + ``snntorch.Leaky``).

    Layer ``l`` receives the presynaptic trace of the layer below as its input current,
    :math:`I_l(t) = W_l x_{l-1}(t)`, :math:`x(t) = \lambda x(t-1) + s(t)` (exactly as
    :func:`bioleaf.model.network.simulate`), and ``snntorch.Leaky(beta=alpha, threshold, fast_sigmoid(slope),
    reset_mechanism="subtract")`` integrates it. One convention differs and is compensated:
    snnTorch subtracts the reset *after* the leak, :math:`m(t) = \beta m(t-1) + I(t) - \vartheta s(t-1)`,
    while our soma leaks the already-reset potential, :math:`v(t) = \alpha (v(t-1) - \vartheta s(t-1)) + I(t)`.
    Adding :math:`(1-\beta)\vartheta s(t-1)` to the current makes the two identical (it is 0 without
    leak). With identical weights and input spikes the output counts are then identical, up to
    floating-point rounding and snnTorch's strict ``mem > threshold`` (ours fires at ``>=``).

    snnTorch detaches the reset from the graph; ours differentiates through it. ``detach_reset=False``
    lets the reset carry the surrogate gradient too, which makes the gradients identical as well
    (the tests check both); the benchmark keeps snnTorch's default.
    """

    library = "snnTorch"

    def __init__(self, sizes: list[int], neuron: NeuronParams = TWIN_NEURON, slope: float = 5.0,
                 *, detach_reset: bool = True, dtype: torch.dtype = torch.float32):
        snn, surrogate = require_snntorch()
        super().__init__(sizes, neuron, dtype)
        self.leak_fix = (1.0 - neuron.alpha) * neuron.threshold
        self.detach_reset = detach_reset
        # beta and threshold as tensors of the working dtype (a Python float would be stored as float32)
        self.lif = torch.nn.ModuleList(
            snn.Leaky(beta=torch.tensor(neuron.alpha, dtype=dtype),
                      threshold=torch.tensor(neuron.threshold, dtype=dtype),
                      spike_grad=surrogate.fast_sigmoid(slope=slope), reset_mechanism="subtract")
            for _ in sizes[1:])
        if not detach_reset:
            for lif in self.lif:
                lif.mem_reset = attached_reset(lif)

    def forward(self, spikes: SpikeStream, *, batch: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Output spike counts and the output cells' final (post-reset) potentials."""
        x_in = self.zeros(batch, self.fc[0].weight.shape[1])
        mem = [self.zeros(batch, n) for n in self.widths]
        spk = [self.zeros(batch, n) for n in self.widths]
        traces = [self.zeros(batch, n) for n in self.widths]
        count = self.zeros(batch, self.widths[-1])
        for t in range(steps):
            x_in = self.lam * x_in + spikes(t)
            self._step(x_in, mem, spk, traces)
            count = count + spk[-1]
        return count, mem[-1] - self.threshold * spk[-1]

    def _step(self, x_in: torch.Tensor, mem: list[torch.Tensor], spk: list[torch.Tensor],
              traces: list[torch.Tensor]) -> None:
        """One time step of every layer, bottom up: replaces each layer's potential, spikes and trace."""
        pre = x_in
        for l, (fc, lif) in enumerate(zip(self.fc, self.lif)):
            cur = fc(pre)
            if self.leak_fix:
                cur = cur + self.leak_fix * (spk[l].detach() if self.detach_reset else spk[l])
            s, mem[l] = lif(cur, mem[l])
            spk[l] = s.to(cur.dtype)  # snnTorch's spike is float32 whatever the dtype
            traces[l] = self.lam * traces[l] + spk[l]
            pre = traces[l]


def attached_reset(lif):
    """snnTorch's reset signal of the layer ``lif`` without its ``detach()``: the reset carries the surrogate
    gradient."""

    def reset(mem: torch.Tensor) -> torch.Tensor:
        return lif.spike_grad(mem - lif.threshold)

    return reset


class SnnTorchTrainer(PeerTrainer):
    """BPTT training of :class:`SnnTorchTwin` (:class:`~bioleaf.tools.bench.peers.base.PeerTrainer`: the encoder,
    loss, optimiser and learning rate of ``bptt``); ``detach_reset`` as in :class:`SnnTorchTwin`."""

    def __init__(self, cfg: TrainConfig, sizes: list[int], weights: list[torch.Tensor], *,
                 detach_reset: bool = True):
        self.check_surrogate(cfg, "snnTorch")
        super().__init__(cfg, SnnTorchTwin(sizes, cfg.neuron, cfg.surrogate_slope, detach_reset=detach_reset),
                         weights)
