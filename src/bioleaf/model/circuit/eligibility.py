r"""The running eligibility of the spike-timing-dependent bottom-up rule (:func:`bioleaf.model.plasticity.basal_error_stdp`).

Each cell's basal dendrite predicts the spikes its soma would fire on the basal input alone: an
integrate-and-fire variable of the cell's own, driven by its basal potential only,

.. math::  u_i(t) = u_i(t-1) + g\, v^B_i(t) - \vartheta \hat s_i(t), \qquad
           \hat s_i(t) = [u_i(t-1) + g\, v^B_i(t) \ge \vartheta]

(``g``: :math:`g_B` at a hidden cell, 1 at an output cell), and each synapse adds :math:`e_i(t)\, x_j(t)` every step,
:math:`e_i(t) = \vartheta (s_i(t) - \hat s_i(t)) / g_i` (:func:`bioleaf.model.plasticity.dendritic_prediction_error`).
The soma and its prediction integrate the same basal input with the same threshold, so their spikes part only
where the other compartment (the apical dendrite, the teacher) adds or removes drive: the error sums to the
cell's count change :math:`\vartheta (n_i - \hat n_i) / g_i`, and the quantisation of the input into spikes, common
to both, largely cancels step by step. The products of ``chunk`` steps run as one product of their stacked
rows, written step by step into a float64 buffer of the chunk's rows (:class:`ChunkRows`), so the memory is
bounded by the chunk, whatever ``T``.
"""

from __future__ import annotations

import torch

from bioleaf.model import plasticity
from bioleaf.model.circuit.layout import copy_rows
from bioleaf.model.circuit.state import StepSignals


PYRAMIDAL, INTERNEURON = "pyramidal", "interneuron"  # the cells whose synapses an eligibility belongs to


