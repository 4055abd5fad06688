r"""The four synapse types of the microcircuit, each a named product of presynaptic traces and weights.

Rows of ``x`` are samples, so every pathway is ``x @ weights.T`` (``[batch, n_pre] -> [batch, n_post]``):

.. math::

    v^B_l &= W_l\, x_{l-1}                 &&\text{bottom-up, onto the basal dendrite}\\
    v^A_l &= B_l\, x_{l+1} + Q_l\, x^I_l    &&\text{top-down plus lateral inhibition, onto the apical dendrite}\\
    v^I_l &= P_l\, x_l                      &&\text{lateral, onto the interneurons}

computed by :func:`bottom_up`, :func:`apical` and :func:`lateral_prediction`.

With ideal interneurons (``Q = -B``, ``P = W_{l+1}``, a labelled idealisation) the apical input is one
product of the difference, :math:`B_l (x_{l+1} - x^I_l)` (:func:`ideal_apical`), and an interneuron's
lateral input is its partner's basal input, already computed (:func:`ideal_prediction`).

Where several copies of a batch are stacked on each other (the free and the teacher phase simulated side
by side), a population every copy shares (below the lowest nudged layer) holds one copy's rows, so a
pathway leaving it runs on those rows; where it meets a population of all the rows, it is repeated
(:func:`stacked`), or, where it is combined element-wise with such a population, broadcast over the copies
(:func:`per_copy`): the same numbers, for ``1 / copies`` of the arithmetic.
"""

from __future__ import annotations

from typing import Callable

import torch

Apical = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]
"""``(layer, x_above, x_inter) -> v^A``, in the rows of ``x_above``."""
Prediction = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]
"""``(layer, x_layer, basal_above) -> v^I``, in the rows of ``x_layer``."""


def stacked(t: torch.Tensor, rows: int) -> torch.Tensor:
    """``t`` in ``rows`` rows: ``t`` itself, or, where it holds one copy's rows of a population that every
    stacked copy of the batch shares, those rows repeated once per copy."""
    return t if t.shape[0] == rows else torch.cat([t] * (rows // t.shape[0]))


def per_copy(op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], t: torch.Tensor,
             shared: torch.Tensor) -> torch.Tensor:
    """``op(t, shared)`` in the rows of ``t``; where ``shared`` holds one copy's rows of a population every stacked
    copy shares, it is broadcast over the copies (a view, nothing repeated)."""
    if shared.shape[0] == t.shape[0]:
        return op(t, shared)
    return op(t.view(-1, *shared.shape), shared).view(t.shape)


def bottom_up(pre: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    r"""Basal potential :math:`v^B = W x_{below}`."""
    return pre @ W.T


def apical(B: torch.Tensor, Q: torch.Tensor, above: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
    r"""Apical potential :math:`v^A = B x_{above} + Q x^I` (top-down ``B`` plus the interneurons' ``Q``; the
    interneurons' part added to every copy where they hold one copy's rows)."""
    return per_copy(torch.add, above @ B.T, inter @ Q.T)


def ideal_apical(B: torch.Tensor, above: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
    r"""Apical potential with ideal interneurons (``Q = -B``): :math:`B (x_{above} - x^I)`."""
    return per_copy(torch.sub, above, inter) @ B.T


def lateral_prediction(P: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
    r"""An interneuron's lateral input :math:`v^I = P x_l`."""
    return pre @ P.T


def ideal_prediction(basal_above: torch.Tensor) -> torch.Tensor:
    r"""An ideal interneuron's lateral input (``P = W_{l+1}``): its partner's basal potential."""
    return basal_above


def apical_pathway(B: list[torch.Tensor], Q: list[torch.Tensor], ideal: bool) -> Apical:
    """The apical input of every hidden layer for the interneuron mode (chosen once per presentation)."""
    if ideal:
        return lambda l, above, inter: ideal_apical(B[l], above, inter)
    return lambda l, above, inter: apical(B[l], Q[l], above, inter)


def prediction_pathway(P: list[torch.Tensor], ideal: bool) -> Prediction:
    """The interneurons' lateral input of every hidden layer for the interneuron mode."""
    if ideal:
        return lambda l, pre, basal_above: ideal_prediction(basal_above)
    return lambda l, pre, basal_above: lateral_prediction(P[l], pre)
