"""Diagnostic: how well a trained BioLeaF network's updates align with the ST-BP gradient.

``bioleaf check-equivalence`` measures the alignment at initialisation, which has proved a poor guide
to trained accuracy (docs/results.md, section 1). This script loads a trained run (its bottom-up
weights; symmetric feedback and ideal interneurons are rebuilt from them), and on ``--batches``
batches of ``--batch`` training images (the ones the run learned from, in file order) it prints each
layer's mean cosine between BioLeaF's update and ST-BP's ``-dE/dW`` on the same input spikes, for
each ``--nudge`` mode and ``--g-apical`` coupling asked for.

    .venv/bin/python bench/trained_alignment.py RUN [RUN2 ...] [--nudge one-sided,two-sided] [--g-apical 1,4]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import torch

from bioleaf.data import load_dataset
from bioleaf.tools.equivalence import agreement, spiking_updates
from bioleaf.errors import BioleafError, UsageError
from bioleaf.training.evaluate import load_model


def alignment(run_dir: str, nudges: list[str], couplings: list[float | None], batches: int, batch: int) -> list[dict]:
    """One row per (nudge, coupling): the mean cosine of each layer over the batches."""
    cfg, rule = load_model(run_dir)
    if cfg.rule != "bioleaf":
        raise UsageError(f"{run_dir}: a {cfg.rule} run; this diagnostic needs a bioleaf run")
    data = load_dataset(cfg.dataset, cfg.data_dir, limit=cfg.limit, val_fraction=cfg.val_fraction)
    rows = []
    for nudge in nudges:
        for g in couplings:
            circuit = dataclasses.replace(cfg.circuit, feedback="symmetric", interneurons="ideal", nudge=nudge,
                                          g_apical=cfg.circuit.g_apical if g is None else g)
            run_cfg = dataclasses.replace(cfg, circuit=circuit.validate())
            rule.circuit.sync_ideal(circuit)
            sums = None
            for k in range(batches):
                x = data.train_x[k * batch:(k + 1) * batch].to(rule.device)
                y = data.train_y[k * batch:(k + 1) * batch].to(rule.device)
                gen = torch.Generator(device=rule.device).manual_seed(cfg.seed + k)
                updates, grads, _ = spiking_updates(rule.circuit, x, y, run_cfg, gen)
                cos = [row["cosine"] for row in agreement(updates, grads)]
                sums = cos if sums is None else [a + b for a, b in zip(sums, cos)]
            rows.append({"run": run_dir, "nudge": nudge, "g_apical": circuit.g_apical,
                         "cosines": [s / batches for s in sums]})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="bioleaf run directories written by bioleaf train")
    p.add_argument("--nudge", default="one-sided,two-sided", help="nudge modes, joined by ','")
    p.add_argument("--g-apical", default="", help="apical couplings to try, joined by ',' (default: the run's)")
    p.add_argument("--batches", type=int, default=4, help="batches of training images (4)")
    p.add_argument("--batch", type=int, default=100, help="images per batch (100)")
    args = p.parse_args(argv)
    if args.batches < 1 or args.batch < 1:
        p.error(f"--batches/--batch: expected integers >= 1, got {args.batches}/{args.batch}")
    try:
        couplings = [float(g) for g in args.g_apical.split(",")] if args.g_apical else [None]
    except ValueError:
        p.error(f"--g-apical: expected numbers joined by ',', got {args.g_apical!r}")
    torch.set_num_threads(1)
    try:
        for run in args.runs:
            for r in alignment(run, args.nudge.split(","), couplings, args.batches, args.batch):
                cosines = " / ".join(f"{c:.4f}" for c in r["cosines"])
                print(f"{r['run']}: --nudge {r['nudge']} --g-apical {r['g_apical']:g}: cosine per layer {cosines}")
    except BioleafError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
