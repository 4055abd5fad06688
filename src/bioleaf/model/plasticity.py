r"""The local plasticity rules of the BioLeaF microcircuit, one pure function each.

During a presentation every synapse keeps *running sums* of quantities it can see (its presynaptic
trace summed over time, :math:`X_j = \sum_t x_j(t)`; the postsynaptic compartment's potential summed
over time, e.g. :math:`A_i = \sum_t v^A_i(t)`; the postsynaptic spike count). These sums are
eligibility-like variables of fixed size, updated online, so learning memory does not grow with
``T``. At the end of the presentation each rule turns them into one increment; the rules below
are those pure functions. Their arguments are *exactly* the quantities the locality contract allows:
the synapse's presynaptic activity, the postsynaptic cell's own spikes and compartment potentials,
and global scalars, nothing else: no other weight matrix, no label, no stored history.

Two rules for the bottom-up ``W``: :func:`basal_error_integrated`, on presentation sums,
:math:`\tfrac1T (\sum_t e_i)(\sum_t x_j)`, the count-level product the ST-BP gradient :math:`\delta_i X_j` has,
whose change does not depend on the timing of pre- and postsynaptic spikes within the window; and
:func:`basal_error_stdp`, spike-timing-dependent, :math:`\sum_t e_i(t)\, x_j(t)` with the cell's spikes minus
its basal dendrite's predicted spikes as :math:`e_i(t)` (:func:`dendritic_prediction_error`), accumulated step by
step in bounded chunks (docs/theory.md, section 3).

With ``--homeostasis`` a cell's code is kept healthy by :func:`homeostatic_scaling`, read from its own count: a
cell silent in a presentation strengthens its active inputs, one firing at its cap weakens them.

Shapes: presynaptic ``[batch, n_pre]``, postsynaptic ``[batch, n_post]``, result ``[n_post, n_pre]``
(summed over the batch; each batch row is an independent presentation).
"""

from __future__ import annotations

import math

import torch

from bioleaf.model.weights import batch_outer_sum

GATES = ("fired", "headroom")
W_RULES = ("integrated", "stdp")
"""The bottom-up rules: on presentation sums (:func:`basal_error_integrated`) or spike-timing-dependent
(:func:`basal_error_stdp`)."""


def basal_error_integrated(pre_sum: torch.Tensor, apical_sum: torch.Tensor, active: torch.Tensor,
                           steps: int) -> torch.Tensor:
    r"""Bottom-up ``W`` (at the basal dendrite): error-gated plasticity on presentation sums (no timing window).

    .. math::  \Delta W_{ij} = \tfrac1T\, g_i\, A_i\, X_j, \qquad
               A_i = \sum_t v^A_i(t) + \frac{v^A_i(T)}{1-\lambda}, \quad X_j = \sum_t x_j(t)

    ``apical_sum`` :math:`A_i` is the cell's own apical potential integrated over the presentation,
    including the integral of the PSPs still decaying at its end (so every top-down spike counts
    with its full PSP area, whenever it came); at output cells it is the integrated teacher current
    :math:`\sum_t c_i(t)`. ``active`` is the cell's own gate :math:`g_i = [n_i > 0]` (it fired in this
    presentation; all ones at output cells, whose teacher current is already rectified).
    """
    return batch_outer_sum(apical_sum * active, pre_sum) / steps


