"""Diagnostic: how the hidden layers of trained runs fire on the test set.

For each run directory (``model.safetensors`` + its configuration), the trained network is simulated
on the first ``--images`` test images (the run's encoder, steps and neuron; input spikes drawn with
the run's seed) and, per hidden layer, it prints: the fraction of cells that never fire on any of
these images, the mean number of cells active per image, the mean spike count of an active cell and
the fraction of active (cell, image) pairs at ``--near-cap`` of the maximum count or more (the
count is capped at one spike per step, ``T``).

    .venv/bin/python bench/activity.py docs/results/.../bioleaf-symmetric-seed0 RUN2 ... [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import lru_cache

import torch

from bioleaf.data import load_dataset
from bioleaf.errors import BioleafError
from bioleaf.training.evaluate import load_model


@lru_cache(maxsize=None)
def load_test_images(dataset: str, data_dir: str | None, limit: int | None, val_fraction: float) -> torch.Tensor:
    """The test images of a dataset, loaded once for all runs that share it."""
    return load_dataset(dataset, data_dir, limit=limit, val_fraction=val_fraction).test_x


def hidden_activity(run_dir: str, images: int, near_cap: float) -> dict:
    """Per hidden layer activity of the trained run in ``run_dir`` (see the module docstring)."""
    cfg, rule = load_model(run_dir)
    x = load_test_images(cfg.dataset, cfg.data_dir, cfg.limit, cfg.val_fraction)[:images].to(rule.device)
    fwd = rule.forward(x, torch.Generator(device=rule.device).manual_seed(cfg.seed))
    layers = []
    for counts in fwd.counts[:-1]:
        active = counts > 0
        fired = counts[active]  # the counts of the active (cell, image) pairs
        layers.append({"never_firing": float((~active.any(dim=0)).float().mean()),
                       "active_per_image": float(active.float().sum(dim=1).mean()),
                       "active_mean_count": float(fired.mean()) if len(fired) else 0.0,
                       "near_cap": float((fired >= near_cap * cfg.steps).float().mean()) if len(fired) else 0.0})
    return {"run": str(run_dir), "rule": cfg.rule, "images": len(x), "steps": cfg.steps, "hidden": layers}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run directories written by bioleaf train")
    p.add_argument("--images", type=int, default=1000, help="test images to simulate (1000)")
    p.add_argument("--near-cap", type=float, default=0.8, help="fraction of T counted as near the cap (0.8)")
    p.add_argument("--json", action="store_true", help="print one JSON object per run")
    args = p.parse_args(argv)
    if args.images < 1:
        p.error(f"--images: expected an integer >= 1, got {args.images}")
    if not 0 < args.near_cap <= 1:
        p.error(f"--near-cap: expected a value in (0, 1], got {args.near_cap}")
    try:
        results = [hidden_activity(run, args.images, args.near_cap) for run in args.runs]
    except BioleafError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for r in results:
        if args.json:
            print(json.dumps(r))
            continue
        for l, layer in enumerate(r["hidden"], start=1):
            print(f"{r['run']} ({r['rule']}) hidden layer {l}: never firing {layer['never_firing']:.0%}, "
                  f"{layer['active_per_image']:.1f} cells active per image, active count {layer['active_mean_count']:.1f} "
                  f"of {r['steps']}, {layer['near_cap']:.0%} of active counts >= {args.near_cap:g} T")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
