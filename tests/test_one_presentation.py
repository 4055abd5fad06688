"""One presentation per sample (``--schedule one-presentation``): one copy of the circuit, a free period then a
teacher period; each interneuron's ``P`` learns from its partner's spikes at its teaching compartment; the
schedule passes check-locality with no label, and a ``P`` rule reading beyond its partner is caught."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import bioleaf
from bioleaf.config import TrainConfig
from bioleaf.model.circuit import Plasticity, build_circuit, eligibility, present_periods

ONE = dict(arch="64-32-10", feedback="random", interneurons="learned", schedule="one-presentation", free_steps=20,
           g_apical_layers="1")
LOCALITY = ("check-locality", "--preset", "fashion-mnist-local", "--dataset", "digits", "--arch", "64-48-48-10",
            "--steps", "20", "--target-high", "15", "--samples", "8", "--feedback", "random",
            "--schedule", "one-presentation", "--free-steps", "20")


def _circuit(cfg, seed: int = 0):
    return build_circuit(cfg.sizes(64, 10), cfg.circuit, torch.Generator().manual_seed(seed), cfg.init_scale)


def _stream(cfg, images, steps):
    return cfg.encoder_obj().stream(images, steps, torch.Generator().manual_seed(1))


def test_one_copy_of_the_batch_runs_a_free_then_a_teacher_period(digits):
    cfg = bioleaf.preset("digits", **ONE)
    circuit = _circuit(cfg)
    x, y = digits.train_x[:12], digits.train_y[:12]
    targets = cfg.targets.of(y, 10)
    free, teach = present_periods(circuit, _stream(cfg, x, 20 + cfg.steps), targets, cfg.context, batch=12,
                                  lateral=Plasticity(W=False, P=True, Q=True), learn=Plasticity(W=True))
    assert free.counts.shape == teach.counts.shape == (12, 10)  # one copy, not two side by side
    assert set(free.updates) == {"P0", "Q0"} and set(teach.updates) == {"W0", "W1"}
    assert teach.counts.sum(1).gt(0).all()  # the teacher period drives the output
    labelled = teach.counts.gather(1, y[:, None]).squeeze(1)
    assert (labelled >= teach.counts.max(1).values).float().mean() > 0.9


def test_an_interneuron_that_predicts_its_partner_exactly_has_nothing_to_learn(digits):
    """P = W of the layer above and no teacher: every interneuron's dendrite predicts its partner's spikes step by
    step, so P's change is zero; from half of that, P's change points toward W."""
    cfg = bioleaf.preset("digits", **ONE)
    circuit = _circuit(cfg)
    x = digits.train_x[:16]
    circuit.P[0].copy_(circuit.W[1])
    run = dict(batch=16, lateral=Plasticity(W=False, P=True), learn=Plasticity(W=False))
    free, _ = present_periods(circuit, _stream(cfg, x, 2 * cfg.steps), None, cfg.context, **run)
    assert free.counts.sum() > 0
    assert torch.count_nonzero(free.updates["P0"]) == 0
    circuit.P[0].mul_(0.5)
    free, _ = present_periods(circuit, _stream(cfg, x, 2 * cfg.steps), None, cfg.context, **run)
    change, missing = free.updates["P0"].float(), circuit.W[1] - circuit.P[0]
    assert float((change * missing).sum()) > 0
    circuit.P[0].add_(change, alpha=0.2 * float(missing.norm() / change.norm()))
    again, _ = present_periods(circuit, _stream(cfg, x, 2 * cfg.steps), None, cfg.context, **run)
    assert again.updates["P0"].norm() < 0.8 * change.norm()


def test_the_apical_reference_is_each_cells_slow_trace_of_its_free_period(digits):
    """A teacher too weak to matter (strength 1e-6) after the free period: every hidden cell's apical potential,
    measured against its own trace, keeps well under half of what it was in the free period."""
    cfg = bioleaf.preset("digits", **{**ONE, "free_steps": 60}, teacher_strength=1e-6, reference_tau=20.0)
    circuit = _circuit(cfg)
    x, y = digits.train_x[:16], digits.train_y[:16]
    free, teach = present_periods(circuit, _stream(cfg, x, 60 + cfg.steps), cfg.targets.of(y, 10), cfg.context,
                                  batch=16, lateral=Plasticity(W=False), learn=Plasticity(W=False))
    assert teach.apical_residual[0] < 0.5 * free.apical_residual[0]


def test_learned_feedback_reads_each_cells_count_against_its_own_free_rate(digits):
    """Learned feedback in one presentation: B_0 and W_1 receive identical increments (Kolen-Pollack), each read from
    the cell above's teacher-period count against its own free-period rate; no label."""
    cfg = bioleaf.preset("digits", **{**ONE, "arch": "64-32-16-10", "feedback": "learned"})
    assert cfg.idealisations == []
    circuit = _circuit(cfg)
    x, y = digits.train_x[:8], digits.train_y[:8]
    _, teach = present_periods(circuit, _stream(cfg, x, 20 + cfg.steps), cfg.targets.of(y, 10), cfg.context,
                               batch=8, lateral=Plasticity(W=False, P=True, Q=True), learn=Plasticity(W=True, B=True))
    assert teach.updates["B0"].abs().sum() > 0
    assert torch.equal(teach.updates["B0"], teach.updates["W1"].T)


