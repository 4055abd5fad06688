r"""Spiking neuron dynamics and presynaptic traces, as pure step functions.

Every population in BioLeaF (pyramidal somata, interneurons, output cells, the twins'
layers) is the same integrate-and-fire soma, advanced one time step by :func:`if_step`.

.. math::

    v(t) &= \alpha\, v(t-1) + I(t) \qquad \alpha = e^{-dt/\tau_m}\ (\alpha=1:\ \text{no leak})\\
    s(t) &= H\big(v(t) - \vartheta\big)\, [r(t-1) = 0]\\
    v(t) &\leftarrow v(t) - \vartheta\, s(t) \qquad \text{(reset by subtraction)}\\
    r(t) &= \max(r(t-1) - 1, 0) + n_{ref}\, s(t) \qquad \text{(refractory steps left)}

A spike train is filtered into the presynaptic trace, which is both the PSP seen by the
postsynaptic dendrite and the presynaptic trace the plasticity rules read:

.. math::  x(t) = \lambda\, x(t-1) + s(t), \qquad \lambda = e^{-dt/\tau_s}

State and parameters are immutable named tuples; the functions never mutate their inputs, so
no state leaks between presentations and the same step serves autograd (bptt) and the local
rules alike.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch

from bioleaf.errors import UsageError


class NeuronParams(NamedTuple):
    """Parameters of the integrate-and-fire soma and of the synaptic trace (times in ms)."""

    threshold: float = 1.0
    tau_mem: float = math.inf  # membrane time constant; inf = no leak (pure integrate-and-fire)
    tau_syn: float = 5.0  # trace / PSP time constant
    refractory: int = 0  # refractory period in time steps
    dt: float = 1.0

    @property
    def alpha(self) -> float:
        """Membrane decay per step, ``exp(-dt/tau_mem)`` (1.0 without leak)."""
        return 0.0 if self.tau_mem == 0 else math.exp(-self.dt / self.tau_mem)

    @property
    def lam(self) -> float:
        """Trace decay per step, ``exp(-dt/tau_syn)``."""
        return math.exp(-self.dt / self.tau_syn)

    def validate(self) -> "NeuronParams":
        """Raise :class:`UsageError` for values no neuron can have."""
        checks = [
            (self.threshold > 0 and math.isfinite(self.threshold), "--threshold", "a finite value > 0"),
            (self.tau_mem > 0, "--tau-mem", "a value > 0 (ms), or inf for no leak"),
            (0 < self.tau_syn < math.inf, "--tau-syn", "a finite value > 0 (ms)"),
            (self.refractory >= 0, "--refractory", "an integer >= 0 (steps)"),
            (0 < self.dt < math.inf, "--dt", "a finite value > 0 (ms)"),
        ]
        for ok, flag, expected in checks:
            if not ok:
                raise UsageError(f"{flag}: expected {expected}, got {getattr(self, _FIELD[flag])}")
        return self


_FIELD = {"--threshold": "threshold", "--tau-mem": "tau_mem", "--tau-syn": "tau_syn",
          "--refractory": "refractory", "--dt": "dt"}


class IFState(NamedTuple):
    """State of a population: membrane potential, refractory counter, trace, spike count."""

    v: torch.Tensor
    refrac: torch.Tensor
    trace: torch.Tensor
    count: torch.Tensor


def if_init(batch: int, n: int, *, device: torch.device | str = "cpu",
            dtype: torch.dtype | None = None) -> IFState:
    """A population at rest: all zeros, shape ``[batch, n]`` (``dtype`` ``None``: torch's default dtype, like
    every other state tensor of a presentation)."""
    z = torch.zeros(batch, n, device=device, dtype=dtype)
    return IFState(z, z, z, z)


def indicator(compare: Callable[..., torch.Tensor], a: torch.Tensor, b: torch.Tensor | float) -> torch.Tensor:
    """``compare(a, b)`` (``torch.ge``, ``torch.lt``, ...) as 1.0/0.0 in ``a``'s dtype, without a gradient.
    The comparison writes into a float tensor directly: a boolean mask converted afterwards costs several
    times as much on a CPU."""
    return compare(a.detach(), b, out=torch.empty_like(a))


def heaviside(v: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    r"""Spike nonlinearity without a gradient (local rules and the twins' forward pass): :math:`H(v - \vartheta)`,
    computed as :math:`v \ge \vartheta` (the same in floating point, one operation fewer)."""
    return indicator(torch.ge, v, threshold)


SpikeFn = Callable[[torch.Tensor, float], torch.Tensor]
r"""``spike_fn(v, threshold)`` -> spikes :math:`H(v - \vartheta)`, with or without a surrogate gradient."""


def if_step(current: torch.Tensor, state: IFState, p: NeuronParams,
            spike_fn: SpikeFn = heaviside) -> tuple[torch.Tensor, IFState]:
    r"""Advance a population by one step; returns ``(spikes, new_state)`` (equations above).

    ``spike_fn(v, threshold)`` gives the spikes; bptt passes a surrogate-gradient function. Every
    shortcut gives the same bits as the equations: without leak the decay is skipped, :func:`heaviside`
    compares ``v`` with the threshold directly (:math:`v - \vartheta \ge 0 \Leftrightarrow v \ge \vartheta`
    in floating point), and the reset subtracts :math:`\vartheta s` in one operation (exact: ``s`` is 0 or 1);
    the reset writes into this step's own potential, never into ``state``.
    """
    v = current + state.v if p.alpha == 1.0 else p.alpha * state.v + current
    s = spike_fn(v, p.threshold)
    if p.refractory > 0:
        s = s * indicator(torch.le, state.refrac, 0.0)
        refrac = torch.clamp(state.refrac - 1, min=0) + p.refractory * s
    else:
        refrac = state.refrac
    v = v.sub_(s, alpha=p.threshold)  # v is this step's own tensor: reset in place
    trace = p.lam * state.trace + s
    return s, IFState(v, refrac, trace, state.count + s)
