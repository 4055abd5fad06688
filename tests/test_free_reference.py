"""``--error-reference free``: errors measured against a teacher-free copy of the circuit run alongside
the teacher phase on the same input spikes (SPEC: a free phase followed by a teacher phase)."""

import dataclasses

import pytest
import torch

from bioleaf.config import TrainConfig
from bioleaf.data import load_dataset
from bioleaf.tools.equivalence import agreement, spiking_updates
from bioleaf.model.losses import CountTargets
from bioleaf.model.circuit import Context, Plasticity, build_circuit, present
from bioleaf.model.network import simulate

ARCH = "64-128-64-10"


def setup(reference: str, g_apical: float, steps: int = 20):
    cfg = TrainConfig(rule="bioleaf", dataset="digits", arch=ARCH, steps=steps).validate()
    circuit = dataclasses.replace(cfg.circuit, interneurons="ideal", error_reference=reference,
                                  g_apical=g_apical).validate()
    cfg = dataclasses.replace(cfg, circuit=circuit, targets=CountTargets(high=15.0))
    sizes = [int(n) for n in ARCH.split("-")]
    return cfg, build_circuit(sizes, circuit, torch.Generator().manual_seed(0), cfg.init_scale)


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")
    return data.train_x[:128], data.train_y[:128]


def test_the_free_copy_is_the_teacher_free_network_on_the_same_spikes(digits):
    x, labels = digits
    cfg, circuit = setup("free", g_apical=1.0)
    y = cfg.targets.of(labels, 10)

    def stream():
        return cfg.encoder_obj().stream(x, cfg.steps, torch.Generator().manual_seed(3))

    run = dict(batch=len(x), ctx=Context(cfg.steps, cfg.neuron, cfg.circuit))
    taught = present(circuit, stream(), y, learn=Plasticity(W=True), **run)
    alone = present(circuit, stream(), None, **run)  # a separate free phase (no teacher)
    bottom_up = simulate(circuit.W, stream(), batch=len(x), steps=cfg.steps, neuron=cfg.neuron)
    free_counts, free_potentials = taught.free_output
    assert torch.equal(free_counts, alone.counts) and torch.equal(free_counts, bottom_up.counts[-1])
    assert torch.equal(free_potentials, bottom_up.potentials)
    assert not torch.equal(taught.counts, free_counts)  # the teacher did move the output cells
    nudged = present(circuit, stream(), y, batch=len(x), ctx=Context(cfg.steps, cfg.neuron, dataclasses.replace(
        cfg.circuit, error_reference="nudged")))
    assert taught.free_output is not None and nudged.free_output is None
    assert torch.equal(taught.counts, nudged.counts)  # the copy does not touch the circuit itself


def cosines(reference: str, g_apical: float, digits) -> list[float]:
    cfg, circuit = setup(reference, g_apical)
    x, labels = digits
    updates, grads, _ = spiking_updates(circuit, x, labels, cfg, torch.Generator().manual_seed(1))
    return [row["cosine"] for row in agreement(updates, grads)]


@pytest.mark.parametrize("g_apical", [0.3, 1.0])
def test_free_reference_keeps_the_top_errors_aligned_with_stbp_at_any_apical_coupling(g_apical, digits):
    free, nudged = cosines("free", g_apical, digits), cosines("nudged", g_apical, digits)
    print(f"[free reference] g_A {g_apical}: cosines free {[round(c, 4) for c in free]}, "
          f"nudged {[round(c, 4) for c in nudged]}")
    assert free[1] >= 0.98 and free[2] >= 0.99  # last hidden layer and output
    assert free[0] >= 0.45  # the first layer: quantised to whole spikes of the layer above
    assert free[1] > nudged[1] and free[2] > nudged[2]
    if g_apical == 1.0:  # the nudged reference: errors cancelled by the nudge they cause
        assert nudged[1] < 0.8 and nudged[2] < 0.8


