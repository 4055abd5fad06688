"""Feedback without weight transport: Kolen-Pollack learned feedback and direct random feedback.

Learned ``B_l`` reads its presynaptic cell's count change and its own cell's trace sum; ``W_{l+1}`` reads
the same two quantities, so the two receive identical increments and, with the same optimiser, take
identical steps: their difference only decays. Direct feedback sends the output cells' spikes to every
hidden layer's apical dendrite."""

import json

import pytest
import torch

from bioleaf.config import TrainConfig
from bioleaf.data import load_dataset
from bioleaf.model.losses import target_counts
from bioleaf.model.circuit import Context, Plasticity, build_circuit, present, present_phases
from bioleaf.rules import make_rule

ARCH = "64-32-16-10"


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def config(**circuit) -> TrainConfig:
    values = {"dataset": "digits", "arch": ARCH, "steps": 20, "batch_size": 32, "init_scale": 0.3,
              **{f"circuit.{k}": v for k, v in circuit.items()}}
    return TrainConfig().with_values(values).validate()


def test_learned_feedback_and_its_mirror_receive_identical_increments(digits):
    cfg = config(feedback="learned")
    sizes = cfg.sizes(64, 10)
    circuit = build_circuit(sizes, cfg.circuit, torch.Generator().manual_seed(0), cfg.init_scale)
    x, labels = digits.train_x[:64], digits.train_y[:64]
    y = cfg.targets.of(labels, 10)
    stream = cfg.encoder_obj().stream(x, cfg.steps, torch.Generator().manual_seed(1))
    _, teach = present_phases(circuit, stream, y, batch=64, ctx=Context(cfg.steps, cfg.neuron, cfg.circuit),
                              lateral=Plasticity(W=False, P=True, Q=True), learn=Plasticity(W=True, B=True))
    for l in range(len(sizes) - 2):
        b, w = teach.updates[f"B{l}"], teach.updates[f"W{l + 1}"]
        assert float(b.abs().sum()) > 0
        assert torch.allclose(b, w.T, rtol=1e-6, atol=1e-7 * float(w.abs().max()))


def test_training_leaves_only_the_decaying_initial_difference(digits):
    """After a few Adam steps B_l - W_{l+1}^T is the initial difference times the shared decay, while B_l itself moved."""
    cfg = config(feedback="learned")
    rule = make_rule(cfg, cfg.sizes(64, 10), torch.Generator().manual_seed(0), torch.device("cpu"))
    start = [(b - w.T).clone() for b, w in zip(rule.circuit.B, rule.circuit.W[1:])]
    B0 = [b.clone() for b in rule.circuit.B]
    gen, lr = torch.Generator().manual_seed(1), cfg.learning_rate
    steps = 6
    for k in range(steps):
        rule.train_batch(digits.train_x[32 * k: 32 * (k + 1)], digits.train_y[32 * k: 32 * (k + 1)], gen)
    decay = (1 - lr * cfg.feedback_decay) ** steps
    for b, w, d0, b0 in zip(rule.circuit.B, rule.circuit.W[1:], start, B0):
        assert float((b - b0).abs().max()) > 2 * lr  # feedback learned
        assert torch.allclose(b - w.T, decay * d0, atol=1e-6)


def test_the_feedback_angle_shrinks_and_is_logged(run_cli, tmp_path):
    code, out, err = run_cli("train", "--dataset", "digits", "--arch", "64-128-10", "--epochs", "3", "--feedback",
                             "learned", "--feedback-decay", "4", "--no-progress", "--out", str(tmp_path))
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    angles = [r["feedback_angle_deg"][0] for r in rows]
    print(f"[feedback] angle between B0 and W1^T per epoch: {[round(a, 1) for a in angles]}")
    assert angles[0] < 80 and angles[-1] < angles[0] - 10  # random at 90, aligning as W learns


