r"""How close BioLeaF's local updates come to the ST-BP gradient of the same error.

Both are computed from the **same input spikes** (the spike generator is replayed): ST-BP from a
teacher-free run of the bottom-up network (:func:`bioleaf.model.backprop.stbp_gradients`), BioLeaF from
one teacher presentation of the microcircuit (:func:`bioleaf.model.circuit.presentation.present`). Per layer we
report the cosine between BioLeaF's :math:`\Delta W_l` and :math:`-\partial E/\partial W_l`, and the
relative scale :math:`\|\Delta W_l\| / \|\partial E/\partial W_l\|`.

Five settings (``bioleaf check-equivalence``):

- ``count_model``: the idealised count model (no spikes, :func:`count_model_updates`);
- ``spiking``: the spiking microcircuit in the special circumstance: symmetric feedback
  ``B = W_above^T``, ideal interneurons ``P = W_above``, ``Q = -B``, the integrated ``W`` rule;
- ``spiking_stdp``: the same circuit with the spike-timing-dependent ``W`` rule
  (:func:`bioleaf.model.plasticity.basal_error_stdp`, with the configuration's ``--tau-stdp``);
- ``random_feedback``: the same with fixed random ``B`` (and ``Q = -B``);
- ``untrained_interneurons``: symmetric feedback, ``P`` and ``Q`` at their initial value (zero),
  without the free-phase baseline (``contrastive=False``), so the apical potential carries the raw
  top-down activity.

Homeostatic scaling (``--homeostasis``) is off in every setting: it adds a change the gradient does not have; every
setting runs the two-copy schedule.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import torch

from bioleaf.config import TrainConfig
from bioleaf.model.circuit import Microcircuit, Plasticity, build_circuit, present_periods, present_phases
from bioleaf.model.network import Forward, simulate
from bioleaf.model.backprop import stbp_gradients

SETTINGS = ("count_model", "spiking", "spiking_stdp", "random_feedback", "untrained_interneurons")


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity of two tensors seen as flat vectors (0 if either is zero)."""
    a, b = a.flatten().double(), b.flatten().double()
    den = float(a.norm() * b.norm())
    return float(a @ b) / den if den > 0 else 0.0


def agreement(updates: list[torch.Tensor], grads: list[torch.Tensor]) -> list[dict]:
    """Per layer (1 = first hidden): cosine of update vs ``-grad`` and their norm ratio."""
    rows = []
    for l, (u, g) in enumerate(zip(updates, grads)):
        gn = float(g.norm())
        rows.append({"layer": l + 1, "cosine": cosine(u, -g), "scale": float(u.norm()) / gn if gn > 0 else math.nan})
    return rows


