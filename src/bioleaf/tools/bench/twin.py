r"""The snnTorch twin: our ``bptt`` network built from stock snnTorch parts, and its BPTT trainer.

snnTorch is an optional dependency (``pip install 'bioleaf[bench]'``); it is imported when a twin is built.
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

SNNTORCH_MISSING = "bench: snntorch is not installed; pip install 'bioleaf[bench]'"
TWIN_NEURON = NeuronParams(tau_mem=20.0)
"""The leaky neuron of the bptt / snnTorch comparison: snnTorch's ``beta = exp(-1/20)``."""


def require_snntorch():
    """``(snntorch, snntorch.surrogate)``, or :class:`UsageError` when snnTorch is missing."""
    try:
        import snntorch
        from snntorch import surrogate
    except ImportError:
        raise UsageError(SNNTORCH_MISSING) from None
    return snntorch, surrogate


class SnnTorchTwin(torch.nn.Module):
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

    def __init__(self, sizes: list[int], neuron: NeuronParams = TWIN_NEURON, slope: float = 5.0,
                 *, detach_reset: bool = True, dtype: torch.dtype = torch.float32):
        super().__init__()
        snn, surrogate = require_snntorch()
        if neuron.refractory:
            raise UsageError("bench: the snnTorch twin has no refractory period (use --refractory 0)")
        self.threshold, self.lam = neuron.threshold, neuron.lam
        self.leak_fix = (1.0 - neuron.alpha) * neuron.threshold
        self.detach_reset = detach_reset
        self.fc = torch.nn.ModuleList(torch.nn.Linear(i, o, bias=False, dtype=dtype)
                                      for i, o in zip(sizes[:-1], sizes[1:]))
        # beta and threshold as tensors of the working dtype (a Python float would be stored as float32)
        self.lif = torch.nn.ModuleList(
            snn.Leaky(beta=torch.tensor(neuron.alpha, dtype=dtype),
                      threshold=torch.tensor(neuron.threshold, dtype=dtype),
                      spike_grad=surrogate.fast_sigmoid(slope=slope), reset_mechanism="subtract")
            for _ in sizes[1:])
        if not detach_reset:
            for lif in self.lif:
                lif.mem_reset = attached_reset(lif)

    def load_weights(self, weights: list[torch.Tensor]) -> "SnnTorchTwin":
        """Copy our ``W[l]`` (``[n_out, n_in]``, the same layout as ``nn.Linear.weight``)."""
        with torch.no_grad():
            for fc, w in zip(self.fc, weights):
                fc.weight.copy_(w.detach())
        return self

    def forward(self, spikes: SpikeStream, *, batch: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Output spike counts and the output cells' final (post-reset) potentials."""
        x_in = self._zeros(batch, self.fc[0].weight.shape[1])
        widths = [fc.weight.shape[0] for fc in self.fc]
        mem = [self._zeros(batch, n) for n in widths]
        spk = [self._zeros(batch, n) for n in widths]
        traces = [self._zeros(batch, n) for n in widths]
        count = self._zeros(batch, widths[-1])
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

    def _zeros(self, batch: int, n: int) -> torch.Tensor:
        """A ``[batch, n]`` state of zeros on the device and in the dtype of the weights."""
        weight = self.fc[0].weight
        return torch.zeros(batch, n, device=weight.device, dtype=weight.dtype)


def attached_reset(lif):
    """snnTorch's reset signal of the layer ``lif`` without its ``detach()``: the reset carries the surrogate
    gradient."""

    def reset(mem: torch.Tensor) -> torch.Tensor:
        return lif.spike_grad(mem - lif.threshold)

    return reset


@dataclass
class TwinStats:
    """Summed training loss and number of correct predictions of one batch of the twin."""

    loss_sum: float
    correct: int
    samples: int


class SnnTorchTrainer:
    """BPTT training of :class:`SnnTorchTwin` in the usual snnTorch loop: same encoder, loss
    (cross-entropy of counts / ``ce_temperature``), optimiser (Adam) and learning rate as ``bptt``; the
    network lives on the device of ``weights``."""

    def __init__(self, cfg: TrainConfig, sizes: list[int], weights: list[torch.Tensor], *,
                 detach_reset: bool = True):
        self.cfg, self.encoder = cfg, cfg.encoder_obj()
        if cfg.surrogate != "fast-sigmoid":
            raise UsageError(f"bench: the snnTorch twin uses fast-sigmoid, got --surrogate {cfg.surrogate}")
        self.net = SnnTorchTwin(sizes, cfg.neuron, cfg.surrogate_slope, detach_reset=detach_reset)
        self.net.to(weights[0].device).load_weights(weights)
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