def test_direct_feedback_equals_random_with_one_hidden_layer(digits):
    def train(feedback):
        cfg = TrainConfig().with_values({"dataset": "digits", "arch": "64-16-10", "steps": 10,
                                         "circuit.feedback": feedback}).validate()
        rule = make_rule(cfg, [64, 16, 10], torch.Generator().manual_seed(0), torch.device("cpu"))
        gen = torch.Generator().manual_seed(1)
        for k in range(3):
            rule.train_batch(digits.train_x[32 * k: 32 * (k + 1)], digits.train_y[32 * k: 32 * (k + 1)], gen)
        return rule.synapses()
    direct, random = train("direct"), train("random")
    assert all(torch.equal(direct[k], random[k]) for k in random)


def test_direct_feedback_reaches_every_hidden_layer_from_the_output(digits):
    """The lowest layer's apical input moves when only the output cells' spikes change."""
    cfg = config(feedback="direct", g_apical_layers="0")
    sizes = cfg.sizes(64, 10)
    circuit = build_circuit(sizes, cfg.circuit, torch.Generator().manual_seed(0), cfg.init_scale)
    assert [tuple(b.shape) for b in circuit.B] == [(32, 10), (16, 10)]
    x = digits.train_x[:16]
    run = dict(batch=16, ctx=Context(cfg.steps, cfg.neuron, cfg.circuit))

    def apical_sum(label):
        y = target_counts(torch.full((16,), label), 10, 15.0, 0.0)
        stream = cfg.encoder_obj().stream(x, cfg.steps, torch.Generator().manual_seed(1))
        return present(circuit, stream, y, learn=Plasticity(W=False), **run).apical_sums[0]

    assert not torch.equal(apical_sum(0), apical_sum(1))  # the middle layer is unnudged ("0" is the lowest only)


@pytest.mark.parametrize("flags, message", [
    (["--feedback", "direct", "--interneurons", "ideal"], "--feedback direct: needs --interneurons learned"),
    (["--feedback", "learned", "--g-apical-layers", "1,0"], "--feedback learned: needs every hidden layer above"),
    (["--feedback", "learned", "--upper-error", "apical"], "--upper-error apical/--feedback learned:"),
    (["--feedback", "random", "--interneurons", "ideal", "--upper-error", "count-change"],
     "--upper-error count-change/--interneurons:"),
    (["--feedback", "random", "--upper-error", "count-change", "--g-apical-layers", "1,0"],
     "--upper-error count-change: needs every hidden layer above"),
    (["--upper-error", "counts"], "--upper-error: expected one of auto, apical, count-change"),
])
def test_incompatible_feedback_flags_fail_in_one_line(flags, message, run_cli, tmp_path):
    code, out, err = run_cli("train", "--dataset", "digits", "--arch", ARCH, "--epochs", "1", "--no-progress",
                             "--out", str(tmp_path / "run"), *flags)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run").exists()


def test_count_change_error_with_fixed_feedback_changes_only_the_feedback(digits):
    """``--upper-error count-change`` with fixed random feedback: the layers above the lowest hidden one read their
    count change and decay as with learned feedback, ``B`` stays fixed; with learned feedback ``auto`` is that."""
    x, labels = digits.train_x[:64], digits.train_y[:64]
    learned = config(feedback="learned")
    assert learned.circuit.reads_count_change() and not config(feedback="random").circuit.reads_count_change()
    cfg = config(feedback="random", upper_error="count-change")
    rule = make_rule(cfg, cfg.sizes(64, 10), torch.Generator().manual_seed(0), torch.device("cpu"))
    assert rule.decays_upper and not rule.learning.B
    fixed = [b.clone() for b in rule.circuit.B]
    plain = make_rule(config(feedback="random"), cfg.sizes(64, 10), torch.Generator().manual_seed(0),
                      torch.device("cpu"))
    for r in (rule, plain):
        r.self_predict_left.zero_()
        r.train_batch(x, labels, torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(fixed, rule.circuit.B))  # fixed feedback stays fixed
    assert torch.equal(rule.circuit.W[0], plain.circuit.W[0])  # the lowest hidden layer learns as before
    assert not torch.equal(rule.circuit.W[1], plain.circuit.W[1])  # the upper layers learn another way
