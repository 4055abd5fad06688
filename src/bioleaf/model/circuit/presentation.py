r"""One presentation of a batch: the copies of the circuit it runs, its time loop, and the mapping from the
running sums to the plasticity rules at the end.

A presentation runs ``T`` steps on one batch (:func:`run_time_loop`): each step the input trace and the
first layer's basal input are computed once, then every copy steps (:func:`bioleaf.model.circuit.step.step_copy`)
and adds to its running sums (:mod:`bioleaf.model.circuit.sums`); nothing of size ``T`` is stored. At the end
:func:`plastic_updates` applies the rules of :mod:`bioleaf.model.plasticity` to the sums. The copies
(:func:`circuit_copies`): the circuit itself (its free or teacher phase, or both side by side as stacked copies
of the batch, :func:`present_phases`); with the free error reference a teacher-free copy it replays part of;
with two-sided nudging a second teacher phase with the top hidden layer's coupling reversed. docs/theory.md
explains each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from bioleaf.model import plasticity
from bioleaf.model.circuit.cells import Teacher
from bioleaf.model.circuit.eligibility import SpikeTimingSums
from bioleaf.model.circuit.layout import copy_rows
from bioleaf.model.circuit.params import Context
from bioleaf.model.circuit.pathways import bottom_up
from bioleaf.model.circuit.recording import Observer, Recorder
from bioleaf.model.circuit.spec import ABSENT, LIVE, CopySpec, circuit_copy, reversed_copy, teacher_free_copy
from bioleaf.model.circuit.state import CopyState, Replay, StepSignals, init_state
from bioleaf.model.circuit.step import step_copy
from bioleaf.model.circuit.sums import CircuitSums, PhaseDifference, TraceSums
from bioleaf.model.circuit.synapses import Microcircuit
from bioleaf.model.encoding import SpikeStream


@dataclass
class Plasticity:
    """Which synapse types learn during a presentation."""

    W: bool = True
    P: bool = False
    Q: bool = False
    B: bool = False

    def __or__(self, other: "Plasticity") -> "Plasticity":
        """The synapses plastic in either."""
        return Plasticity(self.W or other.W, self.P or other.P, self.Q or other.Q, self.B or other.B)


@dataclass
class Presentation:
    """What one presentation returns: output counts and potentials, the teacher-free count each
    output cell predicts from its own basal potential (``[sum_t v^B]_+ / theta``), the updates of the
    plastic synapses (``name -> [n_post, n_pre]``, summed over the batch), the integrated apical
    residual of each hidden layer (mean ``|A| / T``) and the integrated apical potentials ``A``.
    With the free error reference the basal count is the free copy's, and ``free_output`` holds the
    free copy's output counts and potentials (what inference answers on the same input spikes)."""

    counts: torch.Tensor
    potentials: torch.Tensor
    basal_counts: torch.Tensor
    updates: dict[str, torch.Tensor]
    apical_residual: list[float]
    hidden_counts: list[torch.Tensor]
    apical_sums: list[torch.Tensor] = field(default_factory=list)
    record: dict[str, torch.Tensor] | None = None  # [T, batch, n] per population (``record=True``)
    free_output: tuple[torch.Tensor, torch.Tensor] | None = None  # free copy's output counts, potentials


class FreePhaseMemory(NamedTuple):
    """What each cell keeps from the free phase on the same input spikes, for the teacher phase that
    follows: hidden cells their integrated apical potential ``A_free`` (``None``: the bottom-up rule reads
    ``A`` itself), every layer's cells their spike count ``n_free`` (learned feedback reads its change)."""

    apical: list[torch.Tensor] | None
    counts: list[torch.Tensor]

    @classmethod
    def of(cls, free: Presentation, contrastive: bool) -> "FreePhaseMemory":
        return cls(free.apical_sums if contrastive else None, free.hidden_counts + [free.counts])


