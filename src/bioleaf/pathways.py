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

Where the rows of ``x`` hold ``copies`` identical copies of a batch stacked on each other (the free and
the teacher phase simulated side by side share every population below the lowest nudged layer), a
pathway leaving those populations is computed on the first copy's rows and repeated (:func:`product`):
the same numbers, for ``1 / copies`` of the arithmetic.
"""

from __future__ import annotations

from typing import Callable

import torch

Apical = Callable[..., torch.Tensor]
"""``(layer, x_above, x_inter, copies=1) -> v^A`` (``copies``: identical stacked copies in ``x_inter``)."""
Prediction = Callable[..., torch.Tensor]
"""``(layer, x_layer, basal_above, copies=1) -> v^I`` (``copies``: identical stacked copies in ``x_layer``)."""


def product(pre: torch.Tensor, weights: torch.Tensor, copies: int = 1) -> torch.Tensor:
    r"""``pre @ weights.T``; when ``pre``'s rows are ``copies`` identical copies of a batch stacked on each
    other, computed on the first copy's rows and repeated (by concatenation: ``Tensor.repeat`` takes several
    times as long on a CPU)."""
    if copies == 1:
        return pre @ weights.T
    return torch.cat([pre[:pre.shape[0] // copies] @ weights.T] * copies)


def bottom_up(pre: torch.Tensor, W: torch.Tensor, copies: int = 1) -> torch.Tensor:
    r"""Basal potential :math:`v^B = W x_{below}`."""
    return product(pre, W, copies)


def apical(B: torch.Tensor, Q: torch.Tensor, above: torch.Tensor, inter: torch.Tensor,
           copies: int = 1) -> torch.Tensor:
    r"""Apical potential :math:`v^A = B x_{above} + Q x^I` (top-down ``B`` plus the interneurons' ``Q``;
    ``copies``: identical stacked copies in ``inter``)."""
    return above @ B.T + product(inter, Q, copies)


def ideal_apical(B: torch.Tensor, above: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
    r"""Apical potential with ideal interneurons (``Q = -B``): :math:`B (x_{above} - x^I)`."""
    return (above - inter) @ B.T


def lateral_prediction(P: torch.Tensor, pre: torch.Tensor, copies: int = 1) -> torch.Tensor:
    r"""An interneuron's lateral input :math:`v^I = P x_l`."""
    return product(pre, P, copies)


def ideal_prediction(basal_above: torch.Tensor) -> torch.Tensor:
    r"""An ideal interneuron's lateral input (``P = W_{l+1}``): its partner's basal potential."""
    return basal_above


def apical_pathway(B: list[torch.Tensor], Q: list[torch.Tensor], ideal: bool) -> Apical:
    """The apical input of every hidden layer for the interneuron mode (chosen once per presentation)."""
    if ideal:
        return lambda l, above, inter, copies=1: ideal_apical(B[l], above, inter)
    return lambda l, above, inter, copies=1: apical(B[l], Q[l], above, inter, copies)


def prediction_pathway(P: list[torch.Tensor], ideal: bool) -> Prediction:
    """The interneurons' lateral input of every hidden layer for the interneuron mode."""
    if ideal:
        return lambda l, pre, basal_above, copies=1: ideal_prediction(basal_above)
    return lambda l, pre, basal_above, copies=1: lateral_prediction(P[l], pre, copies)
