"""Diagnostic: how small can a trained circuit's interneurons make each hidden layer's apical residual?

``apical_residual_ratio`` (``metrics.jsonl``) sets each hidden layer's residual apical potential with the teacher off
against its apical error signal with the teacher on. This script loads a trained BioLeaF run with learned
interneurons and measures that ratio on ``--batches`` batches of its test images, the same input spikes for every
row, with the circuit's synapses as trained and with the interneurons' synapses replaced by the ones that would
cancel exactly:

- ``learned``: ``P`` and ``Q`` as trained;
- ``P = W above``: each interneuron's lateral synapses copied from its partner's bottom-up ones (its somatic input is
  then its partner's basal input, so with a partner driven by its basal input alone it fires the same spikes; the
  partners are the cells of the layer above, or with ``--interneuron-partners feedback-source`` and direct feedback
  the output cells, mirrored by the top hidden layer's interneurons);
- ``Q = -B``: each apical dendrite's inhibition the negative of its top-down synapses;
- ``both``: the two together, the ideal interneurons of the equivalence configuration, here on the trained ``W``
  and ``B`` and the run's own schedule and couplings.

Nothing is trained or written; the copies are undone before the next row. The ``both`` row bounds what any learning
rule of ``P`` and ``Q`` can reach in this circuit: what is left there comes from the partners themselves (their own
apical input reaching their soma) and from spiking.

    .venv/bin/python bench/cancellation_bound.py RUN [RUN2 ...] [--batches 4] [--batch 100]
"""

from __future__ import annotations

import argparse
import sys

import torch

from bioleaf.data import load_dataset
from bioleaf.errors import BioleafError, UsageError
from bioleaf.model.circuit.synapses import Microcircuit
from bioleaf.tools.equivalence import spiking_updates
from bioleaf.training.evaluate import load_model

VARIANTS = ("learned", "P = W above", "Q = -B", "both")
"""The rows of the table, in order."""


def imposed(circuit: Microcircuit, variant: str) -> dict[str, list[torch.Tensor]]:
    """Copy the cancelling synapses of ``variant`` into ``circuit`` in place; returns the trained ones it replaced."""
    saved: dict[str, list[torch.Tensor]] = {}
    if variant in ("P = W above", "both"):
        saved["P"] = [p.clone() for p in circuit.P]
        for p, w in zip(circuit.P, circuit.W[1:]):
            if p.numel():  # a layer whose interneurons no apical dendrite reads has none
                p.copy_(w)
    if variant in ("Q = -B", "both"):
        saved["Q"] = [q.clone() for q in circuit.Q]
        for q, b in zip(circuit.Q, circuit.B):
            q.copy_(-b)
    return saved


def restored(circuit: Microcircuit, saved: dict[str, list[torch.Tensor]]) -> None:
    """Put the trained synapses ``saved`` by :func:`imposed` back."""
    for name, tensors in saved.items():
        for t, s in zip(getattr(circuit, name), tensors):
            t.copy_(s)


def residual_ratios(run_dir: str, batches: int, batch: int) -> dict[str, list[float]]:
    """Per variant, each hidden layer's residual ratio: the mean over ``batches`` of the free residual over the
    teacher-period signal (one batch of ``batch`` test images each, the same input spikes for every variant)."""
    cfg, rule = load_model(run_dir)
    if cfg.rule != "bioleaf" or cfg.circuit.interneurons != "learned":
        raise UsageError(f"{run_dir}: needs a bioleaf run with learned interneurons")
    if cfg.circuit.feedback == "direct" and cfg.circuit.interneuron_partners == "above":
        raise UsageError(f"{run_dir}: with direct feedback only interneurons mirroring the output cells "
                         "(--interneuron-partners feedback-source) can cancel the top-down input exactly")
    data = load_dataset(cfg.dataset, cfg.data_dir)
    circuit = rule.circuit
    out: dict[str, list[float]] = {}
    for variant in VARIANTS:
        saved = imposed(circuit, variant)
        sums = None
        for b in range(batches):
            images, labels = data.test_x[b * batch:(b + 1) * batch], data.test_y[b * batch:(b + 1) * batch]
            gen = torch.Generator().manual_seed(cfg.seed + 100 + b)
            _, _, residual = spiking_updates(circuit, images, labels, cfg, gen)
            ratio = [free / taught for free, taught in zip(residual.free, residual.teacher)]
            sums = ratio if sums is None else [s + r for s, r in zip(sums, ratio)]
        out[variant] = [s / batches for s in sums]
        restored(circuit, saved)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run directories of trained bioleaf runs with learned interneurons")
    p.add_argument("--batches", type=int, default=4, help="test batches to average over")
    p.add_argument("--batch", type=int, default=100, help="test images per batch")
    a = p.parse_args(argv)
    try:
        for run in a.runs:
            ratios = residual_ratios(run, a.batches, a.batch)
            layers = len(next(iter(ratios.values())))
            print(f"{run}\n| interneuron synapses | " + " | ".join(f"hidden layer {l + 1}" for l in range(layers))
                  + " |\n|---|" + "---|" * layers)
            for variant, row in ratios.items():
                print(f"| {variant} | " + " | ".join(f"{r:.2f}" for r in row) + " |")
    except BioleafError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
