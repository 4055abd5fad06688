"""The microcircuit's parameters, its modes and the idealisations that break the locality contract on purpose.

Everything here is plain data, validated once: the configuration (:mod:`bioleaf.config`) imports it from
below, and every function of the circuit reads it from a :class:`Context` handed down as one object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bioleaf.errors import UsageError
from bioleaf.model import plasticity
from bioleaf.model.neurons import NeuronParams
from bioleaf.parsing import number_list

FEEDBACK_MODES = ("symmetric", "random", "learned", "direct")
INTERNEURON_MODES = ("learned", "ideal")
ERROR_REFERENCES = ("nudged", "free")
NUDGES = ("one-sided", "two-sided")
UPPER_ERRORS = ("auto", "apical", "count-change")
SCHEDULES = ("two-copies", "one-presentation")
"""How learned interneurons' circuit meets each sample: its free and teacher phases as two copies side by side on the
identical input spikes, or one continuous presentation whose free period (the teacher off) runs before its teacher
period (docs/theory.md, section 4)."""
INTERNEURON_PARTNERS = ("above", "feedback-source")
"""The cells the interneurons that inhibit a hidden layer mirror: the layer above (each hidden layer's own), or the
cells its feedback comes from (with direct feedback, the output cells, mirrored by the top hidden layer's; docs/theory.md,
section 2)."""
INTERNEURON_PERIODS = ("presentation", "free")
"""When the interneurons' ``P`` learns in one presentation: the whole presentation, or the free period only."""
IDEALISATIONS = ("copied-feedback", "copied-interneurons", "teacher-free-copy", "replayed-input", "partner-count")
"""The assumptions a brain could not meet, each a label of every run that makes it: feedback ``B`` copied from
``W_{l+1}^T`` (``--feedback symmetric``); interneuron synapses copied from the layer above (``--interneurons
ideal``: ``P = W_{l+1}``, ``Q = -B``); a teacher-free shadow copy of the network run beside the teacher phase
(``--error-reference free``); a free phase run as a second copy of the network beside the teacher phase on the
identical input spikes, whose activity the teacher phase's rules read (learned interneurons under the integrated
``W`` rule, or learned feedback); the interneurons' ``P`` rule reading its partner cell's spike count directly instead of through a
simulated nudging synapse (learned interneurons). The first three build the special circumstance in which
BioLeaF equals ST-BP."""


def _valid_multiplier(m: float) -> bool:
    return 0 <= m <= 10


@dataclass(frozen=True)
class CircuitParams:
    """Microcircuit parameters (the defaults are the ones the docs and tests use)."""

    g_basal: float = 1.0  # basal -> soma coupling (also the interneuron's somatic gain)
    g_apical: float = 0.5  # apical -> soma coupling of hidden pyramidal cells
    g_apical_layers: str = ""  # multipliers of g_apical per hidden layer, bottom first; unlisted layers: 1 ("0")
    teacher_strength: float = 1.0  # beta in [0, 1]: 1 clamps output counts to their targets
    feedback: str = "symmetric"
    interneurons: str = "learned"
    contrastive: bool = True  # learned interneurons: W reads A_teacher - A_free (free-phase apical baseline)
    center_feedback: bool = True  # random/learned/direct B: remove each row's mean over the cells above
    error_reference: str = "nudged"  # free: errors against a teacher-free copy run alongside (ideal interneurons)
    nudge: str = "one-sided"  # two-sided: a second teacher phase with the top hidden coupling reversed (free)
    gate: str = "fired"  # hidden cells' bottom-up plasticity gate: fired [n > 0], headroom [n > 0] (1 - n / T)
    upper_error: str = "auto"  # what W above the lowest hidden layer reads: apical, count-change, auto (learned: count)
    w_rule: str = "integrated"  # W's rule: integrated (presentation sums) or stdp (spike timing, dendritic prediction)
    stdp_tau: float = 0.0  # ms, the stdp rule's plasticity trace (0: the PSP trace itself)
    homeostasis: float = 0.0  # eta_h of hidden cells' homeostatic scaling of W (plasticity.homeostatic_scaling); 0: off
    schedule: str = "two-copies"  # learned interneurons: two copies side by side, or one presentation (free, then teacher)
    free_steps: int = 60  # one presentation: steps of the free period before the teacher comes on
    interneuron_decay: float = 0.0  # lambda_P, P's decay per batch at its learning rate (0: none)
    reference_tau: float = 5.0  # one presentation: ms of each cell's slow trace of its free-period apical potential
    interneuron_partners: str = "above"  # the cells interneurons mirror: the layer above, or each layer's feedback source
    interneuron_period: str = "presentation"  # one presentation: P learns in the whole presentation or the free period

    def validate(self) -> "CircuitParams":
        """Raise :class:`UsageError` for values that cannot give a working circuit."""
        self._validate_modes()
        if not 0 < self.teacher_strength <= 1:
            raise UsageError(f"--teacher-strength: expected a value in (0, 1] (1 clamps outputs to their targets; "
                             f"more makes counts overshoot and explode), got {self.teacher_strength}")
        if not (self.g_basal > 0 and math.isfinite(self.g_basal)):
            raise UsageError(f"--g-basal: expected a finite value > 0, got {self.g_basal}")
        if not (0 <= self.g_apical <= 10):
            raise UsageError(f"--g-apical: expected a value in [0, 10], got {self.g_apical}")
        if not (0 <= self.stdp_tau <= 1000):
            raise UsageError(f"--tau-stdp: expected a time constant in [0, 1000] ms (0: the PSP trace), got {self.stdp_tau}")
        if not (0 <= self.homeostasis <= 10):
            raise UsageError(f"--homeostasis: expected a value in [0, 10] (0: off), got {self.homeostasis}")
        if isinstance(self.free_steps, bool) or not isinstance(self.free_steps, int) or not 1 <= self.free_steps <= 10_000:
            raise UsageError(f"--free-steps: expected an integer in 1..10000 (steps before the teacher comes on), "
                             f"got {self.free_steps!r}")
        if not 0 < self.reference_tau <= 10_000:
            raise UsageError(f"--reference-tau: expected ms in (0, 10000], got {self.reference_tau}")
        if not 0 <= self.interneuron_decay <= 1000:
            raise UsageError(f"--interneuron-decay: expected a value in [0, 1000] (0: off), got {self.interneuron_decay}")
        self.layer_multipliers()
        return self

    def _validate_modes(self) -> None:
        """Each mode one of its choices, and the combinations that can be built."""
        choices = [("--feedback", self.feedback, FEEDBACK_MODES), ("--interneurons", self.interneurons,
                   INTERNEURON_MODES), ("--error-reference", self.error_reference, ERROR_REFERENCES),
                   ("--nudge", self.nudge, NUDGES), ("--gate", self.gate, plasticity.GATES),
                   ("--upper-error", self.upper_error, UPPER_ERRORS), ("--w-rule", self.w_rule, plasticity.W_RULES),
                   ("--schedule", self.schedule, SCHEDULES),
                   ("--interneuron-partners", self.interneuron_partners, INTERNEURON_PARTNERS),
                   ("--interneuron-period", self.interneuron_period, INTERNEURON_PERIODS)]
        for flag, value, allowed in choices:
            if value not in allowed:
                raise UsageError(f"{flag}: expected one of {', '.join(allowed)}, got {value!r}")
        if self.feedback == "direct" and self.interneurons != "learned":
            raise UsageError("--feedback direct: needs --interneurons learned (the interneurons of a layer predict "
                             "the layer above, which direct feedback skips, so Q cannot be a copy of -B)")
        if self.error_reference == "free" and self.interneurons != "ideal":
            raise UsageError("--error-reference free: needs --interneurons ideal (learned interneurons "
                             "measure errors in their own free phase)")
        if self.nudge == "two-sided" and self.error_reference != "free":
            raise UsageError("--nudge two-sided: needs --error-reference free (and so --interneurons ideal)")
        if self.upper_error == "apical" and self.feedback == "learned":
            raise UsageError("--upper-error apical/--feedback learned: learned feedback takes the increments of W read "
                             "from the count change (use --upper-error count-change or auto)")
        if self.stdp_tau and self.w_rule != "stdp":
            raise UsageError("--tau-stdp/--w-rule: the plasticity trace belongs to the spike-timing rule (add --w-rule "
                             "stdp, or leave --tau-stdp at 0)")
        if self.w_rule == "stdp" and self.nudge == "two-sided":
            raise UsageError("--w-rule stdp/--nudge two-sided: the spike-timing rule reads each cell's own spikes in "
                             "one teacher phase, not the difference of two (use --nudge one-sided)")
        if self.w_rule == "stdp" and self.reads_count_change():
            raise UsageError(f"--w-rule stdp/--{'feedback learned' if self.feedback == 'learned' else 'upper-error count-change'}: "
                             "the spike-timing rule reads each cell's spikes against its own basal prediction, not the "
                             "count change a learned B mirrors (use --feedback symmetric, random or direct, and "
                             "--upper-error apical)")
        if self.one_presentation():
            self._validate_one_presentation()
        elif (self.free_steps, self.reference_tau) != (CircuitParams.free_steps, CircuitParams.reference_tau):
            raise UsageError("--free-steps/--reference-tau/--schedule: the free period belongs to one presentation "
                             "(add --schedule one-presentation)")
        if self.interneuron_period != "presentation" and not self.one_presentation():
            raise UsageError("--interneuron-period/--schedule: the free period belongs to one presentation (add "
                             "--schedule one-presentation)")
        if self.upper_error == "count-change" and self.interneurons != "learned":
            raise UsageError("--upper-error count-change/--interneurons: the count change is read against a free phase, "
                             "which only --interneurons learned runs")

    def _validate_one_presentation(self) -> None:
        """The combinations one presentation cannot run: it is the schedule of learned interneurons."""
        if self.interneurons != "learned":
            raise UsageError("--schedule one-presentation/--interneurons ideal: one presentation is the schedule of "
                             "learned interneurons (ideal ones run one teacher presentation already with "
                             "--error-reference nudged)")

    def one_presentation(self) -> bool:
        """Whether the circuit learns in one continuous presentation (a free period, then a teacher period)."""
        return self.schedule == "one-presentation"

    def validate_depth(self, n_hidden: int) -> None:
        """The checks that need the number of hidden layers (:class:`UsageError` naming the flags)."""
        couplings = self.apical_couplings(n_hidden)
        if self.reads_count_change() and 0 in couplings[1:]:
            raise UsageError(f"--{'feedback learned' if self.feedback == 'learned' else 'upper-error count-change'}: "
                             "needs every hidden layer above the lowest nudged (its cells' count change is the error "
                             "their W reads); check --g-apical and --g-apical-layers")
        if self.w_rule == "stdp" and 0 in couplings:
            raise UsageError("--w-rule stdp/--g-apical-layers: the spike-timing rule reads the spikes the apical "
                             "compartment adds, so every hidden layer's soma must be nudged (a coupling above 0; check "
                             "--g-apical and --g-apical-layers)")

    def validate_timing(self, presentation_ms: float, encoder: str, lr_interneuron: float) -> None:
        """The checks that need the presentation's length, the input code and P's learning rate (:class:`UsageError`
        naming the flags): ``--tau-stdp`` at most the presentation's length, no latency code in one presentation,
        P's decay per batch below 1."""
        if self.stdp_tau > presentation_ms:
            raise UsageError(f"--tau-stdp: expected at most the presentation's length --steps x --dt = "
                             f"{presentation_ms:g} ms (a longer plasticity trace pairs most of each spike's area with "
                             f"no error), got {self.stdp_tau:g}")
        if self.one_presentation() and encoder == "latency":
            raise UsageError("--encoder latency/--schedule one-presentation: a latency code spreads over the whole "
                             "presentation, so its first spikes would fall in the free period alone (use --encoder "
                             "bernoulli or regular)")
        if self.interneuron_decay * lr_interneuron >= 1:
            raise UsageError(f"--interneuron-decay/--lr-interneuron: their product is P's decay per batch and must be "
                             f"below 1, got {self.interneuron_decay} x {lr_interneuron}")

    def reference_decay(self, dt: float) -> float:
        """Per-step decay of one presentation's reference traces, ``exp(-dt / reference_tau)``."""
        return math.exp(-dt / self.reference_tau)

    def window_decay(self, dt: float) -> float:
        """Per-step decay of the spike-timing rule's plasticity trace, ``exp(-dt / stdp_tau)`` (0: none)."""
        return math.exp(-dt / self.stdp_tau) if self.stdp_tau else 0.0

    def reads_count_change(self) -> bool:
        """Whether ``W`` of every layer above the lowest hidden one reads the change of its cells' counts from the
        free phase (:func:`bioleaf.model.plasticity.count_change_error`) instead of their apical potential: with
        ``--upper-error count-change``, and by default with learned feedback (whose ``B`` reads the same change)."""
        return self.upper_error == "count-change" or (self.upper_error == "auto" and self.feedback == "learned")

    def reads_free_phase(self) -> bool:
        """Whether a teacher-phase rule reads what cells kept from the free phase on the same input spikes: the count
        change (:meth:`reads_count_change`), or the free-phase apical baseline the integrated ``W`` rule of learned
        interneurons subtracts (``contrastive``); the spike-timing rule reads neither."""
        if self.one_presentation():  # it reads each cell's own traces of its free period instead
            return False
        baseline = self.interneurons == "learned" and self.contrastive and self.w_rule == "integrated"
        return self.reads_count_change() or baseline

    def feedback_sources(self, n_layers: int) -> list[int]:
        """The layer whose pyramidal cells send each hidden layer's top-down ``B``: the layer above, or the
        output cells for every hidden layer (``direct``: direct random feedback, the DFA-style circuit)."""
        top = n_layers - 1
        return [top if self.feedback == "direct" else l + 1 for l in range(top)]

    def inhibition_sources(self, n_layers: int) -> list[int]:
        """The hidden layer whose interneurons inhibit each hidden layer's apical dendrite: its own (``above``: they
        mirror the layer above), or the one below the cells its ``B`` comes from (``feedback-source``: they mirror the
        cells that send its feedback; with ``direct`` feedback, the top hidden layer's interneurons, partners of the
        output cells, inhibit every hidden layer)."""
        if self.interneuron_partners == "above":
            return list(range(n_layers - 1))
        return [source - 1 for source in self.feedback_sources(n_layers)]

    def idealisations(self) -> list[str]:
        """The :data:`IDEALISATIONS` this circuit uses (empty: local learning only)."""
        used = [self.feedback == "symmetric", self.interneurons == "ideal", self.error_reference == "free",
                self.reads_free_phase(), self.interneurons == "learned" and not self.one_presentation()]
        return [name for name, on in zip(IDEALISATIONS, used) if on]

    def layer_multipliers(self, n_hidden: int | None = None) -> list[float]:
        """The ``g_apical_layers`` multipliers (:class:`UsageError` unless numbers in [0, 10], at most one per
        hidden layer when ``n_hidden`` is known)."""
        if not self.g_apical_layers:
            return []
        return number_list(self.g_apical_layers, "--g-apical-layers", valid=_valid_multiplier,
                           items="numbers in [0, 10]", count=n_hidden, at_most=True,
                           counted="multipliers (one per hidden layer, bottom first)")

    def apical_couplings(self, n_hidden: int) -> list[float]:
        """``g_A`` of each hidden layer, bottom first: ``g_apical`` times its ``g_apical_layers`` multiplier
        (layers beyond the list keep 1, so ``"0"`` means "the lowest hidden layer unnudged" at any depth)."""
        mult = self.layer_multipliers(n_hidden)
        return [self.g_apical * m for m in mult] + [self.g_apical] * (n_hidden - len(mult))

    def second_phase_start(self, n_layers: int) -> int | None:
        """The lowest layer two-sided nudging's second teacher phase simulates (the lowest hidden layer whose
        soma is nudged), or ``None`` when it has nothing to change: one-sided nudging, no hidden layer nudged,
        or no layer below the top hidden one (which reads the teacher itself)."""
        if self.nudge != "two-sided" or self.error_reference != "free" or n_layers < 3:
            return None
        return next((l for l, g in enumerate(self.apical_couplings(n_layers - 1)) if g != 0), None)


@dataclass(frozen=True)
class Context:
    """What every presentation of one configuration shares: ``steps`` time steps ``T``, the ``neuron`` of every
    soma and the circuit's ``params``; built once (:meth:`bioleaf.config.TrainConfig.context`) and handed down."""

    steps: int
    neuron: NeuronParams
    params: CircuitParams

    @property
    def tail(self) -> float:
        r"""The area of a unit PSP still in flight at the end, :math:`1 / (1 - \lambda)`."""
        return 1.0 / (1.0 - self.neuron.lam)
