r"""Spike-train-level backprop (ST-BP): the explicit gradient of the spiking error, no autograd.

The ``stbp`` rule (:mod:`bioleaf.rules.stbp`) descends it; :mod:`bioleaf.tools.equivalence` measures BioLeaF's
local updates against it.

Count model of a layer: :math:`o_l \approx [W_l X_{l-1}]_+ / \vartheta`, with :math:`X = \sum_t x(t)`
the summed trace. With the spiking error :math:`E = \tfrac12\sum_k (o_k - y_k)^2`:

.. math::

    \delta_{L} &= (o_L - y) \odot g_L / \vartheta, \qquad g_L = [o_L > 0] \lor [y > o_L]\\
    \delta_{l} &= (W_{l+1}^{\top} \delta_{l+1}) \odot \kappa_l \odot [o_l > 0] / \vartheta,
        \qquad \kappa_l = X_l / o_l \ (= dX/do, \text{ measured per cell})\\
    \partial E / \partial W_l &= \delta_l\, X_{l-1}^{\top}

:math:`\kappa` is the trace mass each spike actually contributed in this presentation (spikes late in
the window contribute less), and the output gate lets a silent cell that should fire receive its
error (a surrogate for silent cells). BioLeaF's equivalence is shown against this same definition.
"""

from __future__ import annotations

import torch

from bioleaf.model.network import Forward
from bioleaf.model.weights import batch_outer_sum


def stbp_gradients(weights: list[torch.Tensor], fwd: Forward, targets: torch.Tensor,
                   threshold: float) -> list[torch.Tensor]:
    """``dE/dW_l`` summed over the batch, for every layer (formulas above), in float64.

    The per-sample factors are computed row by row in the working precision; only the sum over the
    batch is taken in float64, so it hardly depends on how the batch is split into shards (data
    parallelism) and the float32 step rounds to the same value as in one process.
    """
    o = fwd.counts
    delta = (o[-1] - targets) * ((o[-1] > 0) | (targets > o[-1])).to(targets.dtype) / threshold
    grads = [batch_outer_sum(delta, fwd.trace_sums[-2])]
    for l in range(len(weights) - 2, -1, -1):
        active = o[l] > 0
        kappa = torch.where(active, fwd.trace_sums[l + 1] / torch.where(active, o[l], 1.0), 0.0)
        delta = (delta @ weights[l + 1]) * kappa / threshold
        grads.append(batch_outer_sum(delta, fwd.trace_sums[l]))
    return grads[::-1]