def count_model_updates(weights: list[torch.Tensor], x0: torch.Tensor, targets: torch.Tensor, *,
                        threshold: float, kappa: float, teacher_strength: float, g_apical: float,
                        ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    r"""BioLeaF updates and ST-BP gradients in the idealised count model (no time, no spikes).

    Forward: :math:`a_l = W_l X_{l-1}`, :math:`o_l = [a_l]_+/\vartheta`, :math:`X_l = \kappa o_l`.
    BioLeaF with symmetric feedback and ideal interneurons: output cells are nudged to fire
    :math:`[(1-\beta) a_L + \beta y \vartheta]_+/\vartheta` and learn from
    :math:`v^A_L = \beta(y\vartheta - [a_L]_+)`; a nudged hidden layer fires
    :math:`[a_l + g_A v^A_l]_+/\vartheta` while its interneurons predict
    :math:`[a_l]_+/\vartheta`, so the layer below receives
    :math:`v^A_{l-1} = W_l^\top \kappa\,(\text{nudged}_l - [a_l]_+)/\vartheta` and learns
    :math:`\Delta W_{l-1} = ([o_{l-1} > 0] \odot v^A_{l-1})\, X_{l-2}^\top`.
    Returns ``(updates, stbp_gradients)``, both summed over the batch, in float64 (the nudges are
    tiny differences of large potentials).
    """
    weights, x0, targets = [w.double() for w in weights], x0.double(), targets.double()
    X, a = [x0], []
    for w in weights:
        a.append(X[-1] @ w.T)
        X.append(kappa * torch.relu(a[-1]) / threshold)
    beta = teacher_strength
    apical = beta * (targets * threshold - torch.relu(a[-1]))
    updates = [apical.T @ X[-2]]
    nudged = torch.relu((1 - beta) * a[-1] + beta * targets * threshold)
    for l in range(len(weights) - 2, -1, -1):
        apical = (kappa * (nudged - torch.relu(a[l + 1])) / threshold) @ weights[l + 1]
        updates.append(((a[l] > 0).to(apical.dtype) * apical).T @ X[l])
        nudged = torch.relu(a[l] + g_apical * apical)
    counts = [torch.relu(z) / threshold for z in a]
    grads = stbp_gradients(weights, Forward(counts=counts, trace_sums=X, potentials=counts[-1]), targets, threshold)
    return updates[::-1], grads


class ApicalResiduals(NamedTuple):
    """Mean ``|A| / T`` per hidden layer: with no teacher (the self-predicting state drives it to 0) and
    in the teacher phase (the error signal the cells carry)."""

    free: list[float]
    teacher: list[float]


def spiking_updates(circuit: Microcircuit, images: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig,
                    generator: torch.Generator) -> tuple[list[torch.Tensor], list[torch.Tensor], ApicalResiduals]:
    """BioLeaF's ``W`` updates as training computes them, ST-BP's gradients (teacher-free run of the
    bottom-up network) and the apical residuals of the circuit without and with the teacher, all on the
    same input spikes; nothing is applied to the circuit. In one presentation the circuit runs its free period
    first, and ST-BP sees the teacher period's input spikes."""
    y = cfg.targets.of(labels, circuit.W[-1].shape[0])
    free_steps = cfg.circuit.free_steps if cfg.circuit.one_presentation() else 0
    stream = cfg.encoder_obj().stream(images, free_steps + cfg.steps, generator)
    frames = [stream(t) for t in range(free_steps + cfg.steps)]
    n = images.shape[0]
    fwd = simulate(circuit.W, lambda t: frames[free_steps + t], batch=n, steps=cfg.steps, neuron=cfg.neuron)
    grads = stbp_gradients(circuit.W, fwd, y, cfg.neuron.threshold)
    present = present_periods if free_steps else present_phases
    free, res = present(circuit, frames.__getitem__, y, cfg.context, batch=n, lateral=Plasticity(W=False),
                        learn=Plasticity(W=True))
    residuals = ApicalResiduals(free.apical_residual, res.apical_residual)
    return [res.updates[f"W{l}"] for l in range(len(circuit.W))], grads, residuals


def check_equivalence(cfg: TrainConfig, images: torch.Tensor, labels: torch.Tensor) -> dict[str, list[dict]]:
    """The five settings of the module docstring on one batch; ``{setting: [{layer, cosine, scale}]}``."""
    cfg.require_cpu("check-equivalence")
    sizes = cfg.sizes(images.shape[1], 10)
    out: dict[str, list[dict]] = {}
    ideal = dataclasses.replace(cfg.circuit, feedback="symmetric", interneurons="ideal", homeostasis=0.0,
                                schedule="two-copies")
    circuit = build_circuit(sizes, ideal, torch.Generator().manual_seed(cfg.seed), cfg.init_scale)
    lam, T = cfg.neuron.lam, cfg.steps
    kappa = (1 - lam ** T) / (1 - lam)
    x0 = images * cfg.max_rate * (1 - lam ** T) / (1 - lam) * T  # expected input trace sums (rate code)
    y = cfg.targets.of(labels, sizes[-1])
    upd, grads = count_model_updates(circuit.W, x0, y, threshold=cfg.neuron.threshold, kappa=kappa,
                                     teacher_strength=ideal.teacher_strength, g_apical=1e-3)
    out["count_model"] = agreement(upd, grads)
    integrated = dataclasses.replace(ideal, w_rule="integrated", stdp_tau=0.0)
    variants = {"spiking": integrated, "spiking_stdp": dataclasses.replace(ideal, w_rule="stdp"),
                "random_feedback": dataclasses.replace(integrated, feedback="random"),
                "untrained_interneurons": dataclasses.replace(integrated, interneurons="learned", contrastive=False,
                                                            error_reference="nudged")}
    for name, params in variants.items():
        circ = build_circuit(sizes, params, torch.Generator().manual_seed(cfg.seed), cfg.init_scale)
        run_cfg = dataclasses.replace(cfg, circuit=params)
        upd, grads, _ = spiking_updates(circ, images, labels, run_cfg, torch.Generator().manual_seed(cfg.seed + 2))
        out[name] = agreement(upd, grads)
    return out