@pytest.mark.parametrize("w_rule", ["integrated", "stdp"])
def test_each_w_rule_with_homeostasis_learns_in_the_teacher_period(digits, w_rule):
    cfg = bioleaf.preset("digits", **ONE, w_rule=w_rule, homeostasis=0.05)
    circuit = _circuit(cfg)
    circuit.W[0][:4] = -circuit.W[0][:4].abs()  # cells that cannot fire: homeostasis strengthens their inputs
    x, y = digits.train_x[:8], digits.train_y[:8]
    _, teach = present_periods(circuit, _stream(cfg, x, 20 + cfg.steps), cfg.targets.of(y, 10), cfg.context,
                               batch=8, lateral=Plasticity(W=False, P=True, Q=True), learn=Plasticity(W=True))
    assert (teach.hidden_counts[0][:, :4] == 0).all()
    assert (teach.updates["W0"][:4] >= 0).all() and teach.updates["W0"][:4].sum() > 0


@pytest.mark.parametrize("flags, named", [
    (("--interneurons", "ideal"), "--schedule one-presentation/--interneurons ideal"),
    (("--reference-tau", "0"), "--reference-tau"),
    (("--interneuron-decay", "-1"), "--interneuron-decay"),
    (("--encoder", "latency"), "--encoder latency/--schedule one-presentation"),
    (("--interneuron-decay", "500", "--lr-interneuron", "0.01"), "--interneuron-decay/--lr-interneuron"),
    (("--interneuron-period", "teacher"), "--interneuron-period: expected one of presentation, free"),
])
def test_unsupported_combinations_are_one_line_errors(run_cli, tmp_path, flags, named):
    args = ["train", "--preset", "digits", "--schedule", "one-presentation", "--interneurons", "learned",
            "--feedback", "random", *flags, "--epochs", "1", "--out", str(tmp_path / "r")]
    code, _, err = run_cli(*args)
    assert code != 0 and err.count("\n") == 1 and named in err, err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("feedback", ["random", "learned"])
def test_check_locality_passes_the_schedule_with_no_label(run_cli, feedback):
    code, out, err = run_cli(*LOCALITY, "--feedback", feedback, "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["idealisations"] == [], err
    assert "activity:circuit:pyr1" in report["changes"]["P0"]  # the teaching compartment is measured


def test_an_interneuron_rule_reading_the_output_cells_is_caught(monkeypatch, run_cli):
    original = eligibility.cell_signals

    def reads_the_output_cells(sig, population, l):
        drive, spikes, pre = original(sig, population, l)
        if population == eligibility.INTERNEURON and l == 0:
            spikes = spikes + 0.5 * sig.spikes[2].sum(1, keepdim=True)  # every output spike
        return drive, spikes, pre
    monkeypatch.setattr(eligibility, "cell_signals", reads_the_output_cells)
    code, _, err = run_cli(*LOCALITY)
    assert code == 1 and err.count("\n") == 1, err
    assert "the change of P0 depends on activity:circuit:pyr2" in err, err


def test_the_schedule_survives_a_configuration_round_trip():
    cfg = bioleaf.preset("digits", **ONE, interneuron_decay=2.0, reference_tau=8.0)
    again = TrainConfig.from_json(cfg.to_json())
    assert dataclasses.asdict(again.circuit) == dataclasses.asdict(cfg.circuit)


@pytest.mark.parametrize("flags, named", [(("--free-steps", "40"), "--free-steps/--reference-tau/--schedule"),
                                          (("--interneuron-period", "free"), "--interneuron-period/--schedule")])
def test_the_free_period_flags_are_refused_without_the_schedule(run_cli, tmp_path, flags, named):
    code, _, err = run_cli("train", "--preset", "digits", *flags, "--epochs", "1", "--out", str(tmp_path / "r"))
    assert code != 0 and err.count("\n") == 1 and named in err, err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("period", ["presentation", "free"])
def test_p_learns_in_the_teacher_period_only_where_its_period_is_the_whole_presentation(digits, period):
    """Two presentations on the same spikes that differ only in the targets: their free periods are the same, so
    ``P``'s change differs only where ``P`` also learns while the teacher is on."""
    cfg = bioleaf.preset("digits", **ONE, interneuron_period=period)
    x, y = digits.train_x[:12], digits.train_y[:12]
    changes = []
    for targets in (cfg.targets.of(y, 10), cfg.targets.of((y + 1) % 10, 10)):
        free, _ = present_periods(_circuit(cfg), _stream(cfg, x, 20 + cfg.steps), targets, cfg.context, batch=12,
                                  lateral=Plasticity(W=False, P=True), learn=Plasticity(W=False))
        changes.append(free.updates["P0"])
    assert torch.count_nonzero(changes[0]) > 0
    assert torch.equal(changes[0], changes[1]) == (period == "free")
