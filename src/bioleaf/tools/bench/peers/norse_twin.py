r"""The Norse peer: our ``bptt`` network built from Norse's box LIF cell (``norse.torch.LIFBoxCell``), stepped
through time the way Norse's cells are, and its BPTT trainer.

Norse is optional: ``scripts/setup.sh`` installs it without its declared dependencies (``pip install --no-deps
norse==1.1.0``: they would replace the pinned CPU torch); it is imported when a twin is built.
"""

from __future__ import annotations

import torch

from bioleaf.config import TrainConfig
from bioleaf.errors import UsageError
from bioleaf.model.encoding import SpikeStream
from bioleaf.model.neurons import NeuronParams
from bioleaf.tools.bench.peers.base import TWIN_NEURON, PeerNetwork, PeerTrainer

NORSE_MISSING = "bench: norse is not installed; pip install --no-deps norse==1.1.0 (what scripts/setup.sh runs)"
NORSE_DT = 1e-3
"""Norse's time step in seconds (its default): one step of ours, 1 ms."""


def require_norse():
    """``norse.torch``, or :class:`UsageError` when Norse is missing."""
    try:
        import norse.torch
    except ImportError:
        raise UsageError(NORSE_MISSING) from None
    return norse.torch


def _scalar(value: float) -> torch.Tensor:
    """A parameter of the cells: a 0-dim float64 tensor, which computes in the dtype of the tensors it meets."""
    return torch.tensor(value, dtype=torch.float64)


class NorseTwin(PeerNetwork):
    r"""Our ``bptt`` network with Norse's ``LIFBoxCell`` (a LIF neuron without a synaptic current) as every layer's
    neurons, one cell call per layer and step, each keeping its own state.

    Norse integrates :math:`\dot v = \tau_{mem}^{-1} (v_{leak} - v + i)` with one Euler step of ``dt``, thresholds
    and resets the result:

    .. math::  v'(t) = v(t-1) + \frac{dt}{\tau_{mem}} \big(i(t) - v(t-1)\big), \quad z(t) = H(v'(t) - v_{th}), \quad
               v(t) = v'(t) - z(t)\, v_{th}

    (``reset_method=reset_subtract``, ``v_leak = 0``). With :math:`dt/\tau_{mem} = 1 - \alpha` (``tau_mem_inv =
    (1 - alpha) / dt``, :math:`\tau_{mem}` = 20.5 ms for our 20 ms: the Euler step that leaks by exactly
    :math:`\alpha`) and the input :math:`i = I / (1 - \alpha)`, the potential at which the current :math:`I`
    settles, this is our soma: :math:`v'(t) = \alpha\, v(t-1) + I(t)`, with the reset before the leak. The
    factor :math:`1 / (1 - \alpha)` rides on the synaptic traces (:math:`\tilde x = x / (1 - \alpha)`, added
    in the same operation as the spikes), so it costs no operation of its own. Without leak (:math:`\alpha =
    1`) the box cell has no such setting, and the twin refuses it.

    Where it differs from ours: Norse fires at :math:`v' > v_{th}` (ours at ``>=``), and its ``"super"``
    surrogate (SuperSpike) has the fast-sigmoid shape with a fixed slope of 1, :math:`\partial z / \partial v' =
    1 / (1 + |v' - v_{th}|)^2`: Norse 1.1.0 takes an ``alpha`` (passed here as our slope) but its backward does
    not read it, where ours uses :math:`1 / (1 + 5 |v' - \vartheta|)^2`. The reset carries the surrogate
    gradient, as ours does.
    """

    library = "Norse"

    def __init__(self, sizes: list[int], neuron: NeuronParams = TWIN_NEURON, slope: float = 5.0,
                 *, dtype: torch.dtype = torch.float32):
        norse = require_norse()
        super().__init__(sizes, neuron, dtype)
        if neuron.alpha == 1.0:
            raise UsageError("bench: the Norse twin needs a leak (--tau-mem finite): a box LIF cell always leaks")
        step = 1.0 - neuron.alpha  # dt / tau_mem of the Euler step
        self.gain = 1.0 / step
        p = norse.LIFBoxParameters(tau_mem_inv=_scalar(step / NORSE_DT), v_leak=_scalar(0.0),
                                   v_th=_scalar(neuron.threshold), v_reset=_scalar(0.0), method="super",
                                   alpha=_scalar(slope), reset_method=norse.reset_subtract)
        self.lif = torch.nn.ModuleList(norse.LIFBoxCell(p, dt=NORSE_DT) for _ in sizes[1:])

    def forward(self, spikes: SpikeStream, *, batch: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Output spike counts and the output cells' final (post-reset) potentials."""
        x_in = self.zeros(batch, self.fc[0].weight.shape[1])
        traces = [self.zeros(batch, n) for n in self.widths]
        states: list = [None] * len(self.lif)  # a cell starts at rest when handed no state
        count = self.zeros(batch, self.widths[-1])
        for t in range(steps):
            x_in = torch.add(self.lam * x_in, spikes(t), alpha=self.gain)
            pre = x_in
            for l, (fc, lif) in enumerate(zip(self.fc, self.lif)):
                z, states[l] = lif(fc(pre), states[l])
                traces[l] = torch.add(self.lam * traces[l], z, alpha=self.gain)
                pre = traces[l]
            count = count + z
        return count, states[-1].v


class NorseTrainer(PeerTrainer):
    """BPTT training of :class:`NorseTwin` (:class:`~bioleaf.tools.bench.peers.base.PeerTrainer`: the encoder,
    loss, optimiser and learning rate of ``bptt``)."""

    def __init__(self, cfg: TrainConfig, sizes: list[int], weights: list[torch.Tensor]):
        self.check_surrogate(cfg, "Norse")
        super().__init__(cfg, NorseTwin(sizes, cfg.neuron, cfg.surrogate_slope), weights)