def cell_signals(sig: StepSignals, population: str, l: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(drive, spikes, pre)`` of one step: the potential a cell's dendrite predicts spikes from, the spikes it
    predicts and the presynaptic traces of the synapses that learn. Pyramidal (or output) cells of layer ``l``: their
    basal potential, their soma's spikes and ``W_l``'s inputs. Interneurons of hidden layer ``l``: their lateral
    potential, their partners' spikes (what their teaching compartment receives through the one-to-one synapse) and
    ``P_l``'s inputs."""
    if population == PYRAMIDAL:
        return sig.basal[l], sig.spikes[l], sig.inputs[l]
    return sig.inter_dendrite[l], sig.spikes[l + 1], sig.inputs[l + 1]


class ChunkRows:
    """The errors and presynaptic traces of up to ``chunk`` steps, each step's rows copied into a float64 buffer
    (the precision of :func:`bioleaf.model.weights.batch_outer_sum`) as it comes, no list to stack afterwards."""

    def __init__(self, chunk: int):
        self.chunk, self.steps = chunk, 0
        self._error: torch.Tensor | None = None
        self._trace: torch.Tensor | None = None

    def add(self, error: torch.Tensor, trace: torch.Tensor) -> bool:
        """One step's ``[batch, n_post]`` errors and ``[batch, n_pre]`` traces; whether the chunk is full."""
        rows = error.shape[0]
        if self._error is None or self._error.shape[0] != self.chunk * rows:
            self._error = error.new_empty((self.chunk * rows, error.shape[1]), dtype=torch.float64)
            self._trace = trace.new_empty((self.chunk * rows, trace.shape[1]), dtype=torch.float64)
        at = slice(self.steps * rows, (self.steps + 1) * rows)
        self._error[at].copy_(error)
        self._trace[at].copy_(trace)
        self.steps += 1
        return self.steps == self.chunk

    def take(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows of the steps held (``[steps * batch, n]`` each), and the buffer emptied for the next chunk."""
        rows = self.steps * self._error.shape[0] // self.chunk
        self.steps = 0
        return self._error[:rows], self._trace[:rows]


class SpikeTimingSums:
    """The eligibility ``E[l]`` (``[n_post, n_pre]``, float64, summed over the batch) of the synapses onto the
    ``population`` (:data:`PYRAMIDAL`: ``W``; :data:`INTERNEURON`: ``P``) of every layer in ``layers``, in the batch
    ``rows`` of the copy that learns (``None``: all rows). ``couplings[l]`` is :math:`g_i` of layer ``l``'s cells
    (what else drives the soma: the apical coupling, the teacher; 1 for an interneuron's teaching compartment), ``drive_gains[l]`` the gain of
    the potential their prediction integrates; ``start[l]``, where given, the prediction's potential at the first
    step (the soma's own, when plasticity opens in the middle of a presentation)."""

    def __init__(self, layers: list[int], couplings: list[float], drive_gains: list[float], threshold: float,
                 rows: slice | None = None, chunk: int = 10, window_decay: float = 0.0, population: str = PYRAMIDAL,
                 start: dict[int, torch.Tensor] | None = None):
        self.E: dict[int, torch.Tensor | None] = {l: None for l in layers}
        self._basal_soma: dict[int, torch.Tensor | None] = {  # u_i, the prediction's potential
            l: None if start is None else start[l].clone() for l in layers}
        self._pending: dict[int, ChunkRows] = {l: ChunkRows(chunk) for l in layers}
        self._couplings, self._gains, self._threshold = couplings, drive_gains, threshold
        self._rows, self.population = rows, population
        self._window_decay = window_decay  # lambda_w of the plasticity trace (0: the PSP trace itself)
        self._window: dict[int, torch.Tensor | None] = {l: None for l in layers}  # x~_j, the plasticity trace

    def _own(self, t: torch.Tensor) -> torch.Tensor:
        return t if self._rows is None else copy_rows(t, self._rows)

    def add(self, sig: StepSignals) -> None:
        """One step of every layer (:meth:`add_cells`)."""
        for l in self.E:
            self.add_cells(l, *cell_signals(sig, self.population, l))

    def add_cells(self, l: int, drive: torch.Tensor, spikes: torch.Tensor, pre: torch.Tensor) -> None:
        """One step of layer ``l``: every cell's error against its own dendritic prediction, paired with its
        presynaptic traces."""
        drive = self._gains[l] * self._own(drive)
        u = drive.clone() if self._basal_soma[l] is None else self._basal_soma[l].add_(drive)
        predicted = (u >= self._threshold).to(u.dtype)
        self._basal_soma[l] = u.sub_(predicted, alpha=self._threshold)
        error = plasticity.dendritic_prediction_error(self._own(spikes), predicted, self._threshold,
                                                      self._couplings[l])
        if self._pending[l].add(error, self._plasticity_trace(l, self._own(pre))):
            self._flush(l)

    def _plasticity_trace(self, l: int, pre: torch.Tensor) -> torch.Tensor:
        r"""The presynaptic trace the rule pairs with the error: the PSP trace :math:`x_j` itself, or with a window
        decay :math:`\lambda_w > 0` its low-pass :math:`\tilde x_j(t) = \lambda_w \tilde x_j(t-1) + (1-\lambda_w) x_j(t)`
        (the same area per presynaptic spike, less what is still in flight at the end of the presentation; a window
        that rises and falls over ``--tau-stdp``)."""
        if not self._window_decay:
            return pre
        prev = self._window[l]
        trace = (1 - self._window_decay) * pre if prev is None else torch.lerp(pre, prev, self._window_decay)
        self._window[l] = trace
        return trace

    def _flush(self, l: int) -> None:
        """The pending steps of layer ``l`` as one product of their stacked rows."""
        change = plasticity.basal_error_stdp(*self._pending[l].take())
        self.E[l] = change if self.E[l] is None else self.E[l].add_(change)

    def complete(self) -> None:
        """The steps still pending at the end of the presentation."""
        for l in self.E:
            if self._pending[l].steps:
                self._flush(l)
