"""The trainer's per-epoch diagnostics hook: the circuit's figures in every epoch's row when it is given
(``bioleaf train``, ``bioleaf.fit``), none without it, and none for a rule without a circuit."""

from __future__ import annotations

import bioleaf
from bioleaf.tools.diagnostics import circuit_diagnostics
from bioleaf.training.trainer import Trainer

CIRCUIT_KEYS = {"stbp_angle_deg", "apical_residual", "apical_residual_ratio", "feedback_angle_deg"}


def _config(rule: str):
    return bioleaf.preset(None, dataset="digits", arch="64-16-10", rule=rule, epochs=1, limit=100, batch_size=50,
                          self_predict_batches=0)


def test_the_hook_adds_the_circuit_figures_and_only_when_given(digits):
    with_hook = Trainer(_config("bioleaf"), digits, diagnostics=circuit_diagnostics)
    with_hook.run()
    without = Trainer(_config("bioleaf"), digits)
    without.run()
    assert CIRCUIT_KEYS <= set(with_hook.state.history[0])
    assert not CIRCUIT_KEYS & set(without.state.history[0])
    assert set(with_hook.state.history[0]) - CIRCUIT_KEYS == set(without.state.history[0])


def test_a_rule_without_a_circuit_has_no_circuit_figures(digits):
    trainer = Trainer(_config("stbp"), digits)
    assert circuit_diagnostics(trainer.rule, digits.train_x[:4], digits.train_y[:4]) == {}