@dataclass
class Copy:
    """One copy of the circuit: its spec, its state, its running sums and its last step's signals."""

    spec: CopySpec
    state: CopyState
    sums: CircuitSums | TraceSums | None = None
    signals: StepSignals | None = None

    def advance(self, pre: torch.Tensor | None, basal: torch.Tensor, replay: Replay | None,
                observer: Observer | None) -> None:
        """One step (:func:`step_copy`), added to the running sums."""
        prev = self.state
        self.state, self.signals = step_copy(self.spec, pre, basal, prev, replay, observer)
        if self.sums is not None:
            self.sums.add(prev, self.signals)

    def rows(self, rows: slice) -> "Copy":
        """This copy's state and sums at the end, restricted to batch ``rows``."""
        return Copy(self.spec, self.state.rows(rows), None if self.sums is None else self.sums.rows(rows))

    def replay(self) -> Replay:
        """This copy's last step, for a copy that replays part of it."""
        return Replay(self.state, self.signals)


@dataclass
class Copies:
    """The copies one presentation runs: the circuit (``main``), the teacher-free copy (``shadow``, free error
    reference) and two-sided nudging's reversed teacher phase (``minus``, from layer ``first`` up) with the
    difference of the two teacher phases."""

    main: Copy
    shadow: Copy | None = None
    minus: Copy | None = None
    first: int = 0
    difference: PhaseDifference | None = None

    def rows(self, rows: slice) -> "Copies":
        """Every copy at the end of the presentation, restricted to batch ``rows``."""
        return Copies(self.main.rows(rows), *(None if c is None else c.rows(rows) for c in (self.shadow, self.minus)))


def circuit_copies(circuit: Microcircuit, ctx: Context, teacher: Teacher | None, batch: int, learn: Plasticity,
                   copies: int = 1) -> Copies:
    """The copies :func:`present` runs for this configuration, at rest, each with the running sums the rules of
    the synapses in ``learn`` read; ``batch`` rows holding ``copies`` stacked copies of the input batch that
    differ only in the teacher's strength."""
    L, sizes, dev = len(circuit.W), circuit.sizes, circuit.W[0].device
    free = ctx.params.error_reference == "free" and teacher is not None
    spec = circuit_copy(circuit, ctx, teacher, free_reference=free, copies=copies)
    live = [l for l, layer in enumerate(spec.layers) if layer.interneurons == LIVE]
    sums = CircuitSums(sizes, batch, dev, teacher is not None, traces=1 if free and not learn.P else L,
                       inter_traces=learn.Q, live=live if learn.P else None)
    if ctx.params.w_rule == "stdp" and learn.W and teacher is not None:
        sums.timing = spike_timing_sums(spec, batch, copies, ctx.params.window_decay(ctx.neuron.dt))
    run = Copies(Copy(spec, init_state(spec, batch, dev), sums))
    if free:
        shadow = teacher_free_copy(circuit, ctx, copies)
        run.shadow = Copy(shadow, init_state(shadow, batch, dev), TraceSums(sizes))
    first = ctx.params.second_phase_start(L) if teacher is not None else None
    if first is not None:
        minus = reversed_copy(circuit, ctx, teacher, first, copies)
        run.minus, run.first = Copy(minus, init_state(minus, batch, dev)), first
        run.difference = PhaseDifference(range(max(first - 1, 0), L - 2), sizes, batch, dev)
    return run


