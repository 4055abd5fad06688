r"""Per-epoch figures of how far a microcircuit's learning is from backprop's, for ``metrics.jsonl``
(the trainer's ``diagnostics`` hook: ``bioleaf train`` and :func:`bioleaf.fit` pass
:func:`circuit_diagnostics`)."""

from __future__ import annotations

import math

import torch

from bioleaf.rules import Rule
from bioleaf.tools.equivalence import agreement, spiking_updates


def circuit_diagnostics(rule: Rule, images: torch.Tensor, labels: torch.Tensor) -> dict:
    r"""On a fixed probe batch with fixed spikes: the angle (degrees) between the circuit's ``W`` updates
    and the ST-BP gradient per layer (``stbp_angle_deg``), the teacher-free apical residual (mean ``|A| / T``
    per hidden layer, ``apical_residual``) and that residual relative to the same cells' apical signal in the
    teacher phase (``apical_residual_ratio``; 0: the interneurons cancel every top-down input the teacher did
    not cause); and the angle between each hidden layer's feedback ``B_l`` and :math:`W_{l+1}^\top`
    (``feedback_angle_deg``; 0: weight transport's feedback). Nothing (``{}``) for a rule without a circuit."""
    circuit = getattr(rule, "circuit", None)
    if circuit is None:
        return {}
    gen = torch.Generator(device=rule.device).manual_seed(rule.cfg.seed + 4)
    updates, grads, residual = spiking_updates(circuit, images, labels, rule.cfg, gen)
    angles = [math.degrees(math.acos(max(-1.0, min(1.0, row["cosine"])))) for row in agreement(updates, grads)]
    ratio = [free / taught if taught > 0 else math.nan for free, taught in zip(residual.free, residual.teacher)]
    return {"stbp_angle_deg": angles, "apical_residual": residual.free, "apical_residual_ratio": ratio,
            "feedback_angle_deg": circuit.feedback_angles(rule.cfg.circuit.feedback_sources(len(circuit.W)))}
