r"""The local plasticity rules of the BioLeaF microcircuit, one pure function each.

Each rule returns the increment of one synapse type for one time step, summed over the batch
(each batch row is an independent presentation). Its arguments are *exactly* the quantities the
locality contract allows: the synapse's presynaptic trace or spikes, the postsynaptic cell's own
spikes and compartment potentials, and nothing else: no other weight matrix, no label, no stored
history. Presentations accumulate these increments online, so memory does not grow with ``T``.

Shapes: presynaptic ``[batch, n_pre]``, postsynaptic ``[batch, n_post]``, result ``[n_post, n_pre]``.
"""

from __future__ import annotations

import torch


def basal_error_stdp(pre_trace: torch.Tensor, apical: torch.Tensor, has_spiked: torch.Tensor) -> torch.Tensor:
    r"""Bottom-up ``W`` (at the basal dendrite): error-gated STDP.

    .. math::  \Delta W_{ij}(t) = e_i(t)\, x_j(t), \qquad e_i(t) = v^A_i(t)\, g_i(t)

    ``apical`` is the cell's own apical potential (the teacher current at output cells) and
    ``has_spiked`` its own activity gate :math:`g_i(t) \in \{0, 1\}` (1 once the cell has fired in
    this presentation; all ones at output cells, whose teacher current is already rectified).
    """
    return (apical * has_spiked).T @ pre_trace


def interneuron_prediction(pre_trace: torch.Tensor, partner_spikes: torch.Tensor,
                           own_spikes: torch.Tensor) -> torch.Tensor:
    r"""Pyramidal -> interneuron ``P``: the interneuron learns to reproduce its partner's spiking.

    .. math::  \Delta P_{mi}(t) = \big(s^{partner}_m(t) - s^{I}_m(t)\big)\, x_i(t)

    The partner's spikes reach interneuron ``m`` through its one-to-one nudging synapse; at the
    fixed point the interneuron fires like its partner, i.e. ``P`` reproduces ``W`` of the layer above.
    """
    return (partner_spikes - own_spikes).T @ pre_trace


def apical_cancellation(interneuron_trace: torch.Tensor, apical: torch.Tensor) -> torch.Tensor:
    r"""Interneuron -> apical ``Q``: anti-Hebbian, drives the apical potential to zero.

    .. math::  \Delta Q_{im}(t) = -\,v^A_i(t)\, x^I_m(t) \;=\; -\partial_{Q_{im}}\tfrac12 (v^A_i)^2

    With no teacher the apical potential then settles at ~0: the self-predicting state.
    """
    return -apical.T @ interneuron_trace


def feedback_mirror(pre_trace: torch.Tensor, own_spikes: torch.Tensor, own_rate: torch.Tensor) -> torch.Tensor:
    r"""Top-down ``B`` (learned mode): a Hebbian weight mirror driven by spiking noise.

    .. math::  \Delta B_{ik}(t) = \big(s_i(t) - \bar r_i(t)\big)\, x^{l+1}_k(t)

    ``own_rate`` :math:`\bar r_i(t)` is the cell's own firing rate so far in this presentation.
    The fluctuation of the cell around its rate drives the cells above through ``W`` within the
    same step, so the expected update is :math:`\mathrm{Cov}(s, s)\, W^{\top}`: ``B`` aligns with
    the transpose of the bottom-up weights above it without ever reading them (weight decay,
    applied by the learner, keeps it bounded).
    """
    return (own_spikes - own_rate).T @ pre_trace
