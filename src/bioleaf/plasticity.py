r"""The local plasticity rules of the BioLeaF microcircuit, one pure function each.

During a presentation every synapse keeps *running sums* of quantities it can see (its presynaptic
trace summed over time, :math:`X_j = \sum_t x_j(t)`; the postsynaptic compartment's potential summed
over time, e.g. :math:`A_i = \sum_t v^A_i(t)`; the postsynaptic spike count). These sums are
eligibility-like variables of fixed size, updated online, so learning memory does not grow with
``T``. At the end of the presentation each rule turns them into one increment; the rules below
are those pure functions. Their arguments are *exactly* the quantities the locality contract allows:
the synapse's presynaptic activity, the postsynaptic cell's own spikes and compartment potentials,
and global scalars, nothing else: no other weight matrix, no label, no stored history.

Why sums rather than :math:`\sum_t e_i(t)\,x_j(t)`: in a ``T``-step window every trace ramps up
from zero, so errors carried early in the window (when traces are still small) were under-weighted,
which biased every update (outputs settled ~40 % below their target count; with random feedback
hidden activity grew without bound). :math:`\tfrac1T (\sum_t e_i)(\sum_t x_j)` is the count-level
product the ST-BP gradient :math:`\delta_i X_j` has.

Shapes: presynaptic ``[batch, n_pre]``, postsynaptic ``[batch, n_post]``, result ``[n_post, n_pre]``
(summed over the batch; each batch row is an independent presentation).
"""

from __future__ import annotations

import torch

from .network import batch_outer_sum


def basal_error_stdp(pre_sum: torch.Tensor, apical_sum: torch.Tensor, active: torch.Tensor,
                     steps: int) -> torch.Tensor:
    r"""Bottom-up ``W`` (at the basal dendrite): error-gated plasticity.

    .. math::  \Delta W_{ij} = \tfrac1T\, g_i\, A_i\, X_j, \qquad
               A_i = \sum_t v^A_i(t) + \frac{v^A_i(T)}{1-\lambda}, \quad X_j = \sum_t x_j(t)

    ``apical_sum`` :math:`A_i` is the cell's own apical potential integrated over the presentation,
    including the integral of the PSPs still decaying at its end (so every top-down spike counts
    with its full PSP area, whenever it came); at output cells it is the integrated teacher current
    :math:`\sum_t c_i(t)`. ``active`` is the cell's own gate :math:`g_i = [n_i > 0]` (it fired in this
    presentation; all ones at output cells, whose teacher current is already rectified).
    """
    return batch_outer_sum(apical_sum * active, pre_sum) / steps


def interneuron_prediction(pre_sum: torch.Tensor, partner_count: torch.Tensor,
                           own_predicted_count: torch.Tensor, steps: int) -> torch.Tensor:
    r"""Pyramidal -> interneuron ``P``: the interneuron learns to predict its partner's spike count.

    .. math::  \Delta P_{mi} = \tfrac1T\,\big(n^{partner}_m - \hat n^I_m\big)\, X_i, \qquad
               \hat n^I_m = \Big[\sum_t g_B\, (P x)_m(t)\Big]_+ \big/ \vartheta

    ``partner_count`` arrives through the interneuron's one-to-one nudging synapse from its partner
    above; ``own_predicted_count`` is the count the interneuron's own dendritic potential predicts
    (smooth, unlike its own spikes). A delta rule: at the fixed point :math:`\hat n^I = n^{partner}`
    on the inputs seen, i.e. ``P`` reproduces ``W`` of the layer above on the activity subspace.
    """
    return batch_outer_sum(partner_count - own_predicted_count, pre_sum) / steps


def apical_cancellation(interneuron_sum: torch.Tensor, apical_sum: torch.Tensor, steps: int) -> torch.Tensor:
    r"""Interneuron -> apical ``Q``: anti-Hebbian, drives the integrated apical potential to zero.

    .. math::  \Delta Q_{im} = -\tfrac1T\, A_i\, X^I_m \;=\; -\tfrac1T\,\partial_{Q_{im}} \tfrac12 A_i^2

    (``A`` as in :func:`basal_error_stdp`, ``X^I`` the interneuron's trace summed the same way).
    With no teacher the apical potential then settles at ~0: the self-predicting state, in exactly
    the quantity the bottom-up rule reads.
    """
    return -batch_outer_sum(apical_sum, interneuron_sum) / steps


def feedback_mirror(pre_sum: torch.Tensor, own_sum: torch.Tensor, steps: int) -> torch.Tensor:
    r"""Top-down ``B`` (learned mode): a covariance (centred Hebbian) weight mirror.

    .. math::  \Delta B_{ik} = \tfrac1T\,\big(X_i - \bar X_i\big)\big(X^{l+1}_k - \bar X^{l+1}_k\big)

    ``own_sum`` is the postsynaptic cell's own trace sum :math:`X_i` (layer ``l``), ``pre_sum`` that
    of the presynaptic cell ``k`` above; :math:`\bar X` is each cell's own mean activity (its
    homeostatic set point; here the mean over the batch's presentations). Because cell ``k`` is driven
    by ``i`` through :math:`W_{ki}`, :math:`\mathbb E[\Delta B] \approx \mathrm{Cov}(X^l)\, W_{l+1}^\top`:
    a positive-definite mix of :math:`W^\top`, so feedback computed with it is a descent direction. Weight
    decay (applied by the learner) keeps ``B`` bounded, :math:`B \propto \mathrm{Cov}(X^l)W_{l+1}^\top`.
    """
    own = own_sum - own_sum.mean(dim=0, keepdim=True)
    pre = pre_sum - pre_sum.mean(dim=0, keepdim=True)
    return batch_outer_sum(own, pre) / steps