def spike_timing_sums(spec: CopySpec, batch: int, copies: int, window_decay: float = 0.0,
                      start: dict[int, torch.Tensor] | None = None) -> SpikeTimingSums:
    """The eligibility of every layer's ``W`` under the spike-timing-dependent rule, in the teacher phase's rows
    (the last copy's of ``copies`` stacked ones), its plasticity trace decaying by ``window_decay`` per step, its
    predictions starting from ``start`` where given."""
    L = len(spec.circuit.W)
    couplings = spec.couplings + [1.0]  # every hidden soma nudged (CircuitParams.validate_depth)
    gains = [spec.g_basal] * (L - 1) + [1.0]
    rows = slice(batch - batch // copies, batch) if copies > 1 else None
    return SpikeTimingSums(list(range(L)), couplings, gains, spec.neuron.threshold, rows, window_decay=window_decay,
                           start=start)


@torch.no_grad()
def present(circuit: Microcircuit, spikes: SpikeStream, targets: torch.Tensor | None, ctx: Context, *, batch: int,
            learn: Plasticity = Plasticity(W=False), record: bool = False,
            observer: Observer | None = None) -> Presentation:
    """Run one presentation of ``ctx.steps`` time steps.

    ``targets`` are target spike counts ``[batch, n_out]`` (``None``: no teacher). The updates in the result are
    the rules of :mod:`bioleaf.model.plasticity` applied to the running sums each synapse keeps during the
    presentation, summed over samples (memory independent of ``T``). ``record=True`` also keeps every step's
    spikes and apical potentials, ``[T, batch, n]`` (a :class:`Recorder`, for plots only); ``observer`` sees every
    soma of every copy (:mod:`bioleaf.model.circuit.recording`). Rules that read the free phase (a contrastive
    baseline, learned feedback) need :func:`present_phases`.
    """
    params = ctx.params
    if record and observer is not None:
        raise ValueError("present: record=True is an observer (a Recorder) already; pass one or the other")
    if params.reads_count_change() and circuit.B and targets is not None and (learn.W or learn.B):
        raise ValueError("the count-change error reads the free phase's counts: present the two phases with "
                         "present_phases")
    teacher = None if targets is None else Teacher.of(targets * (ctx.neuron.threshold / ctx.steps),
                                                      params.teacher_strength)
    run = circuit_copies(circuit, ctx, teacher, batch, learn)
    recorder = Recorder() if record else None
    errors = run_time_loop(run, circuit, spikes, ctx, recorder or observer)
    updates = plastic_updates(circuit, run, errors, learn, teacher is not None, None, ctx)
    return read_out(run, updates, ctx.steps, recorder)


@torch.no_grad()
def present_phases(circuit: Microcircuit, spikes: SpikeStream, targets: torch.Tensor, ctx: Context, *, batch: int,
                   lateral: Plasticity, learn: Plasticity,
                   observer: Observer | None = None) -> tuple[Presentation, Presentation]:
    """The free phase and the teacher phase on the same input spikes, simulated side by side as one batch of
    ``2 * batch`` rows: the first ``batch`` rows are the free phase (teacher strength 0: no teacher current,
    the output cells driven by their basal input alone), the others the teacher phase. The two halves share
    the circuit, the input spikes and the first layer's basal input (one product), and every other product
    runs once on both. The free half learns ``lateral`` (interneurons), the teacher half ``learn`` against
    what each cell kept from the free half (:class:`FreePhaseMemory`: its apical integral, with
    ``contrastive``, and its count). With the free error reference both halves replay the teacher-free
    copy's top interneurons."""
    params = ctx.params
    rates = targets * (ctx.neuron.threshold / ctx.steps)
    strength = torch.full((2 * batch, 1), params.teacher_strength, device=rates.device)
    strength[:batch] = 0.0
    run = circuit_copies(circuit, ctx, Teacher.of(torch.cat([rates, rates]), strength), 2 * batch, lateral | learn,
                         copies=2)
    errors = run_time_loop(run, circuit, spikes, ctx, observer)
    free_rows, teacher_rows = slice(0, batch), slice(batch, 2 * batch)
    free_run, teach_run = run.rows(free_rows), run.rows(teacher_rows)
    free_updates = plastic_updates(circuit, free_run, [copy_rows(e, free_rows) for e in errors], lateral, False,
                                   None, ctx)
    free = read_out(free_run, free_updates, ctx.steps)
    memory = FreePhaseMemory.of(free, params.contrastive and params.interneurons == "learned")
    updates = plastic_updates(circuit, teach_run, [copy_rows(e, teacher_rows) for e in errors], learn, True, memory,
                              ctx)
    return free, read_out(teach_run, updates, ctx.steps)


def input_trace(x_in: torch.Tensor | None, s_in: torch.Tensor, lam: float) -> torch.Tensor:
    r"""The input's trace :math:`x(t) = \lambda x(t-1) + s(t)` (a fresh tensor at the first step)."""
    return s_in.clone() if x_in is None else lam * x_in + s_in


def run_time_loop(run: Copies, circuit: Microcircuit, spikes: SpikeStream, ctx: Context,
                     observer: Observer | None = None) -> list[torch.Tensor]:
    """The time loop: the input trace and the first layer's basal input once per step (shared by every copy, in one
    copy's rows of stacked copies), then every copy steps (:func:`step_copies`); at the end the PSPs still in
    flight complete their integrals. Returns the error each layer's bottom-up rule reads (two-sided nudging:
    below the top hidden layer, half the difference of the two teacher phases)."""
    x_in = None
    for t in range(ctx.steps):
        s_in = spikes(t)
        x_in = input_trace(x_in, s_in, ctx.neuron.lam)
        step_copies(run, x_in, bottom_up(x_in, circuit.W[0]), observer)
        if observer is not None:
            observer.step(s_in, run.main.signals)
    run.main.sums.complete(run.main.state, run.main.spec, ctx.tail)
    errors = list(run.main.sums.A)
    if run.difference is not None:
        run.difference.add(run.main.state, run.minus.state, ctx.tail)
        two_sided = run.difference.errors(circuit.B)
        errors = [two_sided.get(l, e) for l, e in enumerate(errors)]
    return errors


def step_copies(run: Copies, x_in: torch.Tensor, basal: torch.Tensor, observer: Observer | None) -> None:
    """Every copy one step, in order: the difference of the two teacher phases (read before either steps), the
    teacher-free copy, the circuit (replaying the teacher-free copy's step), the reversed teacher phase (from the
    circuit's basal input at its lowest layer)."""
    if run.difference is not None:
        run.difference.add(run.main.state, run.minus.state)
    replay = None
    if run.shadow is not None:
        run.shadow.advance(x_in, basal, None, observer)
        replay = run.shadow.replay()
    run.main.advance(x_in, basal, replay, observer)
    if run.minus is not None:
        run.minus.advance(None, run.main.signals.basal[run.first], replay, observer)


def read_out(run: Copies, updates: dict[str, torch.Tensor], steps: int,
                    recorder: Recorder | None = None) -> Presentation:
    """What a presentation returns, read off its copies at the end."""
    main, sums, shadow = run.main.state, run.main.sums, run.shadow
    threshold = run.main.spec.neuron.threshold
    return Presentation(
        counts=main.pyr[-1].count, potentials=main.pyr[-1].v, updates=updates,
        basal_counts=torch.relu((shadow or run.main).state.basal_integral) / threshold,
        apical_residual=[float(sums.A[l].abs().mean()) / steps for l in range(len(sums.A) - 1)],
        hidden_counts=[p.count for p in main.pyr[:-1]], apical_sums=sums.A[:-1],
        record=recorder.stacked() if recorder is not None else None,
        free_output=(shadow.state.pyr[-1].count, shadow.state.pyr[-1].v) if shadow is not None else None)


def cancellation_updates(spec: CopySpec, sums: CircuitSums, steps: int) -> dict[str, torch.Tensor]:
    """Every hidden layer's ``Q`` change: the reaching interneurons' trace sums against its apical integral."""
    return {f"Q{l}": plasticity.apical_cancellation(sums.XI[layer.inhibited_by], sums.A[l], steps)
            for l, layer in enumerate(spec.layers)}


def plastic_updates(circuit: Microcircuit, run: Copies, errors: list[torch.Tensor], learn: Plasticity,
                    taught: bool, free_phase: FreePhaseMemory | None, ctx: Context) -> dict[str, torch.Tensor]:
    """The rules of :mod:`bioleaf.model.plasticity` applied to the running sums at the end of a presentation.

    The bottom-up rule of hidden cells reads its error (``A``, or ``A - A_free`` against a free-phase
    baseline), its gate (:func:`plasticity.plasticity_gate` of its count, ``params.gate``) and presynaptic
    sums; with the free error reference the gate and the sums are the teacher-free copy's (each synapse keeps
    its free-phase presynaptic sum, each cell its free count). With learned feedback and the free phase's
    memory, every layer that has a mirror ``B`` below it reads instead the change of its own count from the
    free phase (:func:`plasticity.count_change_error`), the same quantity its mirror ``B`` reads
    (:func:`plasticity.feedback_kolen_pollack`). With ``--homeostasis`` every hidden cell adds its homeostatic
    scaling (:func:`plasticity.homeostatic_scaling`), read from the same count as its gate."""
    L, sums, steps = len(circuit.W), run.main.sums, ctx.steps
    pre_sums, gates = sums.X, run.main.state.pyr
    if run.shadow is not None:
        pre_sums, gates = sums.X[:1] + run.shadow.sums.X, run.shadow.state.pyr
    mirrored = ctx.params.reads_count_change() and free_phase is not None
    changes = count_changes(run, free_phase) if mirrored and taught else {}
    baseline = None if free_phase is None else free_phase.apical
    drives = homeostatic_drives(gates, ctx) if learn.W and taught else {}
    updates: dict[str, torch.Tensor] = {}
    for l in range(L):
        if learn.W and (l < L - 1 or taught):
            if sums.timing is not None:
                updates[f"W{l}"] = sums.timing.E[l]
            else:
                if l in changes:  # the count change is gated by the cell's own spiking already
                    err, active = changes[l], torch.ones_like(changes[l])
                else:
                    err = errors[l] if baseline is None or l == L - 1 else sums.A[l] - baseline[l]
                    active = (plasticity.plasticity_gate(gates[l].count, steps, ctx.params.gate) if l < L - 1
                              else torch.ones_like(err))
                updates[f"W{l}"] = plasticity.basal_error_integrated(pre_sums[l], err, active, steps)
            if l in drives:
                updates[f"W{l}"] += plasticity.homeostatic_scaling(drives[l], pre_sums[l], steps)
    threshold, layers = run.main.spec.neuron.threshold, run.main.spec.layers
    for l in range(L - 1):
        if learn.P and layers[l].interneurons != ABSENT:
            updates[f"P{l}"] = plasticity.interneuron_prediction(
                sums.X[l + 1], run.main.state.pyr[l + 1].count, torch.relu(sums.a_inter[l]) / threshold, steps)
        if learn.B and l + 1 in changes:
            updates[f"B{l}"] = plasticity.feedback_kolen_pollack(changes[l + 1], pre_sums[l + 1], steps)
            if l + 1 in drives:  # the mirror of W_{l+1} takes its homeostatic increment too
                updates[f"B{l}"] += plasticity.feedback_kolen_pollack(drives[l + 1], pre_sums[l + 1], steps)
    if learn.Q:
        updates.update(cancellation_updates(run.main.spec, sums, steps))
    return updates


def homeostatic_drives(gates: list, ctx: Context) -> dict[int, torch.Tensor]:
    """Per hidden layer, with ``--homeostasis``: each cell's homeostatic signal
    (:func:`plasticity.homeostatic_drive`) from the count its gate reads."""
    params, neuron = ctx.params, ctx.neuron
    if not params.homeostasis:
        return {}
    cap = plasticity.count_cap(ctx.steps, neuron.refractory)
    return {l: plasticity.homeostatic_drive(gates[l].count, cap, params.homeostasis, neuron.threshold)
            for l in range(len(gates) - 1)}


def count_changes(run: Copies, free_phase: FreePhaseMemory) -> dict[int, torch.Tensor]:
    """Per layer above the lowest hidden one: the error its cells read from their own counts in the teacher
    phase and the free phase (:func:`plasticity.count_change_error`; coupling 1 at the output cells)."""
    spec, pyr = run.main.spec, run.main.state.pyr
    couplings = spec.couplings + [1.0]
    return {l: plasticity.count_change_error(pyr[l].count, free_phase.counts[l], spec.neuron.threshold, couplings[l])
            for l in range(1, len(pyr))}
