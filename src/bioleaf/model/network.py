r"""The bottom-up pathway alone: a feed-forward spiking network.

This is the inference network of every rule (the teacher is off at test time and the apical
compartments are decoupled), the network the bptt twin differentiates through, and the forward
pass from which stbp reads spike counts :math:`o_l` and trace sums :math:`X_l = \sum_t x_l(t)`:

.. math::  I_l(t) = g_B\, W_l\, x_{l-1}(t) \ (\text{hidden}), \quad I_L(t) = W_L\, x_{L-1}(t)

with spikes :math:`s_l(t)` and traces :math:`x_l(t)` from :func:`bioleaf.model.neurons.if_step`
(:math:`g_B` is the microcircuit's basal coupling, 1 for the BP twins), the same layer step the
microcircuit's teacher-free copy runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bioleaf.model.encoding import SpikeStream
from bioleaf.model.neurons import NeuronParams, SpikeFn, heaviside
from bioleaf.model.circuit.pathways import bottom_up
from bioleaf.model.circuit.recording import Observer
from bioleaf.model.circuit.spec import inference_copy
from bioleaf.model.circuit.state import init_state
from bioleaf.model.circuit.step import step_copy


@dataclass
class Forward:
    """Spike counts ``o_l`` and trace sums ``X_l`` per layer (``X[0]`` is the input's), and the
    output cells' final membrane potentials."""

    counts: list[torch.Tensor]
    trace_sums: list[torch.Tensor]
    potentials: torch.Tensor

    @property
    def output(self) -> torch.Tensor:
        return self.counts[-1]


def simulate(weights: list[torch.Tensor], spikes: SpikeStream, *, batch: int, steps: int,
             neuron: NeuronParams, g_basal: float = 1.0, spike_fn: SpikeFn = heaviside,
             observer: Observer | None = None) -> Forward:
    """Run ``steps`` time steps on the input spike stream (:func:`bioleaf.model.circuit.spec.inference_copy`: the
    layer step with every apical compartment decoupled; hidden somata receive ``g_basal`` times their basal
    potential, output cells their basal potential); differentiable through ``weights`` when ``spike_fn`` has a
    surrogate gradient (otherwise call it under ``torch.no_grad()``). ``observer`` sees every step
    (e.g. a :class:`bioleaf.model.circuit.recording.Recorder`)."""
    dev = weights[0].device
    spec = inference_copy(weights, neuron, g_basal, spike_fn)
    state = init_state(spec, batch, dev)
    x_in = torch.zeros(batch, weights[0].shape[1], device=dev)
    sums = [torch.zeros_like(x_in)] + [torch.zeros(batch, w.shape[0], device=dev) for w in weights]
    for t in range(steps):
        s_in = spikes(t)
        x_in = neuron.lam * x_in + s_in
        state, signals = step_copy(spec, x_in, bottom_up(x_in, weights[0]), state, observer=observer)
        sums = [sums[0] + x_in] + [s + p.trace for s, p in zip(sums[1:], state.pyr)]
        if observer is not None:
            observer.step(s_in, signals)
    return Forward([p.count for p in state.pyr], sums, state.pyr[-1].v)
