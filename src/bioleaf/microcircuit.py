r"""The BioLeaF dendritic microcircuit: populations, the four pathways, one presentation.

Layers ``l = 0..L-1`` (``L-1`` is the output). Every hidden layer holds pyramidal cells with three
compartments and one interneuron per pyramidal cell of the layer above:

.. math::

    v^B_l(t) &= W_l\, x_{l-1}(t)                                  &&\text{basal (bottom-up)}\\
    v^A_l(t) &= B_l\, x_{l+1}(t-1) + Q_l\, x^I_l(t-1)             &&\text{apical (top-down + inhibition)}\\
    I_l(t)   &= g_B\, v^B_l(t) + g_{A,l}\, v^A_l(t)                 &&\text{soma (integrate-and-fire)}\\
    I^I_l(t) &= g_B\, P_l\, x_l(t)                                  &&\text{interneuron soma}

(:math:`g_{A,l}`: ``g_apical`` times the layer's ``g_apical_layers`` multiplier; ``"0"`` leaves the
lowest hidden layer's soma unnudged, docs/theory.md section 2.) Output cells are nudged by the
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

Learning reads running sums kept during the presentation (see :mod:`bioleaf.plasticity`): the
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

The copy costs the bottom-up products above the first layer (it shares the first), about a quarter
more work per step, and gives the teacher-free output on the fly (the per-batch training accuracy).

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
``T`` is ever stored. Updates are the rules of :mod:`bioleaf.plasticity` applied to the sums at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from . import plasticity
from .encoding import SpikeStream
from .errors import UsageError
from .neurons import NeuronParams, if_init, if_step

FEEDBACK_MODES = ("symmetric", "random", "learned")
INTERNEURON_MODES = ("learned", "ideal")
ERROR_REFERENCES = ("nudged", "free")
NUDGES = ("one-sided", "two-sided")


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
    center_feedback: bool = True  # random/learned B: remove each row's mean over the cells above
    error_reference: str = "nudged"  # free: errors against a teacher-free copy run alongside (ideal interneurons)
    nudge: str = "one-sided"  # two-sided: a second teacher phase with the top hidden coupling reversed (free)

    def validate(self, steps: int) -> "CircuitParams":
        """Raise :class:`UsageError` for values that cannot give a working circuit."""
        if self.feedback not in FEEDBACK_MODES:
            raise UsageError(f"--feedback: expected one of {', '.join(FEEDBACK_MODES)}, got {self.feedback!r}")
        if self.interneurons not in INTERNEURON_MODES:
            raise UsageError(f"--interneurons: expected one of {', '.join(INTERNEURON_MODES)}, got {self.interneurons!r}")
        if self.error_reference not in ERROR_REFERENCES:
            raise UsageError(f"--error-reference: expected one of {', '.join(ERROR_REFERENCES)}, "
                             f"got {self.error_reference!r}")
        if self.error_reference == "free" and self.interneurons != "ideal":
            raise UsageError("--error-reference free: needs --interneurons ideal (learned interneurons "
                             "measure errors in their own free phase)")
        if self.nudge not in NUDGES:
            raise UsageError(f"--nudge: expected one of {', '.join(NUDGES)}, got {self.nudge!r}")
        if self.nudge == "two-sided" and self.error_reference != "free":
            raise UsageError("--nudge two-sided: needs --error-reference free (and so --interneurons ideal)")
        if not 0 < self.teacher_strength <= 1:
            raise UsageError(f"--teacher-strength: expected a value in (0, 1] (1 clamps outputs to their targets; "
                             f"more makes counts overshoot and explode), got {self.teacher_strength}")
        if not (self.g_basal > 0 and math.isfinite(self.g_basal)):
            raise UsageError(f"--g-basal: expected a finite value > 0, got {self.g_basal}")
        if not (0 <= self.g_apical <= 10):
            raise UsageError(f"--g-apical: expected a value in [0, 10], got {self.g_apical}")
        if self.g_apical_layers:
            _multipliers(self.g_apical_layers)
        if not 0 <= self.target_low < self.target_high <= steps:
            raise UsageError(f"--target-high/--target-low: expected 0 <= low < high <= steps ({steps}) "
                             f"spikes, got low={self.target_low}, high={self.target_high}")
        return self

    def apical_couplings(self, n_hidden: int) -> list[float]:
        """``g_A`` of each hidden layer, bottom first: ``g_apical`` times its ``g_apical_layers`` multiplier
        (layers beyond the list keep 1, so ``"0"`` means "the lowest hidden layer unnudged" at any depth)."""
        mult = _multipliers(self.g_apical_layers) if self.g_apical_layers else []
        if len(mult) > n_hidden:
            raise UsageError(f"--g-apical-layers: expected at most {n_hidden} multipliers (one per hidden layer, "
                             f"bottom first) joined by ',', got {self.g_apical_layers!r}")
        return [self.g_apical * m for m in mult] + [self.g_apical] * (n_hidden - len(mult))


def _multipliers(text: str) -> list[float]:
    """``"0,1"`` -> ``[0.0, 1.0]``; :class:`UsageError` unless every item is a number in [0, 10]."""
    try:
        mult = [float(m) for m in text.split(",")]
    except ValueError:
        mult = [math.nan]
    if not all(0 <= m <= 10 for m in mult):
        raise UsageError(f"--g-apical-layers: expected numbers in [0, 10] joined by ',', got {text!r}")
    return mult


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

    def sync_ideal(self, params: CircuitParams) -> None:
        """Impose the labelled idealisations: ``B = W_above^T`` (symmetric), ``P = W_above``,
        ``Q = -B`` (ideal interneurons). Copies in place so optimisers keep their tensors."""
        for l in range(len(self.B)):
            if params.feedback == "symmetric":
                self.B[l].copy_(self.W[l + 1].T)
            if params.interneurons == "ideal":
                self.P[l].copy_(self.W[l + 1])
                self.Q[l].copy_(-self.B[l])


def uniform_init(n_out: int, n_in: int, scale: float, generator: torch.Generator) -> torch.Tensor:
    """``U(-a, a)`` with ``a = scale * sqrt(3 / n_in)`` (std ``scale / sqrt(n_in)``)."""
    a = scale * math.sqrt(3.0 / n_in)
    return (torch.rand(n_out, n_in, generator=generator) * 2 - 1) * a


def build_circuit(sizes: list[int], params: CircuitParams, generator: torch.Generator,
                  init_scale: float = 1.0, device: str | torch.device = "cpu") -> Microcircuit:
    """A circuit with random ``W`` and ``B`` (``B_l`` drawn like ``W_{l+1}^T``); interneuron synapses ``P``, ``Q`` start at zero
    (silent, non-inhibiting interneurons) unless the idealisations impose them."""
    W = [uniform_init(o, i, init_scale, generator) for i, o in zip(sizes[:-1], sizes[1:])]
    hidden = range(len(sizes) - 2)
    B = [uniform_init(sizes[l + 2], sizes[l + 1], init_scale, generator).T.contiguous() for l in hidden]
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


def _second_teacher_phase(circuit: Microcircuit, params: CircuitParams, neuron: NeuronParams,
                          g_apical: list[float], first: int, basal: torch.Tensor, pyr_m: list, inter_m: list,
                          top_inter, teacher_rate: torch.Tensor, apical_of) -> None:
    """One time step of two-sided nudging's second teacher phase, in place on its states ``pyr_m`` and
    ``inter_m`` (layers ``first`` up to the output; the same equations as the first phase, with the top
    hidden layer's apical coupling reversed). ``basal``: layer ``first``'s bottom-up input, shared with
    the first phase (no layer below ``first`` is nudged); ``top_inter``: the top interneurons (the free
    copy's, shared)."""
    L = len(circuit.W)
    for l in range(first, L):
        if l == L - 1:
            beta = params.teacher_strength
            drive = (1 - beta) * basal + beta * teacher_rate
        else:
            top = l == L - 2
            apical = apical_of(l, pyr_m[l + 1].trace, top_inter.trace if top else inter_m[l].trace)
            drive = params.g_basal * basal + (-g_apical[l] if top else g_apical[l]) * apical
        _, pyr_m[l] = if_step(drive, pyr_m[l], neuron)
        if l < L - 1:
            basal = pyr_m[l].trace @ circuit.W[l + 1].T
            if l < L - 2:
                _, inter_m[l] = if_step(params.g_basal * basal, inter_m[l], neuron)


@dataclass
class Plasticity:
    """Which synapse types learn during a presentation."""

    W: bool = True
    P: bool = False
    Q: bool = False
    B: bool = False


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
    record: dict[str, list[torch.Tensor]] | None = None
    free_output: tuple[torch.Tensor, torch.Tensor] | None = None  # free copy's output counts, potentials


@torch.no_grad()
def present(circuit: Microcircuit, spikes: SpikeStream, targets: torch.Tensor | None, *, batch: int,
            steps: int, neuron: NeuronParams, params: CircuitParams, learn: Plasticity = Plasticity(W=False),
            record: bool = False, apical_baseline: list[torch.Tensor] | None = None) -> Presentation:
    """Run one presentation of ``steps`` time steps (equations in the module docstring).

    ``targets`` are target spike counts ``[batch, n_out]`` (``None``: no teacher). The updates in
    the result are the rules of :mod:`bioleaf.plasticity` applied to the running sums each synapse
    keeps during the presentation, summed over samples (memory independent of ``steps``).
    ``record=True`` also keeps every step's spikes and apical potentials (for plots only).
    ``apical_baseline``: each hidden cell's integrated apical potential from the free phase on the
    same input (``Presentation.apical_sums``); the bottom-up rule then reads ``A - A_free``.
    """
    W, L = circuit.W, len(circuit.W)
    dev = W[0].device
    sizes = circuit.sizes
    ideal = params.interneurons == "ideal"
    g_apical = params.apical_couplings(L - 1)
    pyr = [if_init(batch, n, device=dev) for n in sizes[1:]]
    inter = [if_init(batch, sizes[l + 2], device=dev) for l in range(L - 1)]
    x_in = torch.zeros(batch, sizes[0], device=dev)
    rec: dict[str, list[torch.Tensor]] | None = {"input": []} if record else None
    teacher_rate = None if targets is None else targets * (neuron.threshold / steps)
    # running sums (the online memory of learning, O(n) per population, independent of T)
    X = [torch.zeros(batch, n, device=dev) for n in sizes[:-1]]  # presynaptic trace sums X_{l-1}
    A = [torch.zeros(batch, n, device=dev) for n in sizes[1:]]  # integrated apical input / teacher current
    XI = [torch.zeros(batch, sizes[l + 2], device=dev) for l in range(L - 1)]  # interneuron trace sums
    Xout = torch.zeros(batch, sizes[-1], device=dev)  # output cells' trace sums
    a_out = torch.zeros(batch, sizes[-1], device=dev)  # output cells' integrated basal potential
    a_inter = [torch.zeros(batch, sizes[l + 2], device=dev) for l in range(L - 1)]  # interneurons' one
    free = params.error_reference == "free" and targets is not None
    if free:  # the teacher-free copy: every layer driven bottom-up only, and the top interneurons
        pyr_f = [if_init(batch, n, device=dev) for n in sizes[1:]]
        inter_f = if_init(batch, sizes[-1], device=dev) if L > 1 else None  # no hidden layer: no interneurons
        X_f = X[:1] + [torch.zeros_like(x) for x in X[1:]]  # its presynaptic trace sums (the input's is shared)
        a_f = torch.zeros(batch, sizes[-1], device=dev)  # its output cells' integrated basal potential
    # two-sided nudging: the second teacher phase (the top hidden layer's coupling reversed), run alongside
    # from the lowest nudged layer up (the layers below it are the free network in both phases: shared)
    first = second_phase_start(params, L) if targets is not None else None
    two_sided = first is not None
    if two_sided:
        pyr_m = [None] * first + [if_init(batch, n, device=dev) for n in sizes[first + 1:]]
        inter_m = [None] * first + [if_init(batch, sizes[l + 2], device=dev) for l in range(first, L - 2)]
        # D_l = A+_l - A-_l before the product with B_l: sum_t of (x_{l+1} - x^I_l) in the first phase minus
        # the same in the second, for first-1 <= l < L-2 (the layers whose bottom-up rule reads it)
        D = {l: torch.zeros(batch, sizes[l + 2], device=dev) for l in range(max(first - 1, 0), L - 2)}

        def phase_difference(l: int) -> torch.Tensor:
            inter_minus = inter[l] if inter_m[l] is None else inter_m[l]  # below ``first``: shared
            return (pyr[l + 1].trace - inter[l].trace) - (pyr_m[l + 1].trace - inter_minus.trace)

    def apical_of(l: int, above: torch.Tensor, inter_trace: torch.Tensor) -> torch.Tensor:
        if ideal:
            return (above - inter_trace) @ circuit.B[l].T
        return above @ circuit.B[l].T + inter_trace @ circuit.Q[l].T

    for t in range(steps):
        s_in = spikes(t)
        x_in = neuron.lam * x_in + s_in
        prev_pyr, prev_inter = pyr, inter
        pyr, inter = list(pyr), list(inter)
        fired, inter_fired, apicals = [], [], []
        if two_sided:
            for l, d in D.items():
                d += phase_difference(l)
        pre, basal = x_in, x_in @ W[0].T
        if free:
            basal_f = basal
            for l in range(L):
                if l > 0:
                    X_f[l] += pyr_f[l - 1].trace
                    basal_f = pyr_f[l - 1].trace @ W[l].T
                _, pyr_f[l] = if_step(basal_f if l == L - 1 else params.g_basal * basal_f, pyr_f[l], neuron)
            rate_f = torch.relu(a_f + basal_f) - torch.relu(a_f)
            a_f = a_f + basal_f
            if inter_f is not None:
                s_inter_f, inter_f = if_step(params.g_basal * basal_f, inter_f, neuron)
        for l in range(L):
            X[l] += pre
            if l == first:  # the second teacher phase's input from the layers below, shared
                basal_first = basal
            if l < L - 1:  # hidden pyramidal cell: basal + apical compartments
                apical = apical_of(l, prev_pyr[l + 1].trace, prev_inter[l].trace)
                drive = params.g_basal * basal + g_apical[l] * apical
            else:  # output cell: the teacher current is its apical input
                a_new = a_out + basal
                rate = torch.relu(a_new) - torch.relu(a_out)  # increment of [sum_t v^B]_+
                a_out = a_new
                if teacher_rate is None:
                    apical, drive = None, basal
                else:
                    beta = params.teacher_strength
                    apical = beta * (teacher_rate - (rate_f if free else rate))
                    drive = (1 - beta) * basal + beta * teacher_rate
            if apical is not None:
                A[l] += apical
            s, pyr[l] = if_step(drive, prev_pyr[l], neuron)
            fired.append(s)
            apicals.append(apical)
            if l == L - 1:
                Xout += pyr[l].trace
            if l < L - 1:
                basal_above = pyr[l].trace @ W[l + 1].T
                if free and l == L - 2:  # the top interneurons are the free copy's (stepped above)
                    s_inter, inter[l] = s_inter_f, inter_f
                else:
                    inter_drive = params.g_basal * (basal_above if ideal else pyr[l].trace @ circuit.P[l].T)
                    a_inter[l] = a_inter[l] + inter_drive
                    s_inter, inter[l] = if_step(inter_drive, prev_inter[l], neuron)
                XI[l] += prev_inter[l].trace
                inter_fired.append(s_inter)
                pre, basal = pyr[l].trace, basal_above
        if two_sided:
            _second_teacher_phase(circuit, params, neuron, g_apical, first, basal_first, pyr_m, inter_m,
                                  prev_inter[L - 2], teacher_rate, apical_of)
        if rec is not None:
            rec["input"].append(s_in[0].clone())
            for l in range(L):
                rec.setdefault(f"pyr{l}", []).append(fired[l][0].clone())
            for l in range(L - 1):
                rec.setdefault(f"inter{l}", []).append(inter_fired[l][0].clone())
                rec.setdefault(f"apical{l}", []).append(apicals[l][0].clone())

    # the PSPs still in flight at the end complete their integral (x decays geometrically)
    tail = 1.0 / (1.0 - neuron.lam)
    for l in range(L - 1):
        A[l] += tail * apical_of(l, pyr[l + 1].trace, inter[l].trace)
        XI[l] += tail * inter[l].trace
    errors = list(A)  # what each layer's bottom-up rule reads
    if two_sided:  # below the top hidden layer: half the difference of the two phases' apical integrals
        for l, d in D.items():
            d += tail * phase_difference(l)  # both phases' PSPs complete their integral
            errors[l] = 0.5 * (d @ circuit.B[l].T)
    # the bottom-up rule's presynaptic sums and gates: free-phase ones with the free reference
    pre_sums, gates = (X_f, pyr_f) if free else (X, pyr)
    updates: dict[str, torch.Tensor] = {}
    for l in range(L):
        if learn.W and (l < L - 1 or targets is not None):
            active = (gates[l].count > 0).to(x_in.dtype) if l < L - 1 else torch.ones_like(A[l])
            err = errors[l] if apical_baseline is None or l == L - 1 else A[l] - apical_baseline[l]
            updates[f"W{l}"] = plasticity.basal_error_stdp(pre_sums[l], err, active, steps)
    for l in range(L - 1):
        if learn.P:
            updates[f"P{l}"] = plasticity.interneuron_prediction(
                X[l + 1], pyr[l + 1].count, torch.relu(a_inter[l]) / neuron.threshold, steps)
        if learn.Q:
            updates[f"Q{l}"] = plasticity.apical_cancellation(XI[l], A[l], steps)
        if learn.B:
            above = X[l + 2] if l + 2 < L else Xout
            updates[f"B{l}"] = plasticity.feedback_mirror(above, X[l + 1], steps)
    return Presentation(counts=pyr[-1].count, potentials=pyr[-1].v,
                        basal_counts=torch.relu(a_f if free else a_out) / neuron.threshold, updates=updates,
                        apical_residual=[float(A[l].abs().mean()) / steps for l in range(L - 1)],
                        hidden_counts=[p.count for p in pyr[:-1]], apical_sums=A[:-1], record=rec,
                        free_output=(pyr_f[-1].count, pyr_f[-1].v) if free else None)
