r"""The learning window of the bottom-up rules, measured by simulating one synapse.

One presynaptic spike at the middle of a window of ``2 * span + 1`` steps and one postsynaptic spike ``offset``
steps later (negative: earlier), for every offset in ``-span..span``; the presynaptic trace decays as the
neuron's (:math:`x(t) = \lambda x(t-1) + s(t)`), and the postsynaptic cell's basal dendrite gets a fixed drive
(the modulator: none by default, so that the spike is one the apical compartment caused; ``predicted_rate`` spikes
per step make its prediction fire regularly). The change of the synapse is read
from the same code training runs: the spike-timing-dependent rule through its running eligibility
(:class:`bioleaf.model.circuit.eligibility.SpikeTimingSums`), the integrated rule from the presentation sums of the
same error (:func:`bioleaf.model.plasticity.basal_error_integrated`).
"""

from __future__ import annotations

import torch

from bioleaf.model import plasticity
from bioleaf.model.circuit.eligibility import SpikeTimingSums
from bioleaf.model.neurons import NeuronParams


def _pair_signals(neuron: NeuronParams, steps: int, pre_at: int, post_at: int, predicted_rate: float):
    """Per step: the postsynaptic spike, its basal drive (``predicted_rate`` spikes per step) and the presynaptic
    trace."""
    trace = torch.zeros(1, 1)
    for t in range(steps):
        trace = neuron.lam * trace + float(t == pre_at)
        spike = torch.full((1, 1), float(t == post_at))
        yield spike, torch.full((1, 1), predicted_rate * neuron.threshold), trace


def weight_change(rule: str, offset: int, neuron: NeuronParams, span: int = 20, coupling: float = 1.0,
                  predicted_rate: float = 0.0, window_decay: float = 0.0) -> float:
    """The change of one synapse under ``rule`` (``"stdp"`` or ``"integrated"``) for a postsynaptic spike ``offset``
    steps after the presynaptic one (``window_decay``: the spike-timing rule's plasticity trace, ``--tau-stdp``).
    The eligibility runs on two presynaptic columns, the trace and a constant 1, whose change under the integrated
    rule (no plasticity trace) is the error summed over the presentation, :math:`\\sum_t e_i(t)`, which it reads."""
    steps, pre_at = 2 * span + 1, span
    sums = SpikeTimingSums([0], [coupling], [1.0], neuron.threshold,
                           window_decay=window_decay if rule == "stdp" else 0.0)
    trace_sum, trace = torch.zeros(1, 1), torch.zeros(1, 1)
    for spike, basal, trace in _pair_signals(neuron, steps, pre_at, pre_at + offset, predicted_rate):
        sums.add_cells(0, basal, spike, torch.cat([trace, torch.ones(1, 1)], dim=1))
        trace_sum += trace
    sums.complete()
    change, error_sum = float(sums.E[0][0, 0]), sums.E[0][:, 1:].float()
    if rule == "stdp":
        return change
    tail = trace / (1 - neuron.lam)  # the PSP still in flight at the end, as the presentation sums complete it
    return float(plasticity.basal_error_integrated(trace_sum + tail, error_sum, torch.ones(1, 1), steps))


def learning_window(neuron: NeuronParams, span: int = 20, window_decay: float = 0.0) -> dict[str, list[float]]:
    """Offsets (ms) and the change of one synapse at each, for both rules (the spike-timing rule's plasticity trace
    decaying by ``window_decay`` per step)."""
    offsets = list(range(-span, span + 1))
    return {"offset_ms": [o * neuron.dt for o in offsets],
            **{rule: [weight_change(rule, o, neuron, span, window_decay=window_decay) for o in offsets]
               for rule in plasticity.W_RULES}}
