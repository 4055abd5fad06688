"""The initial self-predicting phase presents many different batches, and every epoch logs how far the
circuit is from the self-predicting state."""

from __future__ import annotations

import pytest
import torch

import bioleaf
from bioleaf.rules.bioleaf import BioleafRule
from bioleaf.training.trainer import Trainer


def _config(**settings):
    return bioleaf.preset(None, **{"dataset": "digits", "arch": "64-32-16-10", "feedback": "random", "epochs": 1,
                                   "limit": 300, "batch_size": 20, **settings})


def test_the_phase_presents_different_batches_and_leaves_the_epochs_alone(digits, monkeypatch):
    seen, first_batches = [], {}
    original_self_predict, original_train = BioleafRule.self_predict, BioleafRule.train_batch

    def self_predict(rule, images, generator):
        seen.append(images.clone())
        return original_self_predict(rule, images, generator)

    def train_batch(rule, images, labels, generator):
        first_batches.setdefault(rule.cfg.self_predict_batches, (images.clone(), generator.get_state()))
        return original_train(rule, images, labels, generator)

    monkeypatch.setattr(BioleafRule, "self_predict", self_predict)
    monkeypatch.setattr(BioleafRule, "train_batch", train_batch)
    Trainer(_config(self_predict_batches=12), digits).run()
    assert len(seen) == 12
    assert len({tuple(x.flatten().tolist()) for x in seen}) == 12  # twelve different batches
    Trainer(_config(self_predict_batches=0), digits).run()
    (x12, spikes12), (x0, spikes0) = first_batches[12], first_batches[0]
    assert torch.equal(x12, x0) and torch.equal(spikes12, spikes0)  # same data order and spikes after it


def test_the_phase_is_not_repeated_on_resume(digits, tmp_path):
    run = bioleaf.fit(_config(self_predict_batches=5, epochs=2), data=digits, out=tmp_path / "r")
    assert int(run.model.rule.self_predict_left) == 0
    model = bioleaf.load(tmp_path / "r")
    assert model.rule.self_predicting_batches() == 5  # a fresh rule; the checkpoint holds the count
    trainer = Trainer(_config(self_predict_batches=5, epochs=2), digits, tmp_path / "r")
    trainer.load_checkpoint()
    assert trainer.rule.self_predicting_batches() == 0


@pytest.mark.parametrize("interneurons, zero", [("learned", False), ("ideal", True)])
def test_every_epoch_logs_the_apical_residual_relative_to_the_teacher_signal(digits, interneurons, zero):
    run = bioleaf.fit(_config(interneurons=interneurons, self_predict_batches=5), data=digits)
    ratio = run.history[-1]["apical_residual_ratio"]
    assert len(ratio) == 2
    if zero:  # ideal interneurons cancel every top-down input the teacher did not cause
        assert ratio == [0.0, 0.0]
    else:
        assert all(0 < r < 10 for r in ratio)