def dendritic_prediction_error(spikes: torch.Tensor, predicted: torch.Tensor, threshold: float,
                               coupling: float) -> torch.Tensor:
    r"""A cell's error at one step: its spikes minus the spikes its basal dendrite predicts.

    .. math::  e_i(t) = \vartheta\, \big(s_i(t) - \hat s_i(t)\big) / g_i

    ``predicted`` :math:`\hat s_i(t)` are the spikes an integrate-and-fire variable of the cell's own would fire on
    its basal potential alone (:class:`bioleaf.model.circuit.eligibility.SpikeTimingSums`); ``coupling`` :math:`g_i`
    the strength of whatever else drives the soma: :math:`g_A` at a hidden cell (its apical compartment), 1 at an
    output cell (its teacher). The soma turns the extra drive :math:`g_A v^A_i` into spikes the prediction lacks,
    so :math:`\sum_t e_i(t)` is the count change :math:`\vartheta (n_i - \hat n_i)/g_i \approx A_i`, gated the way
    the soma gates it: nothing while neither the cell nor its prediction fires, nothing at the cap of one spike per
    step (after Urbanczik & Senn 2014, dendritic prediction of somatic spiking).
    """
    return threshold * (spikes - predicted) / coupling


def basal_error_stdp(error: torch.Tensor, pre_trace: torch.Tensor) -> torch.Tensor:
    r"""Bottom-up ``W``, spike-timing-dependent: each postsynaptic spike potentiates by the presynaptic trace at
    that moment, and each spike the basal dendrite predicts depresses by the same trace.

    .. math::  \Delta W_{ij} = \sum_t e_i(t)\, x_j(t), \qquad
               e_i(t) = \vartheta\,\big(s_i(t) - \hat s_i(t)\big) / g_i

    (:func:`dendritic_prediction_error`; ``error`` and ``pre_trace`` hold any number of steps stacked in their
    rows, ``[steps * batch, n]``). A presynaptic spike at :math:`t_j` followed by a postsynaptic one at
    :math:`t_i \ge t_j` adds :math:`\vartheta \lambda^{t_i - t_j}/g_i`, one before it adds nothing: the learning
    window is the presynaptic PSP, causal, and its sign and size are the compartment's (a spike the basal
    dendrite did not predict potentiates, a predicted one that did not come depresses). Same scale as
    :func:`basal_error_integrated`: for stationary rates :math:`\sum_t e_i x_j \approx \tfrac1T (\sum_t e_i)
    (\sum_t x_j)`.
    """
    return batch_outer_sum(error, pre_trace)


def plasticity_gate(count: torch.Tensor, steps: int, kind: str) -> torch.Tensor:
    r"""A hidden cell's gate :math:`g_i` of :func:`basal_error_integrated`, read from its own spike count.

    .. math::  g_i = [n_i > 0] \quad (\texttt{fired}), \qquad
               g_i = [n_i > 0]\,\big(1 - n_i / T\big) \quad (\texttt{headroom})

    ``fired``: a silent cell's count cannot fall, and a small change of its drive does not make it fire,
    so it does not learn. ``headroom`` also closes as the count approaches its cap of one spike per step,
    where more drive adds no spike: a cell near the cap learns little in either direction, so an error that
    does not shrink (fixed random feedback) cannot drive a layer into a code of saturated cells.
    """
    fired = (count > 0).to(count.dtype)
    return fired if kind == "fired" else fired * (1 - count / steps)


def homeostatic_drive(count: torch.Tensor, cap: int, strength: float, threshold: float) -> torch.Tensor:
    r"""A hidden cell's homeostatic signal from its own spike count in one presentation.

    .. math::  h_i = \eta_h\, \vartheta\, \big([n_i = 0] - [n_i \ge n_{max}]\big)

    Positive while the cell stays silent, negative while it fires at its cap :math:`n_{max}` (``cap``: one spike
    per step, fewer with a refractory period), zero in between: a set-point band on the cell's own rate, with no
    target inside it to pull the code toward.
    """
    silent = (count == 0).to(count.dtype)
    capped = (count >= cap).to(count.dtype)
    return (strength * threshold) * (silent - capped)


