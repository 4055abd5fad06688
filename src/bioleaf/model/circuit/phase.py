r"""One copy of the circuit advanced by one time step: the layer step every simulation is made of.

A :class:`Phase` says, once per presentation, how each layer of one copy of the network is stepped:
whether a hidden layer's apical compartment is coupled to its soma (and with which :math:`g_{A,l}`),
whether its interneurons are simulated, taken over from another copy (*replayed*) or absent, and whether
a teacher nudges the output cells. Its :meth:`Phase.step` runs the layer step of :mod:`bioleaf.model.circuit.cells`
and :mod:`bioleaf.model.circuit.pathways` from its lowest layer to the output:

.. math::

    v^B_l(t) = W_l x_{l-1}(t),\quad v^A_l(t) = B_l x_{l+1}(t-1) + Q_l x^I_l(t-1),\quad
    I_l(t) = g_B v^B_l(t) + g_{A,l} v^A_l(t),\quad I^I_l(t) = g_B P_l x_l(t)

(bottom-up signals cross every layer within the step; top-down and lateral ones use the previous
step's traces). Every simulation of the package is a phase:

- inference, :func:`bioleaf.model.network.simulate`: every apical compartment decoupled, no interneurons,
  no teacher (:func:`feedforward`);
- the circuit's teacher phase and free phase in :func:`bioleaf.model.circuit.microcircuit.present`;
- its teacher-free copy (free error reference): apical compartments decoupled, only the top
  interneurons, which the teacher phase replays, as it replays the unnudged lowest hidden layers'
  pyramidal cells (they fire alike in both copies: :attr:`Phase.replayed_layers`);
- two-sided nudging's second teacher phase: from its lowest nudged layer up, the top hidden layer's
  coupling reversed.

A phase can step ``copies`` copies of one batch stacked on each other that differ only in the teacher's
strength (the free and the teacher phase side by side). Every population below the lowest nudged hidden
layer (apical coupling 0 or decoupled) then behaves identically in every copy: no top-down input reaches
its somata, and its interneurons see only their own layer. Those populations are simulated once, in one
copy's rows, and so are the products leaving them (the next layer's basal input, the interneurons'
prediction ``P``, the inhibition ``Q``); a signal is repeated for every copy where it reaches a population
of all the rows (:func:`bioleaf.model.circuit.pathways.stacked`). The input and its trace are one copy's rows too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch

from bioleaf.model.circuit.cells import Teacher, decoupled_pyramidal_step, interneuron_step, output_step, pyramidal_step
from bioleaf.model.neurons import IFState, NeuronParams, SpikeFn, heaviside, if_init
from bioleaf.model.circuit.pathways import Apical, Prediction, bottom_up, stacked

LIVE, REPLAYED, ABSENT = "live", "replayed", "absent"  # the interneurons of a hidden layer in a phase


class PhaseState(NamedTuple):
    """Every population of one copy: pyramidal (and output) somata per layer, interneurons per hidden
    layer (``None``: not simulated in this copy), the output cells' integrated basal potential."""

    pyr: list[IFState | None]
    inter: list[IFState | None]
    basal_integral: torch.Tensor

    def rows(self, rows: slice) -> "PhaseState":
        """The same populations restricted to the batch ``rows`` of one stacked copy (views, no copies)."""
        def part(state: IFState | None) -> IFState | None:
            return None if state is None else IFState(*(copy_rows(t, rows) for t in state))
        return PhaseState([part(p) for p in self.pyr], [part(i) for i in self.inter], self.basal_integral[rows])


def copy_rows(t: torch.Tensor, rows: slice) -> torch.Tensor:
    """The batch ``rows`` of one stacked copy in ``t``: ``t`` itself where it holds one copy's rows (a population
    every copy shares)."""
    return t if t.shape[0] == rows.stop - rows.start else t[rows]


@dataclass
class StepSignals:
    """What one step of a phase produced, per layer (``None`` where the phase has nothing): the
    presynaptic trace and basal potential reaching each layer, apical potentials, spikes, interneuron
    spikes and somatic currents, the output cells' own predicted rate and teacher current."""

    inputs: list[torch.Tensor | None]
    basal: list[torch.Tensor | None]
    apical: list[torch.Tensor | None]
    spikes: list[torch.Tensor | None]
    inter_spikes: list[torch.Tensor | None]
    inter_current: list[torch.Tensor | None]
    rate: torch.Tensor | None = None
    teacher_current: torch.Tensor | None = None


