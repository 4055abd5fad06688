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
:func:`apical_input` and :func:`interneuron_input` choose between the two by the interneuron mode.
Where a population holds one copy's rows of stacked copies, the products leaving it run on those rows
(:mod:`bioleaf.model.circuit.layout`).
"""

from __future__ import annotations

import torch

from bioleaf.model.circuit.layout import per_copy


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


def apical_input(B: torch.Tensor, Q: torch.Tensor, above: torch.Tensor, inter: torch.Tensor,
                 ideal: bool) -> torch.Tensor:
    """A hidden layer's apical potential: :func:`ideal_apical` with ideal interneurons, else :func:`apical`."""
    return ideal_apical(B, above, inter) if ideal else apical(B, Q, above, inter)


def interneuron_input(P: torch.Tensor, pre: torch.Tensor, basal_above: torch.Tensor, ideal: bool) -> torch.Tensor:
    """The interneurons' lateral potential: :func:`ideal_prediction` with ideal interneurons, else
    :func:`lateral_prediction`."""
    return ideal_prediction(basal_above) if ideal else lateral_prediction(P, pre)


def referenced(apical: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
    r"""The apical potential a cell's compartment passes on, measured against its own reference where it has one
    (one presentation's teacher period: its slow trace of the free period, :math:`v^A(t) - \bar v^A`)."""
    return apical if reference is None else apical - reference