def homeostatic_scaling(drive: torch.Tensor, pre_sum: torch.Tensor, steps: int) -> torch.Tensor:
    r"""Bottom-up ``W`` of a hidden cell, homeostatic: its active inputs scaled by its own rate band.

    .. math::  \Delta W_{ij} = \tfrac1T\, h_i\, X_j

    (``drive`` :math:`h_i` from :func:`homeostatic_drive`; ``pre_sum`` :math:`X_j` as in
    :func:`basal_error_integrated`, whose scale it shares: :math:`h_i` stands where the integrated apical
    potential :math:`A_i` stands there, an error of :math:`\eta_h\vartheta` per presentation). A cell silent on a
    sample strengthens the synapses that were active on it until it fires on such samples; a cell at its cap
    weakens them. Either rule of ``W`` adds it with ``--homeostasis``, and the error rule's own gate cannot close
    it: a silent cell has no error to learn from, which is why it needs this one (after Turrigiano's synaptic
    scaling, here additive and input-specific). A learned ``B`` that mirrors this ``W`` takes the same increment
    (:func:`feedback_kolen_pollack` of :math:`h`, read from its presynaptic cell's count).
    """
    return batch_outer_sum(drive, pre_sum) / steps


def count_cap(steps: int, refractory: int) -> int:
    """The most spikes a soma can fire in ``steps`` steps: one per step, one per ``refractory + 1`` steps with a
    refractory period."""
    return math.ceil(steps / (refractory + 1))


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

    (``A`` as in :func:`basal_error_integrated`, ``X^I`` the interneuron's trace summed the same way).
    With no teacher the apical potential then settles at ~0: the self-predicting state, in exactly
    the quantity the bottom-up rule reads.
    """
    return -batch_outer_sum(apical_sum, interneuron_sum) / steps


def count_change_error(count: torch.Tensor, free_count: torch.Tensor, threshold: float,
                       coupling: float) -> torch.Tensor:
    r"""A cell's error read from its own spike counts with and without the teacher on the same input.

    .. math::  e_k = \vartheta\, \big(n^{teacher}_k - n^{free}_k\big) / g_k

    At output cells (:math:`g_k = 1`) it is the SPEC's "teacher-nudged minus unnudged spiking":
    :math:`\vartheta(y_k - n^{free}_k)` at :math:`\beta = 1`. At a hidden cell whose soma the apical
    compartment nudges with :math:`g_k = g_A` the extra drive :math:`g_A A_k` moves the count by
    :math:`g_A A_k / \vartheta` while the cell fires (none while it stays silent: the gate is implicit),
    so :math:`e_k \approx [n_k > 0]\, A_k`, the error :func:`basal_error_integrated` reads, in whole spikes.
    """
    return threshold * (count - free_count) / coupling


def feedback_kolen_pollack(partner_error: torch.Tensor, own_sum: torch.Tensor, steps: int) -> torch.Tensor:
    r"""Top-down ``B`` (learned mode): Kolen-Pollack mirrored increments.

    .. math::  \Delta B_{ik} = \tfrac1T\, e_k\, X_i, \qquad e_k = \vartheta\,(n^{teacher}_k - n^{free}_k)/g_k

    The synapse from cell ``k`` (layer above) onto the apical dendrite of cell ``i`` reads how many more
    spikes its presynaptic cell fired with the teacher than in the free phase on the same input (both
    arrive at the synapse; :func:`count_change_error`, with the global coupling :math:`g_k`) and its
    postsynaptic cell's own trace sum :math:`X_i`. The reverse synapse :math:`W_{ki}` of the layer above
    reads the same two quantities (its presynaptic trace sum :math:`X_i` and its own cell's count change:
    :func:`basal_error_integrated` with :math:`e_k`), so ``B_l`` and :math:`W_{l+1}^\top` receive identical
    increments and, with the same optimiser settings, take identical steps (Adam's moments are each
    synapse's own). Their difference then keeps its initial value while both grow and decays with the
    decay both share (``feedback_decay``): the angle between ``B_l`` and :math:`W_{l+1}^\top` shrinks
    without either synapse reading the other (Kolen & Pollack 1994; Akrout et al. 2019).
    """
    return batch_outer_sum(own_sum, partner_error) / steps