def test_training_accuracy_is_the_teacher_free_prediction(digits):
    """With the free copy the per-batch accuracy is what inference answers on the same spikes."""
    from bioleaf.model.losses import predict
    from bioleaf.rules import make_rule

    x, labels = digits
    cfg, _ = setup("free", g_apical=1.0)
    rule = make_rule(cfg, [int(n) for n in ARCH.split("-")], torch.Generator().manual_seed(0), torch.device("cpu"))
    before = [w.clone() for w in rule.circuit.W]
    stream = cfg.encoder_obj().stream(x, cfg.steps, torch.Generator().manual_seed(5))
    fwd = simulate(before, stream, batch=len(x), steps=cfg.steps, neuron=cfg.neuron)
    expected = int((predict(fwd.counts[-1], fwd.potentials) == labels).sum())
    stats = rule.train_batch(x, labels, torch.Generator().manual_seed(5))
    assert stats.correct == expected
    assert any(not torch.equal(a, b) for a, b in zip(before, rule.circuit.W))


def test_without_a_hidden_layer_both_references_give_the_same_update(digits):
    """With no hidden layer nothing is nudged but the output cells, so their own basal prediction
    already is the teacher-free one: the free reference changes nothing."""
    x, labels = digits
    cfg = TrainConfig(rule="bioleaf", dataset="digits", arch="64-10", steps=20).validate()
    y = cfg.targets.of(labels, 10)
    results = {}
    for reference in ("nudged", "free"):
        params = dataclasses.replace(cfg.circuit, interneurons="ideal", error_reference=reference).validate()
        circuit = build_circuit([64, 10], params, torch.Generator().manual_seed(0), cfg.init_scale)
        stream = cfg.encoder_obj().stream(x, 20, torch.Generator().manual_seed(3))
        results[reference] = present(circuit, stream, y, batch=len(x), ctx=Context(20, cfg.neuron, params),
                                     learn=Plasticity(W=True))
    assert results["free"].free_output is not None
    assert results["free"].updates["W0"].abs().sum() > 0
    assert torch.equal(results["free"].updates["W0"], results["nudged"].updates["W0"])
    assert torch.equal(results["free"].basal_counts, results["nudged"].basal_counts)


def test_an_unnudged_bottom_layer_spikes_as_without_teacher_and_still_learns(digits):
    """``g_apical_layers "0"`` (= ``"0,1"``): the lowest hidden layer's soma ignores its apical input, so
    the teacher leaves its spikes as they are without it; its update (its apical error, carried by the nudged layer
    above) stays aligned with ST-BP. Multipliers of 1 change nothing."""
    x, labels = digits
    cfg, circuit = setup("free", g_apical=1.0)
    y = cfg.targets.of(labels, 10)

    def run(layers: str, targets):
        params = dataclasses.replace(cfg.circuit, g_apical_layers=layers).validate()
        stream = cfg.encoder_obj().stream(x, cfg.steps, torch.Generator().manual_seed(3))
        return present(circuit, stream, targets, batch=len(x), ctx=Context(cfg.steps, cfg.neuron, params),
                       learn=Plasticity(W=True))

    default, ones, bottom_off, short = run("", y), run("1,1", y), run("0,1", y), run("0", y)
    assert all(torch.equal(default.updates[k], ones.updates[k]) for k in default.updates)
    assert all(torch.equal(bottom_off.updates[k], short.updates[k]) for k in default.updates)
    free_bottom = run("0,1", None).hidden_counts[0]
    assert torch.equal(bottom_off.hidden_counts[0], free_bottom)
    assert not torch.equal(default.hidden_counts[0], free_bottom)  # nudged, it did move
    bottom_cfg = dataclasses.replace(cfg, circuit=dataclasses.replace(cfg.circuit, g_apical_layers="0,1"))
    updates, grads, _ = spiking_updates(circuit, x, labels, bottom_cfg, torch.Generator().manual_seed(1))
    first, second, output = [row["cosine"] for row in agreement(updates, grads)]
    print(f"[bottom layer not nudged] cosines {first:.4f} {second:.4f} {output:.4f}")
    assert first >= 0.45 and second >= 0.98 and output >= 0.99