class Replay(NamedTuple):
    """Another copy's populations and signals in this step, read by a phase that replays part of them (free
    error reference: the teacher-free copy's top interneurons, output prediction and unnudged lower layers)."""

    state: PhaseState
    signals: StepSignals


@dataclass
class Phase:
    """How one copy of the circuit is stepped (see the module docstring)."""

    W: list[torch.Tensor]
    neuron: NeuronParams
    g_basal: float
    couplings: list[float | None]  # per hidden layer: g_A, or None for a decoupled apical compartment
    interneurons: list[str]  # per hidden layer: LIVE, REPLAYED or ABSENT
    feedback_from: list[int] | None = None  # per hidden layer: the layer its B comes from (default: the next)
    apical: Apical | None = None
    prediction: Prediction | None = None
    teacher: Teacher | None = None
    lowest: int = 0  # the layers below are not simulated (their input comes from another copy)
    replay_reference: bool = False  # the teacher current reads the replayed copy's predicted rate
    replayed_layers: int = 0  # the lowest hidden layers (coupling 0) whose pyramidal cells are the replayed copy's
    spike_fn: SpikeFn = heaviside
    name: str = "circuit"  # which copy this is: teacher, free, shadow, reversed, inference
    copies: int = 1  # stacked copies of the batch that differ only in the teacher's strength
    _shared: list[bool] = field(init=False, repr=False)  # per hidden layer: simulated once for every copy
    _layers: list[Callable] = field(init=False, repr=False)
    _teacher_current: Callable = field(init=False, repr=False)

    def __post_init__(self) -> None:
        L, teacher = len(self.W), self.teacher
        if self.feedback_from is None:
            self.feedback_from = list(range(1, L))
        self._shared = [n > 1 for n in identical_copies(self.couplings, self.lowest, self.copies)]
        self._layers = [self._hidden(l) for l in range(self.lowest, L - 1)] + [self._output]
        if teacher is None:
            self._teacher_current = lambda out, replay: None
        elif self.replay_reference:  # the error against the teacher-free copy's prediction
            self._teacher_current = lambda out, replay: teacher.current(replay.signals.rate)
        else:  # against the cell's own prediction
            self._teacher_current = lambda out, replay: teacher.current(out.rate)

    def init(self, batch: int, device: torch.device | str) -> PhaseState:
        """Every population at rest, in ``batch`` rows, or one copy's where every copy shares it (replayed
        interneurons are the teacher-free copy's, which every copy shares)."""
        L, sizes, one = len(self.W), [w.shape[0] for w in self.W], batch // self.copies
        rows = [one if l < L - 1 and self._shared[l] else batch for l in range(L)]
        pyr = [None if l < self.lowest else if_init(rows[l], n, device=device) for l, n in enumerate(sizes)]
        inter = [None if l < self.lowest or mode == ABSENT else
                 if_init(one if mode == REPLAYED else rows[l], sizes[l + 1], device=device)
                 for l, mode in enumerate(self.interneurons)]
        return PhaseState(pyr, inter, torch.zeros(batch, sizes[-1], device=device))

    def step(self, pre: torch.Tensor | None, basal: torch.Tensor, prev: PhaseState,
             replay: Replay | None = None) -> tuple[PhaseState, StepSignals]:
        """Advance every layer from :attr:`lowest` up by one step; ``pre``/``basal``: the trace and
        basal potential reaching the lowest layer, ``replay``: the copy whose interneurons are replayed."""
        L = len(self.W)
        sig = StepSignals(inputs=[None] * L, basal=[None] * L, apical=[None] * (L - 1), spikes=[None] * L,
                          inter_spikes=[None] * (L - 1), inter_current=[None] * (L - 1))
        state = PhaseState(list(prev.pyr), list(prev.inter), prev.basal_integral)
        for layer in self._layers:
            pre, basal, state = layer(pre, basal, prev, state, sig, replay)
        return state, sig

    def _hidden(self, l: int) -> Callable:
        """The step of hidden layer ``l``: its pyramidal cells, then its interneurons."""
        g_apical, neuron, g_basal, W_up = self.couplings[l], self.neuron, self.g_basal, self.W[l + 1]
        source = self.feedback_from[l]
        interneurons = {LIVE: self._live_interneurons, REPLAYED: self._replayed_interneurons,
                        ABSENT: lambda l, pre, basal, prev, state, sig, replay: None}[self.interneurons[l]]

        def decoupled(basal, prev, sig, replay):
            return decoupled_pyramidal_step(basal, prev.pyr[l], neuron, g_basal, self.spike_fn)

        def coupled(basal, prev, sig, replay):
            sig.apical[l] = self.apical(l, prev.pyr[source].trace, prev.inter[l].trace)
            return pyramidal_step(basal, sig.apical[l], prev.pyr[l], neuron, g_basal, g_apical)

        def replayed(basal, prev, sig, replay):  # unnudged (g_A = 0): it fires as in the teacher-free copy
            sig.apical[l] = self.apical(l, prev.pyr[source].trace, prev.inter[l].trace)
            return replay.signals.spikes[l], replay.state.pyr[l]

        replays = l < self.replayed_layers
        pyramidal = replayed if replays else decoupled if g_apical is None else coupled
        basal_above = ((lambda pre, replay: replay.signals.basal[l + 1]) if replays
                       else (lambda pre, replay: bottom_up(pre, W_up)))

        def step(pre, basal, prev, state, sig, replay):  # pre, basal: in the rows of the population below
            basal = stacked(basal, prev.pyr[l].v.shape[0])
            sig.inputs[l], sig.basal[l] = pre, basal
            sig.spikes[l], state.pyr[l] = pyramidal(basal, prev, sig, replay)
            pre = state.pyr[l].trace
            basal = basal_above(pre, replay)
            interneurons(l, pre, basal, prev, state, sig, replay)
            return pre, basal, state
        return step

    def _live_interneurons(self, l, pre, basal_above, prev, state, sig, replay) -> None:
        dendrite = self.prediction(l, pre, basal_above)
        sig.inter_spikes[l], state.inter[l], sig.inter_current[l] = interneuron_step(
            dendrite, prev.inter[l], self.neuron, self.g_basal)

    def _replayed_interneurons(self, l, pre, basal_above, prev, state, sig, replay) -> None:
        sig.inter_spikes[l], state.inter[l] = replay.signals.inter_spikes[l], replay.state.inter[l]

    def _output(self, pre, basal, prev, state, sig, replay):
        L = len(self.W)
        basal = stacked(basal, prev.basal_integral.shape[0])
        sig.inputs[L - 1], sig.basal[L - 1] = pre, basal
        out = output_step(basal, prev.pyr[L - 1], prev.basal_integral, self.neuron, self.teacher, self.spike_fn)
        state.pyr[L - 1], sig.spikes[L - 1], sig.rate = out.soma, out.spikes, out.rate
        sig.teacher_current = self._teacher_current(out, replay)
        return None, None, state._replace(basal_integral=out.basal_integral)


