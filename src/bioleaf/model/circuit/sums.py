r"""The running sums a presentation keeps while it runs: what each synapse's rule reads at the end.

Every copy of the circuit keeps *running sums* of the quantities its synapses can see, updated online, so
learning memory does not depend on ``T`` (:class:`CircuitSums`):

.. math::

    X_l = \sum_t x_{l-1}(t), \qquad A_l = \sum_t v^A_l(t) + \frac{v^A_l(T)}{1-\lambda}, \qquad
    X^I_l = \sum_t x^I_l(t-1) + \frac{x^I_l(T)}{1-\lambda}, \qquad a^I_l = \sum_t I^I_l(t)

(at output cells :math:`A` sums the teacher current :math:`c`). The last terms complete the PSPs still
in flight at the end (a trace decays geometrically), so every spike counts with its whole PSP area.
Two-sided nudging also keeps, per cell of the layer above, the difference of the two teacher phases'
top-down traces (:class:`PhaseDifference`).
"""

from __future__ import annotations

import copy

import torch

from bioleaf.model.circuit.eligibility import SpikeTimingSums
from bioleaf.model.circuit.layout import copy_rows, per_copy
from bioleaf.model.circuit.spec import CopySpec
from bioleaf.model.circuit.state import CopyState, StepSignals
from bioleaf.model.circuit.step import apical_potential


def accumulated(total: torch.Tensor | None, value: torch.Tensor) -> torch.Tensor:
    """``total + value`` in place, ``total`` starting from zeros in ``value``'s rows (one copy's, where every
    stacked copy shares the population)."""
    if total is None:
        total = torch.zeros_like(value)
    return total.add_(value)


class CircuitSums:
    """The running sums of the teacher or free phase (formulas above), per layer ``[rows, n]`` in the rows of
    the population each sums over; only those a rule of the presentation reads: the basal inputs' trace sums
    ``X`` of the lowest ``traces`` layers (the others' come from the teacher-free copy), with ``inter_traces``
    each hidden layer's interneurons' trace sums ``XI`` (``Q``'s rule; ``None`` where it has none), with ``live``
    (the hidden layers whose interneurons are simulated; not ``None``) the interneurons' integrated currents
    ``a_inter`` (``P``'s; zero, in ``batch`` rows, where they are not simulated)."""

    def __init__(self, sizes: list[int], batch: int, device: torch.device, teacher: bool, *, traces: int,
                 inter_traces: bool, live: list[int] | None):
        hidden = range(len(sizes) - 2)
        self.X: list[torch.Tensor | None] = [None] * traces  # presynaptic trace sums of the layers' basal input
        self.A: list[torch.Tensor | None] = [None] * (len(sizes) - 2) + [  # integrated apical input / teacher current
            None if teacher else torch.zeros(batch, sizes[-1], device=device)]
        self.XI: list[torch.Tensor | None] = [None] * len(hidden) if inter_traces else []  # what the apical saw
        self.a_inter: list[torch.Tensor | None] = ([None if l in live else torch.zeros(batch, sizes[l + 2], device=device)
                                                    for l in hidden] if live is not None else [])
        self._hidden, self._live, self._teacher = hidden, live or [], teacher
        self.timing: SpikeTimingSums | None = None  # the spike-timing-dependent W rule's eligibility

    def add(self, prev: CopyState, sig: StepSignals) -> None:
        if self.timing is not None:
            self.timing.add(sig)
        for l, pre in enumerate(sig.inputs[:len(self.X)]):
            self.X[l] = accumulated(self.X[l], pre)
        for l in self._hidden:
            self.A[l] = accumulated(self.A[l], sig.apical[l])
        for l, inter in enumerate(prev.inter[:len(self.XI)]):
            if inter is not None:  # interneurons that no apical dendrite reads are absent
                self.XI[l] = accumulated(self.XI[l], inter.trace)
        for l in self._live:
            self.a_inter[l] = accumulated(self.a_inter[l], sig.inter_current[l])
        if self._teacher:
            self.A[-1] = accumulated(self.A[-1], sig.teacher_current)

    def rows(self, rows: slice) -> "CircuitSums":
        """The same sums restricted to the batch ``rows`` of one stacked copy (views)."""
        view = copy.copy(self)
        view.X, view.A, view.XI, view.a_inter = ([None if t is None else copy_rows(t, rows) for t in ts]
                                                 for ts in (self.X, self.A, self.XI, self.a_inter))
        return view

    def complete(self, state: CopyState, spec: CopySpec, tail: float) -> None:
        """Add the integral of the PSPs still in flight at the end (``tail = 1 / (1 - lambda)``)."""
        if self.timing is not None:
            self.timing.complete()
        for l in self._hidden:
            self.A[l] += tail * apical_potential(spec, l, state)
        for xi, inter in zip(self.XI, state.inter):
            if xi is not None:
                xi += tail * inter.trace


