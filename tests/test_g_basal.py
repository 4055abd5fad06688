"""With a basal coupling ``g_B`` != 1 the network that learns is the network that is evaluated and exported.

The microcircuit's teacher-free copy (what training's per-batch accuracy reads), ``bioleaf eval`` and
the NIR export all run the same bottom-up layer step, hidden somata driven by ``g_B W x``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bioleaf.cli import main
from bioleaf.training.evaluate import evaluate_run, load_model
from bioleaf.model.circuit import Plasticity, present
from bioleaf.model.network import simulate

G_BASAL = 1.7
TRAIN = ["train", "--dataset", "digits", "--arch", "64-32-16-10", "--epochs", "2", "--batch-size", "32",
         "--init-scale", "0.2", "--interneurons", "ideal", "--error-reference", "free", "--g-basal", str(G_BASAL),
         "--target-high", "15", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("g_basal") / "run"
    assert main(TRAIN + ["--out", str(out)]) == 0
    return out


def test_training_copy_and_inference_are_one_network(run_dir, digits):
    cfg, rule = load_model(run_dir)
    assert rule.g_basal == G_BASAL
    x, y = digits.test_x[:64], digits.test_y[:64]
    stream = lambda: cfg.encoder_obj().stream(x, cfg.steps, torch.Generator().manual_seed(7))  # noqa: E731
    targets = cfg.targets.of(y, 10)
    rule.after_load()
    res = present(rule.circuit, stream(), targets, cfg.context, batch=64, learn=Plasticity(W=True))
    with torch.no_grad():
        inferred = simulate(rule.weights, stream(), batch=64, steps=cfg.steps, neuron=cfg.neuron, g_basal=G_BASAL)
        unscaled = simulate(rule.weights, stream(), batch=64, steps=cfg.steps, neuron=cfg.neuron)
    counts, potentials = res.free_output
    assert counts.sum() > 0
    assert torch.equal(counts, inferred.output) and torch.equal(potentials, inferred.potentials)
    assert not torch.equal(counts, unscaled.output)  # the coupling matters at this setting


def test_eval_reproduces_the_training_summary(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    assert evaluate_run(run_dir)["test_accuracy"] == summary["test_accuracy"]
    assert summary["test_accuracy"] > 0.5


def test_nir_export_runs_the_coupled_network(run_dir, digits, tmp_path):
    nir = pytest.importorskip("nir")
    from test_export import agreement, run_snntorch, snntorch_from_nir

    from bioleaf.tools.export import export_run
    from bioleaf.model.losses import predict

    cfg, rule = load_model(run_dir)
    path = export_run(run_dir, "nir", tmp_path / "m.nir")
    assert nir.read(path).metadata["g_basal"] == G_BASAL
    gen = torch.Generator().manual_seed(3)
    spikes = [cfg.encoder_obj().step(digits.test_x, t, cfg.steps, gen) for t in range(cfg.steps)]
    with torch.no_grad():
        fwd = simulate(rule.weights, lambda t: spikes[t], batch=len(digits.test_x), steps=cfg.steps,
                       neuron=cfg.neuron, g_basal=rule.g_basal)
    assert fwd.output.sum() > 0
    pred, counts = agreement((fwd.output, predict(fwd.output, fwd.potentials)),
                             run_snntorch(snntorch_from_nir(path), spikes))
    assert pred >= 0.99 and counts >= 0.95
