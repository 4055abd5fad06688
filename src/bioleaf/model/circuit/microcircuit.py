r"""The BioLeaF dendritic microcircuit: populations, the four pathways, one presentation.

Layers ``l = 0..L-1`` (``L-1`` is the output). Every hidden layer holds pyramidal cells with three
compartments and one interneuron per pyramidal cell of the layer above:

.. math::

    v^B_l(t) &= W_l\, x_{l-1}(t)                                  &&\text{basal (bottom-up)}\\
    v^A_l(t) &= B_l\, x_{l+1}(t-1) + Q_l\, x^I_l(t-1)             &&\text{apical (top-down + inhibition)}\\
    I_l(t)   &= g_B\, v^B_l(t) + g_{A,l}\, v^A_l(t)                 &&\text{soma (integrate-and-fire)}\\
    I^I_l(t) &= g_B\, P_l\, x_l(t)                                  &&\text{interneuron soma}

(:math:`g_{A,l}`: ``g_apical`` times the layer's ``g_apical_layers`` multiplier; ``"0"`` leaves the
lowest hidden layer's soma unnudged, docs/theory.md section 2. With direct feedback every hidden layer's
``B_l`` comes from the output cells, :math:`B_l\, x_{L-1}(t-1)`: :meth:`CircuitParams.feedback_sources`.)
Output cells are nudged by the
teacher, a conductance-like current that pulls their somatic drive toward the target rate
:math:`y_k \vartheta / T`; their apical (error) input is the teacher's pull measured against the
cell's own prediction of its teacher-free rate:

.. math::  I_k(t) = (1-\beta)\, v^B_k(t) + \beta\, y_k \vartheta / T, \qquad
           c_k(t) = \beta\,\big(y_k \vartheta / T - \Delta[a_k]_+(t)\big), \qquad a_k(t) = \sum_{t' \le t} v^B_k(t'),

where :math:`\Delta[a]_+(t) = [a(t)]_+ - [a(t-1)]_+` is the increment of the cell's integrated,
rectified basal potential (:math:`\sum_t \Delta[a]_+ = [\sum_t v^B]_+`, the count model's :math:`[W X]_+`).
The count moves from :math:`o_k` to :math:`[(1-\beta) a_k + \beta y_k \vartheta]_+/\vartheta` (exactly
:math:`y_k` at :math:`\beta = 1`, the default) and :math:`\sum_t c_k = \beta\vartheta\,(y_k - [\sum_t v^B_k]_+/\vartheta)`,
the (negative, scaled) output error of the spiking error function.
With no teacher (``targets=None``) ``c = 0``. Top-down signals arrive one step late (they are
computed from the previous step's traces); bottom-up signals traverse all layers in one step.

Learning reads running sums kept during the presentation (see :mod:`bioleaf.model.plasticity`): the
presynaptic trace sums :math:`X = \sum_t x(t)` and each cell's integrated apical input
:math:`A = \sum_t v^A(t) + v^A(T)/(1-\lambda)` (the last term completes the PSPs still decaying at
the end, so every top-down spike counts with its whole PSP area). With ``contrastive`` (default,
learned interneurons) the bottom-up rule of hidden cells reads :math:`A^{teacher} - A^{free}`, the
cell keeping its free-phase value :math:`A^{free}` (one number per cell) as a baseline.

**Error reference** (``error_reference``). ``nudged`` (one presentation): errors are read in the
teacher phase against the circuit's own, nudged activity. The output cell's prediction
:math:`[\sum_t v^B]_+` and the top interneurons (which predict the output cells) then see hidden
activity already pushed toward the target, so the error is partly cancelled by the nudge it causes:
:math:`e \approx (1 + g_A k\, W W^\top)^{-1} e^{free}`, a loop whose gain grows with the weights.
``free`` (ideal interneurons): the SPEC's free phase followed by a teacher phase on the same input
spikes, simulated side by side (the free phase does not depend on the teacher, so running it in the
same time loop equals running it first): a teacher-free copy of every layer, driven bottom-up only,
which is exactly the ideal circuit's free phase (its apical inputs are zero). Then

- an output cell's error is the teacher against its *own free-phase* prediction,
  :math:`c_k(t) = \beta(y_k\vartheta/T - \Delta[a^{free}_k]_+(t))`, so
  :math:`\sum_t c_k = \beta\vartheta(y_k - [\sum_t v^{B,free}_k]_+/\vartheta)` (the SPEC's "teacher-nudged minus
  unnudged" output error);
- the top interneurons replay their free-phase activity (they predict the output cells' unnudged
  spiking; with ideal interneurons that is their spike train in the free phase), so the top hidden layer
  reads :math:`B(x^{teacher}_{out} - x^{I,free})`; deeper interneurons stay live, because there the layer
  above is itself nudged by the layer below and the live interneurons cancel that self-caused part.
  Run strictly one phase after the other this replay would be a spike train held for ``T`` steps;
  it is part of the ideal-interneuron idealisation (like :math:`P = W`), labelled as such;
- the bottom-up rule's presynaptic sums :math:`X_j` and gates :math:`[n_i > 0]` are the free-phase ones
  (each synapse keeps its presynaptic trace sum from the free phase, each cell its free spike count).

The copy shares the first layer's basal input with the teacher phase, and with it the lowest hidden layers
whose soma no apical input reaches (coupling 0, as in the presets): their cells fire alike in both, so the
teacher phase takes their spikes and the basal input above them from the copy instead of simulating them
again (the same numbers). It costs the bottom-up products above those layers (with every hidden layer
nudged, about a quarter more work per step), and gives the teacher-free output on the fly (the per-batch
training accuracy).

**Two-sided nudging** (``nudge="two-sided"``, free reference): a second teacher phase on the same input
spikes in which the top hidden layer's coupling is reversed (:math:`I_{L-2} = g_B v^B - g_A v^A`), run
alongside from the lowest nudged layer up (the layers below it fire as in the free phase in every
phase, so they are shared). The layers below the top hidden one learn from half the difference of
their apical integrals in the two phases,

.. math::  A_l = \tfrac12 \big(A^+_l - A^-_l\big)
               = \tfrac12 B_l \sum_t \big[(x^+_{l+1} - x^{I+}_l) - (x^-_{l+1} - x^{I-}_l)\big]\ (+\text{tail}),

the central difference of the layer above's response to its nudge (one-sided at a rectification or at
the cap of ``T`` spikes otherwise). The top hidden layer and the output read the teacher itself and
keep their one-sided errors.

A presentation runs ``T`` steps on one batch and accumulates these sums online; nothing of size
``T`` is ever stored. Updates are the rules of :mod:`bioleaf.model.plasticity` applied to the sums at the end.

Where each piece lives: the cell types in :mod:`bioleaf.model.circuit.cells`, the four pathways in
:mod:`bioleaf.model.circuit.pathways`, the layer step every copy of the circuit runs in :mod:`bioleaf.model.circuit.phase`, the
running sums and the end-of-presentation rules in :mod:`bioleaf.model.circuit.presentation`; :func:`present` below is the
schedule that puts them together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch

from bioleaf.model import plasticity
from bioleaf.model.circuit.cells import Teacher
from bioleaf.model.encoding import SpikeStream
from bioleaf.errors import UsageError
from bioleaf.model.network import uniform_init
from bioleaf.model.neurons import NeuronParams
from bioleaf.parsing import number_list
from bioleaf.model.circuit.pathways import apical_pathway, bottom_up, prediction_pathway
from bioleaf.model.circuit.phase import LIVE, REPLAYED, Phase, copy_rows, feedforward, unnudged_layers
from bioleaf.model.circuit.presentation import CircuitSums, Copy, PhaseDifference, Presentation, Recorder, TraceSums

FEEDBACK_MODES = ("symmetric", "random", "learned", "direct")
INTERNEURON_MODES = ("learned", "ideal")
ERROR_REFERENCES = ("nudged", "free")
NUDGES = ("one-sided", "two-sided")
IDEALISATIONS = ("copied-feedback", "copied-interneurons", "teacher-free-copy")
"""The switches that break the locality contract on purpose, to build the special circumstance in which
BioLeaF equals ST-BP. Feedback
``B`` copied from ``W_{l+1}^T`` (``--feedback symmetric``), interneuron synapses copied from the layer
above (``--interneurons ideal``: ``P = W_{l+1}``, ``Q = -B``) and a teacher-free shadow copy of the
network run beside the teacher phase (``--error-reference free``)."""


@dataclass(frozen=True)
class CircuitParams:
    """Microcircuit parameters (the defaults are the ones the docs and tests use)."""

    g_basal: float = 1.0  # basal -> soma coupling (also the interneuron's somatic gain)
    g_apical: float = 0.5  # apical -> soma coupling of hidden pyramidal cells
    g_apical_layers: str = ""  # multipliers of g_apical per hidden layer, bottom first; unlisted layers: 1 ("0")
    teacher_strength: float = 1.0  # beta in [0, 1]: 1 clamps output counts to their targets
    target_high: float = 10.0  # target spike count of the labelled output cell
    target_low: float = 0.0  # target spike count of the other output cells
    feedback: str = "symmetric"
    interneurons: str = "learned"
    contrastive: bool = True  # learned interneurons: W reads A_teacher - A_free (free-phase apical baseline)
    center_feedback: bool = True  # random/learned/direct B: remove each row's mean over the cells above
    error_reference: str = "nudged"  # free: errors against a teacher-free copy run alongside (ideal interneurons)
    nudge: str = "one-sided"  # two-sided: a second teacher phase with the top hidden coupling reversed (free)
    gate: str = "fired"  # hidden cells' bottom-up plasticity gate: fired [n > 0], headroom [n > 0] (1 - n / T)

    def validate(self, steps: int) -> "CircuitParams":
        """Raise :class:`UsageError` for values that cannot give a working circuit."""
        if self.feedback not in FEEDBACK_MODES:
            raise UsageError(f"--feedback: expected one of {', '.join(FEEDBACK_MODES)}, got {self.feedback!r}")
        if self.interneurons not in INTERNEURON_MODES:
            raise UsageError(f"--interneurons: expected one of {', '.join(INTERNEURON_MODES)}, got {self.interneurons!r}")
        if self.feedback == "direct" and self.interneurons != "learned":
            raise UsageError("--feedback direct: needs --interneurons learned (the interneurons of a layer predict "
                             "the layer above, which direct feedback skips, so Q cannot be a copy of -B)")
        if self.error_reference not in ERROR_REFERENCES:
            raise UsageError(f"--error-reference: expected one of {', '.join(ERROR_REFERENCES)}, "
                             f"got {self.error_reference!r}")
        if self.error_reference == "free" and self.interneurons != "ideal":
            raise UsageError("--error-reference free: needs --interneurons ideal (learned interneurons "
                             "measure errors in their own free phase)")
        if self.nudge not in NUDGES:
            raise UsageError(f"--nudge: expected one of {', '.join(NUDGES)}, got {self.nudge!r}")
        if self.gate not in plasticity.GATES:
            raise UsageError(f"--gate: expected one of {', '.join(plasticity.GATES)}, got {self.gate!r}")
        if self.nudge == "two-sided" and self.error_reference != "free":
            raise UsageError("--nudge two-sided: needs --error-reference free (and so --interneurons ideal)")
        if not 0 < self.teacher_strength <= 1:
            raise UsageError(f"--teacher-strength: expected a value in (0, 1] (1 clamps outputs to their targets; "
                             f"more makes counts overshoot and explode), got {self.teacher_strength}")
        if not (self.g_basal > 0 and math.isfinite(self.g_basal)):
            raise UsageError(f"--g-basal: expected a finite value > 0, got {self.g_basal}")
        if not (0 <= self.g_apical <= 10):
            raise UsageError(f"--g-apical: expected a value in [0, 10], got {self.g_apical}")
        self.layer_multipliers()
        if not 0 <= self.target_low < self.target_high <= steps:
            raise UsageError(f"--target-high/--target-low: expected 0 <= low < high <= steps ({steps}) "
                             f"spikes, got low={self.target_low}, high={self.target_high}")
        return self

    def feedback_sources(self, n_layers: int) -> list[int]:
        """The layer whose pyramidal cells send each hidden layer's top-down ``B``: the layer above, or the
        output cells for every hidden layer (``direct``: direct random feedback, the DFA-style circuit)."""
        top = n_layers - 1
        return [top if self.feedback == "direct" else l + 1 for l in range(top)]

    def idealisations(self) -> list[str]:
        """The :data:`IDEALISATIONS` this circuit uses (empty: local learning only)."""
        used = [self.feedback == "symmetric", self.interneurons == "ideal", self.error_reference == "free"]
        return [name for name, on in zip(IDEALISATIONS, used) if on]

    def validate_depth(self, n_hidden: int) -> None:
        """The checks that need the number of hidden layers (:class:`UsageError` naming the flags)."""
        couplings = self.apical_couplings(n_hidden)
        if self.feedback == "learned" and 0 in couplings[1:]:
            raise UsageError("--feedback learned: needs every hidden layer above the lowest nudged (its cells' count "
                             "change is the error its mirror B reads); check --g-apical and --g-apical-layers")

    def layer_multipliers(self, n_hidden: int | None = None) -> list[float]:
        """The ``g_apical_layers`` multipliers (:class:`UsageError` unless numbers in [0, 10], at most one per
        hidden layer when ``n_hidden`` is known)."""
        if not self.g_apical_layers:
            return []
        return number_list(self.g_apical_layers, "--g-apical-layers", valid=lambda m: 0 <= m <= 10,
                           items="numbers in [0, 10]", count=n_hidden, at_most=True,
                           counted="multipliers (one per hidden layer, bottom first)")

    def apical_couplings(self, n_hidden: int) -> list[float]:
        """``g_A`` of each hidden layer, bottom first: ``g_apical`` times its ``g_apical_layers`` multiplier
        (layers beyond the list keep 1, so ``"0"`` means "the lowest hidden layer unnudged" at any depth)."""
        mult = self.layer_multipliers(n_hidden)
        return [self.g_apical * m for m in mult] + [self.g_apical] * (n_hidden - len(mult))


@dataclass
class Microcircuit:
    """The plastic synapses. ``W[l]``: ``[n_l, n_{l-1}]``; for hidden ``l``: ``B[l]``, ``Q[l]``:
    ``[n_l, n_{l+1}]`` and ``P[l]``: ``[n_{l+1}, n_l]``."""

    W: list[torch.Tensor]
    B: list[torch.Tensor] = field(default_factory=list)
    P: list[torch.Tensor] = field(default_factory=list)
    Q: list[torch.Tensor] = field(default_factory=list)

    @property
    def sizes(self) -> list[int]:
        return [self.W[0].shape[1]] + [w.shape[0] for w in self.W]

    def tensors(self) -> dict[str, torch.Tensor]:
        """All synapses by name (``W0``, ``B0``, ...), e.g. for checkpoints."""
        out = {f"W{l}": w for l, w in enumerate(self.W)}
        for name in "BPQ":
            out.update({f"{name}{l}": t for l, t in enumerate(getattr(self, name))})
        return out

    def feedback_angles(self) -> list[float]:
        r"""Per hidden layer, the angle in degrees between ``B_l`` and :math:`W_{l+1}^\top` (as flat vectors;
        NaN where ``B_l`` comes from another layer: direct feedback)."""
        def angle(b: torch.Tensor, w: torch.Tensor) -> float:
            if b.shape != w.T.shape:
                return math.nan
            cosine = float(torch.nn.functional.cosine_similarity(b.flatten(), w.T.flatten(), dim=0))
            return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))
        return [angle(b, w) for b, w in zip(self.B, self.W[1:])]

    def sync_ideal(self, params: CircuitParams) -> None:
        """Impose the labelled idealisations: ``B = W_above^T`` (symmetric), ``P = W_above``,
        ``Q = -B`` (ideal interneurons). Copies in place so optimisers keep their tensors."""
        for l in range(len(self.B)):
            if params.feedback == "symmetric":
                self.B[l].copy_(self.W[l + 1].T)
            if params.interneurons == "ideal":
                self.P[l].copy_(self.W[l + 1])
                self.Q[l].copy_(-self.B[l])


def build_circuit(sizes: list[int], params: CircuitParams, generator: torch.Generator,
                  init_scale: float = 1.0, device: str | torch.device = "cpu") -> Microcircuit:
    """A circuit with random ``W`` and ``B`` (``B_l`` drawn like the transposed bottom-up weights of the layer it
    comes from: ``W_{l+1}^T``, or the output's with direct feedback); interneuron synapses ``P``, ``Q`` start at zero
    (silent, non-inhibiting interneurons) unless the idealisations impose them."""
    W = [uniform_init(o, i, init_scale, generator) for i, o in zip(sizes[:-1], sizes[1:])]
    hidden = range(len(sizes) - 2)
    sources = params.feedback_sources(len(sizes) - 1)
    B = [uniform_init(sizes[sources[l] + 1], sizes[l + 1], init_scale, generator).T.contiguous() for l in hidden]
    if params.center_feedback:
        B = [b - b.mean(dim=1, keepdim=True) for b in B]
    P = [torch.zeros(sizes[l + 2], sizes[l + 1]) for l in hidden]
    Q = [torch.zeros(sizes[l + 1], sizes[l + 2]) for l in hidden]
    circuit = Microcircuit(*[[t.to(device) for t in ts] for ts in (W, B, P, Q)])
    circuit.sync_ideal(params)
    return circuit


def second_phase_start(params: CircuitParams, n_layers: int) -> int | None:
    """The lowest layer two-sided nudging's second teacher phase simulates (the lowest hidden layer whose
    soma is nudged), or ``None`` when it has nothing to change: one-sided nudging, no hidden layer nudged,
    or no layer below the top hidden one (which reads the teacher itself)."""
    if params.nudge != "two-sided" or params.error_reference != "free" or n_layers < 3:
        return None
    g_apical = params.apical_couplings(n_layers - 1)
    return next((l for l, g in enumerate(g_apical) if g != 0), None)


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
class Plasticity:
    """Which synapse types learn during a presentation."""

    W: bool = True
    P: bool = False
    Q: bool = False
    B: bool = False

    def __or__(self, other: "Plasticity") -> "Plasticity":
        """The synapses plastic in either."""
        return Plasticity(self.W or other.W, self.P or other.P, self.Q or other.Q, self.B or other.B)


def teacher_phase(circuit: Microcircuit, params: CircuitParams, neuron: NeuronParams, teacher: Teacher | None, *,
                  free_reference: bool, couplings: list[float] | None = None, lowest: int = 0,
                  name: str | None = None, copies: int = 1) -> Phase:
    """The circuit with every apical compartment coupled (``couplings``: per hidden layer, default the
    configured ``g_A``) and a teacher on the output cells, or none (the free phase); ``copies`` stacked copies
    of the batch that differ only in the teacher's strength. With the free error reference the top
    interneurons and the output cells' prediction are the teacher-free copy's, and so are the pyramidal cells
    of the unnudged lowest hidden layers (coupling 0: they fire as in the teacher-free copy, which has
    simulated them already; their apical potentials are still this phase's own)."""
    L, ideal = len(circuit.W), params.interneurons == "ideal"
    couplings = couplings or params.apical_couplings(L - 1)
    inter = [LIVE] * (L - 1)
    if free_reference and L > 1:
        inter[-1] = REPLAYED
    return Phase(circuit.W, neuron, params.g_basal, couplings=couplings, interneurons=inter,
                 feedback_from=params.feedback_sources(L), apical=apical_pathway(circuit.B, circuit.Q, ideal),
                 prediction=prediction_pathway(circuit.P, ideal), teacher=teacher, lowest=lowest,
                 replay_reference=free_reference, replayed_layers=unnudged_layers(couplings) if free_reference else 0,
                 name=name or ("free" if teacher is None else "teacher"), copies=copies)


def reversed_teacher_phase(circuit: Microcircuit, params: CircuitParams, neuron: NeuronParams, teacher: Teacher,
                           first: int, copies: int = 1) -> Phase:
    """Two-sided nudging's second teacher phase: from layer ``first`` up, the top hidden layer's coupling reversed."""
    g_apical = params.apical_couplings(len(circuit.W) - 1)
    return teacher_phase(circuit, params, neuron, teacher, free_reference=True, lowest=first,
                         couplings=g_apical[:-1] + [-g_apical[-1]], name="reversed", copies=copies)


@dataclass
class Copies:
    """The copies of the circuit one presentation runs and ``schedule``, the order in which they step:
    the teacher-free copy first (free error reference: the teacher phase replays its top interneurons and
    prediction), then the teacher (or free) phase, then two-sided nudging's second teacher phase (the
    difference of the two teacher phases is taken before either steps)."""

    main: Copy
    shadow: Copy | None = None
    minus: Copy | None = None
    difference: PhaseDifference | None = None
    schedule: list[Callable[[torch.Tensor, torch.Tensor], None]] = field(default_factory=list)

    def rows(self, rows: slice) -> "Copies":
        """Every copy at the end of the presentation, restricted to batch ``rows``."""
        part = lambda c: None if c is None else c.rows(rows)  # noqa: E731
        return Copies(self.main.rows(rows), part(self.shadow), part(self.minus))


def circuit_copies(circuit: Microcircuit, params: CircuitParams, neuron: NeuronParams, teacher: Teacher | None,
                   batch: int, learn: Plasticity, copies: int = 1) -> Copies:
    """The copies :func:`present` runs for this configuration, at rest, each with the running sums the rules of
    the synapses in ``learn`` read; ``batch`` rows holding ``copies`` stacked copies of the input batch that
    differ only in the teacher's strength."""
    W, L, sizes, dev = circuit.W, len(circuit.W), circuit.sizes, circuit.W[0].device
    free = params.error_reference == "free" and teacher is not None
    phase = teacher_phase(circuit, params, neuron, teacher, free_reference=free, copies=copies)
    live = [l for l, mode in enumerate(phase.interneurons) if mode == LIVE]
    sums = CircuitSums(sizes, batch, dev, teacher is not None, traces=1 if free and not learn.P else L,
                       inter_traces=learn.Q, live=live if learn.P else None)
    run = Copies(main := Copy(phase, phase.init(batch, dev), sums))
    if free:
        top = prediction_pathway(circuit.P, params.interneurons == "ideal")
        phase = feedforward(W, neuron, params.g_basal, top_interneurons=top, copies=copies)
        run.shadow = shadow = Copy(phase, phase.init(batch, dev), TraceSums(sizes))
        run.schedule.append(lambda x, basal: shadow.advance(x, basal))
        run.schedule.append(lambda x, basal: main.advance(x, basal, shadow.replay()))
    else:
        run.schedule.append(lambda x, basal: main.advance(x, basal))
    first = second_phase_start(params, L) if teacher is not None else None
    if first is not None:
        phase = reversed_teacher_phase(circuit, params, neuron, teacher, first, copies)
        run.minus = minus = Copy(phase, phase.init(batch, dev))
        run.difference = difference = PhaseDifference(range(max(first - 1, 0), L - 2), sizes, batch, dev)
        run.schedule.insert(0, lambda x, basal: difference.add(main.state, minus.state))
        run.schedule.append(lambda x, basal: minus.advance(None, main.signals.basal[first], shadow.replay()))
    return run


@torch.no_grad()
def present(circuit: Microcircuit, spikes: SpikeStream, targets: torch.Tensor | None, *, batch: int,
            steps: int, neuron: NeuronParams, params: CircuitParams, learn: Plasticity = Plasticity(W=False),
            record: bool = False) -> Presentation:
    """Run one presentation of ``steps`` time steps (equations in the module docstring).

    ``targets`` are target spike counts ``[batch, n_out]`` (``None``: no teacher). The updates in
    the result are the rules of :mod:`bioleaf.model.plasticity` applied to the running sums each synapse
    keeps during the presentation, summed over samples (memory independent of ``steps``).
    ``record=True`` also keeps every step's spikes and apical potentials, ``[T, batch, n]`` (for plots only).
    Rules that read the free phase (a contrastive baseline, learned feedback) need :func:`present_phases`.
    """
    if params.feedback == "learned" and circuit.B and targets is not None and (learn.W or learn.B):
        raise ValueError("learned feedback reads the free phase's counts: present the two phases with present_phases")
    teacher = None if targets is None else Teacher.of(targets * (neuron.threshold / steps), params.teacher_strength)
    run = circuit_copies(circuit, params, neuron, teacher, batch, learn)
    recorder = Recorder() if record else None
    errors = run_presentation(run, circuit, spikes, steps, neuron, recorder)
    updates = plastic_updates(circuit, run, errors, learn, teacher is not None, None, params, steps)
    return presentation_of(run, updates, steps, recorder)


@torch.no_grad()
def present_phases(circuit: Microcircuit, spikes: SpikeStream, targets: torch.Tensor, *, batch: int, steps: int,
                   neuron: NeuronParams, params: CircuitParams, lateral: Plasticity, learn: Plasticity
                   ) -> tuple[Presentation, Presentation]:
    """The free phase and the teacher phase on the same input spikes, simulated side by side as one batch of
    ``2 * batch`` rows: the first ``batch`` rows are the free phase (teacher strength 0: no teacher current,
    the output cells driven by their basal input alone), the others the teacher phase. The two halves share
    the circuit, the input spikes and the first layer's basal input (one product), and every other product
    runs once on both. The free half learns ``lateral`` (interneurons), the teacher half ``learn`` against
    what each cell kept from the free half (:class:`FreePhaseMemory`: its apical integral, with
    ``contrastive``, and its count). With the free error reference both halves replay the teacher-free
    copy's top interneurons."""
    rates = targets * (neuron.threshold / steps)
    strength = torch.full((2 * batch, 1), params.teacher_strength, device=rates.device)
    strength[:batch] = 0.0
    run = circuit_copies(circuit, params, neuron, Teacher.of(torch.cat([rates, rates]), strength), 2 * batch,
                         lateral | learn, copies=2)
    errors = run_presentation(run, circuit, spikes, steps, neuron)
    halves = slice(0, batch), slice(batch, 2 * batch)
    (free_run, teach_run), (free_errors, teach_errors) = zip(*[(run.rows(h), [copy_rows(e, h) for e in errors]) for h in halves])
    free = presentation_of(free_run, plastic_updates(circuit, free_run, free_errors, lateral, False, None, params,
                                                     steps), steps)
    memory = FreePhaseMemory.of(free, params.contrastive and params.interneurons == "learned")
    updates = plastic_updates(circuit, teach_run, teach_errors, learn, True, memory, params, steps)
    return free, presentation_of(teach_run, updates, steps)


def run_presentation(run: Copies, circuit: Microcircuit, spikes: SpikeStream, steps: int, neuron: NeuronParams,
                     recorder: Recorder | None = None) -> list[torch.Tensor]:
    """The time loop of :func:`present`: the input trace and the first layer's basal input once per step
    (shared by every copy, in one copy's rows of the stacked copies of the batch), then every copy steps;
    at the end the PSPs still in flight complete their integrals. The error each layer's bottom-up rule
    reads (two-sided nudging: below the top hidden layer, half the difference of the two teacher phases)."""
    x_in = None
    for t in range(steps):
        s_in = spikes(t)
        x_in = s_in.clone() if x_in is None else neuron.lam * x_in + s_in
        basal = bottom_up(x_in, circuit.W[0])
        for advance in run.schedule:
            advance(x_in, basal)
        if recorder is not None:
            recorder.add(s_in, run.main.signals)
    tail = 1.0 / (1.0 - neuron.lam)
    run.main.sums.complete(run.main.state, run.main.phase, tail)
    errors = list(run.main.sums.A)
    if run.difference is not None:
        run.difference.add(run.main.state, run.minus.state, tail)
        two_sided = run.difference.errors(circuit.B)
        errors = [two_sided.get(l, e) for l, e in enumerate(errors)]
    return errors


def presentation_of(run: Copies, updates: dict[str, torch.Tensor], steps: int,
                    recorder: Recorder | None = None) -> Presentation:
    """What a presentation returns, read off its copies at the end."""
    main, sums, shadow = run.main.state, run.main.sums, run.shadow
    threshold = run.main.phase.neuron.threshold
    return Presentation(
        counts=main.pyr[-1].count, potentials=main.pyr[-1].v, updates=updates,
        basal_counts=torch.relu((shadow or run.main).state.basal_integral) / threshold,
        apical_residual=[float(sums.A[l].abs().mean()) / steps for l in range(len(sums.A) - 1)],
        hidden_counts=[p.count for p in main.pyr[:-1]], apical_sums=sums.A[:-1],
        record=recorder.stacked() if recorder is not None else None,
        free_output=(shadow.state.pyr[-1].count, shadow.state.pyr[-1].v) if shadow is not None else None)


def plastic_updates(circuit: Microcircuit, run: Copies, errors: list[torch.Tensor], learn: Plasticity,
                    taught: bool, free_phase: FreePhaseMemory | None, params: CircuitParams, steps: int
                    ) -> dict[str, torch.Tensor]:
    """The rules of :mod:`bioleaf.model.plasticity` applied to the running sums at the end of a presentation.

    The bottom-up rule of hidden cells reads its error (``A``, or ``A - A_free`` against a free-phase
    baseline), its gate (:func:`plasticity.plasticity_gate` of its count, ``params.gate``) and presynaptic
    sums; with the free error reference the gate and the sums are the teacher-free copy's (each synapse keeps
    its free-phase presynaptic sum, each cell its free count). With learned feedback and the free phase's
    memory, every layer that has a mirror ``B`` below it reads instead the change of its own count from the
    free phase (:func:`plasticity.count_change_error`), the same quantity its mirror ``B`` reads
    (:func:`plasticity.feedback_kolen_pollack`)."""
    L, sums = len(circuit.W), run.main.sums
    pre_sums, gates = sums.X, run.main.state.pyr
    if run.shadow is not None:
        pre_sums, gates = sums.X[:1] + run.shadow.sums.X, run.shadow.state.pyr
    mirrored = params.feedback == "learned" and free_phase is not None
    changes = count_changes(run, free_phase) if mirrored and taught else {}
    baseline = None if free_phase is None else free_phase.apical
    updates: dict[str, torch.Tensor] = {}
    for l in range(L):
        if learn.W and (l < L - 1 or taught):
            if l in changes:  # the count change is gated by the cell's own spiking already
                err, active = changes[l], torch.ones_like(changes[l])
            else:
                err = errors[l] if baseline is None or l == L - 1 else sums.A[l] - baseline[l]
                active = (plasticity.plasticity_gate(gates[l].count, steps, params.gate) if l < L - 1
                          else torch.ones_like(err))
            updates[f"W{l}"] = plasticity.basal_error_stdp(pre_sums[l], err, active, steps)
    threshold = run.main.phase.neuron.threshold
    for l in range(L - 1):
        if learn.P:
            updates[f"P{l}"] = plasticity.interneuron_prediction(
                sums.X[l + 1], run.main.state.pyr[l + 1].count, torch.relu(sums.a_inter[l]) / threshold, steps)
        if learn.Q:
            updates[f"Q{l}"] = plasticity.apical_cancellation(sums.XI[l], sums.A[l], steps)
        if learn.B and l + 1 in changes:
            updates[f"B{l}"] = plasticity.feedback_kolen_pollack(changes[l + 1], pre_sums[l + 1], steps)
    return updates


def count_changes(run: Copies, free_phase: FreePhaseMemory) -> dict[int, torch.Tensor]:
    """Per layer above the lowest hidden one: the error its cells read from their own counts in the teacher
    phase and the free phase (:func:`plasticity.count_change_error`; coupling 1 at the output cells)."""
    phase, pyr = run.main.phase, run.main.state.pyr
    couplings = list(phase.couplings) + [1.0]
    return {l: plasticity.count_change_error(pyr[l].count, free_phase.counts[l], phase.neuron.threshold, couplings[l])
            for l in range(1, len(pyr))}