class TraceSums:
    """The teacher-free copy's presynaptic trace sums above the input (the input's is shared)."""

    def __init__(self, sizes: list[int]):
        self.X: list[torch.Tensor | None] = [None] * (len(sizes) - 2)

    def add(self, prev: CopyState, sig: StepSignals) -> None:
        for l, pre in enumerate(sig.inputs[1:len(self.X) + 1]):
            self.X[l] = accumulated(self.X[l], pre)

    def rows(self, rows: slice) -> "TraceSums":
        view = copy.copy(self)
        view.X = [copy_rows(x, rows) for x in self.X]
        return view


class PhaseDifference:
    r"""Two-sided nudging: per hidden layer ``l`` in ``layers``, :math:`D_l = \sum_t [(x^+_{l+1} - x^{I+}_l) -
    (x^-_{l+1} - x^{I-}_l)](t-1)` plus the PSPs in flight at the end; the error it gives is
    :math:`\tfrac12 B_l D_l` (interneurons below the second phase's lowest layer are shared). Two-sided nudging
    needs ideal interneurons (``Q = -B``), so the apical difference is ``B_l`` times this trace difference."""

    def __init__(self, layers: range, sizes: list[int], batch: int, device: torch.device):
        self.D = {l: torch.zeros(batch, sizes[l + 2], device=device) for l in layers}

    def add(self, plus: CopyState, minus: CopyState, scale: float | None = None) -> None:
        for l, d in self.D.items():
            inter_minus = plus.inter[l] if minus.inter[l] is None else minus.inter[l]
            diff = (per_copy(torch.sub, plus.pyr[l + 1].trace, plus.inter[l].trace)
                    - per_copy(torch.sub, minus.pyr[l + 1].trace, inter_minus.trace))
            d += diff if scale is None else scale * diff

    def errors(self, B: list[torch.Tensor]) -> dict[int, torch.Tensor]:
        return {l: 0.5 * (d @ B[l].T) for l, d in self.D.items()}


class FreePeriodReference:
    r"""What each cell keeps of the free period of one presentation, as slow traces of its own activity
    (:math:`\bar y(t) = \lambda_r \bar y(t-1) + (1-\lambda_r)\, y(t)`, :math:`\lambda_r = e^{-dt/\tau_r}`, starting
    from the first step's value; the late free period weighs most, after the circuit has settled from rest): every
    hidden cell its apical potential (``apical``), the reference its apical compartment holds once the teacher comes
    on (:func:`bioleaf.model.circuit.pathways.referenced`), and, with ``rates`` (learned feedback), every cell its
    spikes, the free rate its count change is read against."""

    def __init__(self, layers: int, decay: float, rates: bool):
        self.apical: list[torch.Tensor | None] = [None] * (layers - 1)
        self.rates: list[torch.Tensor | None] = [None] * layers if rates else []
        self._decay = decay

    def add(self, sig: StepSignals) -> None:
        for l, apical in enumerate(sig.apical[:len(self.apical)]):
            self.apical[l] = self._traced(self.apical[l], apical)
        for l, spikes in enumerate(sig.spikes[:len(self.rates)]):
            self.rates[l] = self._traced(self.rates[l], spikes)

    def _traced(self, prev: torch.Tensor | None, value: torch.Tensor) -> torch.Tensor:
        return value.clone() if prev is None else torch.lerp(value, prev, self._decay)
