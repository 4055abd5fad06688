"""Diagnostic: BioLeaF training with chosen layers' updates replaced by ST-BP's gradient.

Not a learning rule (the replaced layers read the whole network: no locality), but a way to ask
which layer's learning signal limits BioLeaF. Each batch runs BioLeaF's presentation as usual; for
every layer in ``--stbp-layers`` its ``W`` update is replaced by ``-dE/dW`` of ST-BP
(:func:`bioleaf.rules.stbp.stbp_gradients`) on the same input spikes and weights. With every layer
replaced the run is the ``stbp`` rule's, batch for batch (same initial weights, spikes and order).
``--output-error basal`` computes ST-BP's output error from the count model's prediction
``[W_L X_{L-1}]_+ / theta`` (the quantity BioLeaF's output cells learn from) instead of the measured
spike count, in every replaced layer.

    .venv/bin/python bench/mixed_updates.py --stbp-layers 0 --out /tmp/mixed0 -- --preset fashion-mnist --epochs 6
    .venv/bin/python bench/mixed_updates.py --stbp-layers 0,1,2 --out /tmp/mixed012 -- --preset fashion-mnist --epochs 6

Everything after ``--`` is ``bioleaf train``'s flags (``--rule`` must stay ``bioleaf``, with ideal
interneurons: one presentation per batch). Prints the final test accuracy; writes the usual run files.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

from bioleaf.cli.parser import build_parser, config_from_args
from bioleaf.data import load_dataset
from bioleaf.model.backprop import stbp_gradients
from bioleaf.model.network import simulate
from bioleaf.rules.bioleaf import BioleafRule
from bioleaf.tools.diagnostics import circuit_diagnostics
from bioleaf.training.trainer import Trainer


def basal_output_gradients(weights, fwd, targets, threshold):
    """ST-BP's gradients with the output count taken from the count model, ``[W_L X_{L-1}]_+ / theta``."""
    prediction = torch.relu(fwd.trace_sums[-2] @ weights[-1].T) / threshold
    return stbp_gradients(weights, replace(fwd, counts=fwd.counts[:-1] + [prediction]), targets, threshold)


class MixedRule(BioleafRule):
    """BioLeaF with the updates of ``layers`` replaced by ST-BP's (see the module docstring)."""

    def __init__(self, cfg, sizes, generator, device, layers: list[int], output_error: str):
        super().__init__(cfg, sizes, generator, device)
        self.layers, self.output_error = layers, output_error

    def _present(self, images, labels, targets, generator, learn):
        start = generator.get_state()
        res = super()._present(images, labels, targets, generator, learn)
        if targets is not None and learn.W:
            after = generator.get_state()
            generator.set_state(start)  # the same input spikes as the presentation
            stream, _, n = self.local(images, labels, generator)
            c = self.cfg
            fwd = simulate(self.circuit.W, stream, batch=n, steps=c.steps, neuron=c.neuron)
            generator.set_state(after)
            gradients = basal_output_gradients if self.output_error == "basal" else stbp_gradients
            grads = gradients(self.circuit.W, fwd, targets, c.neuron.threshold)
            for l in self.layers:
                res.updates[f"W{l}"] = (-grads[l]).to(res.updates[f"W{l}"].dtype)
        return res


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, train_flags = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stbp-layers", required=True, help="layers (0 = first hidden) whose update is ST-BP's, e.g. 0 or 0,1,2")
    p.add_argument("--output-error", choices=("count", "basal"), default="count")
    p.add_argument("--out", required=True)
    args = p.parse_args(ours)
    train_args = build_parser().parse_args(["train", "--no-progress", "--overwrite", "--out", args.out] + train_flags)
    cfg = config_from_args(train_args)
    if cfg.rule != "bioleaf" or cfg.circuit.interneurons != "ideal":
        p.error("the train flags must give --rule bioleaf with --interneurons ideal (e.g. --preset fashion-mnist)")
    data = load_dataset(cfg.dataset, cfg.data_dir, limit=cfg.limit, val_fraction=cfg.val_fraction)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    trainer = Trainer(cfg, data, Path(args.out), progress=False, diagnostics=circuit_diagnostics)
    try:
        layers = [int(l) for l in args.stbp_layers.split(",")]
    except ValueError:
        layers = []
    if not layers or min(layers) < 0 or max(layers) >= len(trainer.sizes) - 1:
        p.error(f"--stbp-layers: expected layer indices in 0..{len(trainer.sizes) - 2}, got {args.stbp_layers!r}")
    # the same initial synapses as the trainer's own rule (drawn from the same seed)
    trainer.rule = MixedRule(cfg, trainer.sizes, torch.Generator().manual_seed(cfg.seed), trainer.device,
                             layers, args.output_error)
    summary = trainer.run()
    print(f"test accuracy {summary['test_accuracy']:.2%} (bioleaf with layers {args.stbp_layers} from ST-BP, "
          f"output error {args.output_error}); results in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
