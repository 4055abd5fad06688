r"""One presentation per sample (``--schedule one-presentation``): one copy of the circuit, a free period with the
teacher off, then a teacher period, on the input spikes of each moment (docs/theory.md, section 4).

:func:`present_periods` runs both periods; the interneurons' ``P`` learns through their teaching compartment over the
whole presentation or (``--interneuron-period free``) the free period only (:func:`interneuron_timing_sums`), ``Q`` in
the free period, ``W`` in the teacher period against each hidden cell's slow trace of its own free-period apical
potential (:class:`FreePeriodReference`, :func:`teacher_period`).
"""

from __future__ import annotations

import dataclasses

import torch

from bioleaf.model.circuit.cells import Teacher
from bioleaf.model.circuit.eligibility import INTERNEURON, SpikeTimingSums
from bioleaf.model.circuit.params import Context
from bioleaf.model.circuit.pathways import bottom_up
from bioleaf.model.circuit.presentation import (Copies, Copy, FreePhaseMemory, Plasticity, Presentation,
                                                cancellation_updates, input_trace, plastic_updates, read_out,
                                                spike_timing_sums)
from bioleaf.model.circuit.recording import Observer
from bioleaf.model.circuit.spec import ABSENT, CopySpec, circuit_copy
from bioleaf.model.circuit.state import init_state
from bioleaf.model.circuit.sums import CircuitSums, FreePeriodReference
from bioleaf.model.circuit.synapses import Microcircuit
from bioleaf.model.encoding import SpikeStream


@torch.no_grad()
def present_periods(circuit: Microcircuit, spikes: SpikeStream, targets: torch.Tensor | None, ctx: Context, *,
                    batch: int, lateral: Plasticity, learn: Plasticity,
                    observer: Observer | None = None) -> tuple[Presentation, Presentation | None]:
    r"""One continuous presentation of one copy of the circuit (``--schedule one-presentation``): a free period of
    ``params.free_steps`` steps with the teacher off, then a teacher period of ``ctx.steps`` steps; ``spikes`` must
    run for both. Without ``targets`` every step is free (the self-predicting phase) and the teacher period's result
    is ``None``.

    The interneurons learn ``P`` over the whole presentation (``--interneuron-period free``: the free period only),
    their partners' spikes against their own dendritic prediction (:func:`interneuron_timing_sums`); ``Q`` learns in
    the free period, from its apical and interneuron-trace sums (:func:`~bioleaf.model.circuit.presentation.cancellation_updates`); ``W`` in the teacher
    period, by its rule (:func:`plastic_updates`), with each cell's spike count and each output cell's integrated
    basal potential restarted when the teacher comes on (:func:`teacher_period`). Each cell keeps slow traces of its
    free period (:class:`FreePeriodReference`): its apical potential, which its apical compartment is measured
    against in the teacher period, and its rate, which (learned feedback) its count change in the teacher period is
    read against, as :math:`n^{teacher} - \bar r\, T` in place of a free phase's count."""
    params, sizes, dev = ctx.params, circuit.sizes, circuit.W[0].device
    free_steps = params.free_steps + (0 if targets is not None else ctx.steps)
    spec = circuit_copy(circuit, ctx, None, free_reference=False)
    copy = Copy(spec, init_state(spec, batch, dev),
                CircuitSums(sizes, batch, dev, False, traces=0, inter_traces=lateral.Q, live=None))
    inter = interneuron_timing_sums(spec) if lateral.P else None
    reference = None if targets is None else FreePeriodReference(  # what the teacher period reads of the free one
        len(sizes) - 1, params.reference_decay(ctx.neuron.dt), rates=params.reads_count_change())
    x_in = run_steps(copy, circuit, spikes, ctx, range(free_steps), None, [inter, reference], observer)
    free_updates = cancellation_updates(spec, copy.sums, free_steps) if lateral.Q else {}
    free = read_out(Copies(copy), free_updates, free_steps)
    if targets is None:
        free.updates.update(interneuron_updates(inter))
        return free, None
    rates = targets * (ctx.neuron.threshold / ctx.steps)
    copy = teacher_period(copy, circuit, ctx, Teacher.of(rates, params.teacher_strength), batch, learn,
                          tuple(reference.apical))
    taught = inter if params.interneuron_period == "presentation" else None  # P learns in the teacher period too
    run_steps(copy, circuit, spikes, ctx, range(free_steps, free_steps + ctx.steps), x_in, [taught], observer)
    copy.sums.complete(copy.state, copy.spec, ctx.tail)
    memory = FreePhaseMemory(None, [r * ctx.steps for r in reference.rates]) if params.reads_count_change() else None
    updates = plastic_updates(circuit, Copies(copy), list(copy.sums.A), learn, True, memory, ctx)
    free.updates.update(interneuron_updates(inter))
    return free, read_out(Copies(copy), updates, ctx.steps)


