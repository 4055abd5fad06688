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
rows, so the memory is bounded by the chunk, whatever ``T``.
"""

from __future__ import annotations

import torch

from bioleaf.model import plasticity
from bioleaf.model.circuit.layout import copy_rows
from bioleaf.model.circuit.state import StepSignals


class SpikeTimingSums:
    """The eligibility ``E[l]`` (``[n_post, n_pre]``, float64, summed over the batch) of ``W`` of every layer in
    ``layers``, in the batch ``rows`` of the copy that learns (``None``: all rows). ``couplings[l]`` is
    :math:`g_i` of layer ``l``'s cells, ``drive_gains[l]`` the gain of their basal potential."""

    def __init__(self, layers: list[int], couplings: list[float], drive_gains: list[float], threshold: float,
                 rows: slice | None = None, chunk: int = 10, window_decay: float = 0.0):
        self.E: dict[int, torch.Tensor | None] = {l: None for l in layers}
        self._basal_soma: dict[int, torch.Tensor | None] = {l: None for l in layers}  # u_i, the prediction's potential
        self._pending: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {l: [] for l in layers}
        self._couplings, self._gains, self._threshold = couplings, drive_gains, threshold
        self._rows, self._chunk = rows, chunk
        self._window_decay = window_decay  # lambda_w of the plasticity trace (0: the PSP trace itself)
        self._window: dict[int, torch.Tensor | None] = {l: None for l in layers}  # x~_j, the plasticity trace

    def _own(self, t: torch.Tensor) -> torch.Tensor:
        return t if self._rows is None else copy_rows(t, self._rows)

    def add(self, sig: StepSignals) -> None:
        """One step: every cell's error against its own basal prediction, paired with its presynaptic traces."""
        for l in self.E:
            drive = self._gains[l] * self._own(sig.basal[l])
            u = drive.clone() if self._basal_soma[l] is None else self._basal_soma[l].add_(drive)
            predicted = (u >= self._threshold).to(u.dtype)
            self._basal_soma[l] = u.sub_(predicted, alpha=self._threshold)
            error = plasticity.dendritic_prediction_error(self._own(sig.spikes[l]), predicted, self._threshold,
                                                          self._couplings[l])
            self._pending[l].append((error, self._plasticity_trace(l, self._own(sig.inputs[l]))))
            if len(self._pending[l]) == self._chunk:
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
        errors, traces = zip(*self._pending[l])
        change = plasticity.basal_error_stdp(torch.cat(errors), torch.cat(traces))
        self.E[l] = change if self.E[l] is None else self.E[l].add_(change)
        self._pending[l] = []

    def complete(self) -> None:
        """The steps still pending at the end of the presentation."""
        for l in self.E:
            if self._pending[l]:
                self._flush(l)