def unnudged_layers(couplings: list[float | None], lowest: int = 0) -> int:
    """How many hidden layers from ``lowest`` up have a soma no apical input reaches (coupling 0 or ``None``):
    driven bottom-up only, they fire alike in every copy of the circuit that shares their input."""
    unnudged = 0
    while lowest + unnudged < len(couplings) and couplings[lowest + unnudged] in (0, None):
        unnudged += 1
    return unnudged


def identical_copies(couplings: list[float | None], lowest: int, copies: int) -> list[int]:
    """Per hidden layer, in how many of ``copies`` stacked copies its populations are identical: all of them
    from ``lowest`` up to the first layer whose soma is nudged (:func:`unnudged_layers`), 1 above."""
    top = lowest + unnudged_layers(couplings, lowest)
    return [copies if l < top else 1 for l in range(len(couplings))]


def feedforward(W: list[torch.Tensor], neuron: NeuronParams, g_basal: float = 1.0, *,
                top_interneurons: Prediction | None = None, spike_fn: SpikeFn = heaviside, copies: int = 1) -> Phase:
    """The bottom-up network alone: every apical compartment decoupled, no teacher; with
    ``top_interneurons`` the top hidden layer's interneurons are simulated too (the teacher-free copy)."""
    n_hidden = len(W) - 1
    inter = [ABSENT] * n_hidden
    if top_interneurons is not None and n_hidden:
        inter[-1] = LIVE
    return Phase(W, neuron, g_basal, couplings=[None] * n_hidden, interneurons=inter,
                 prediction=top_interneurons, spike_fn=spike_fn, copies=copies,
                 name="inference" if top_interneurons is None else "shadow")