def interneuron_timing_sums(spec: CopySpec) -> SpikeTimingSums:
    r"""The eligibility of every hidden layer's ``P`` (where it has interneurons): each interneuron's partner's spikes,
    which reach its teaching compartment, against the spikes its own dendrite predicts (gain :math:`g_B`, coupling 1),
    so the error sums to :math:`\vartheta (n^{partner} - \hat n^I)`: :math:`P_l` learns to predict its partner's
    spikes, step by step, from its own presynaptic ones (the dendritic-prediction form of
    :func:`~bioleaf.model.plasticity.basal_error_stdp`)."""
    n = len(spec.layers)
    return SpikeTimingSums([l for l, layer in enumerate(spec.layers) if layer.interneurons != ABSENT], [1.0] * n,
                           [spec.g_basal] * n, spec.neuron.threshold, population=INTERNEURON)


def interneuron_updates(inter: SpikeTimingSums | None) -> dict[str, torch.Tensor]:
    """``P``'s changes from the interneurons' eligibility (none where ``P`` is not plastic)."""
    if inter is None:
        return {}
    inter.complete()
    return {f"P{l}": e for l, e in inter.E.items()}


def teacher_period(copy: Copy, circuit: Microcircuit, ctx: Context, teacher: Teacher, batch: int,
                   learn: Plasticity, reference: tuple[torch.Tensor, ...]) -> Copy:
    """The copy as the teacher comes on: the same populations, their spike counts and the output cells' integrated
    basal potential restarted (what the teacher period's rules and read-out count), each hidden cell's apical
    compartment measured against its ``reference`` (:class:`FreePeriodReference`), and the running sums of
    ``W``'s rule (the spike-timing eligibility's prediction starting from each soma's own potential)."""
    params, sizes, dev = ctx.params, circuit.sizes, circuit.W[0].device
    spec = dataclasses.replace(circuit_copy(circuit, ctx, teacher, free_reference=False), apical_reference=reference)
    state = copy.state._replace(pyr=[p._replace(count=torch.zeros_like(p.count)) for p in copy.state.pyr],
                                basal_integral=torch.zeros_like(copy.state.basal_integral))
    stdp = params.w_rule == "stdp" and learn.W
    traces = 0 if stdp and not params.homeostasis else len(circuit.W)  # homeostasis reads the trace sums
    sums = CircuitSums(sizes, batch, dev, True, traces=traces, inter_traces=False, live=None)
    if stdp:
        sums.timing = spike_timing_sums(spec, batch, 1, params.window_decay(ctx.neuron.dt),
                                        start={l: p.v for l, p in enumerate(state.pyr)})
    return Copy(spec, state, sums)


def run_steps(copy: Copy, circuit: Microcircuit, spikes: SpikeStream, ctx: Context, steps: range,
              x_in: torch.Tensor | None, listeners: list[SpikeTimingSums | FreePeriodReference | None],
              observer: Observer | None) -> torch.Tensor:
    """The time loop of one period of a presentation: the input trace and the first layer's basal input, then the
    copy's step, added to the ``listeners`` (the interneurons' eligibility, the apical reference; ``None``: absent);
    returns the input trace at the end."""
    for t in steps:
        s_in = spikes(t)
        x_in = input_trace(x_in, s_in, ctx.neuron.lam)
        copy.advance(x_in, bottom_up(x_in, circuit.W[0]), None, observer)
        for listener in listeners:
            if listener is not None:
                listener.add(copy.signals)
        if observer is not None:
            observer.step(s_in, copy.signals)
    return x_in
