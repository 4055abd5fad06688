"""Homeostatic scaling of hidden cells' ``W`` (``--homeostasis``): the rule's values, what it adds to a
presentation's updates, that it wakes a silent cell in training, that it stays local, and its bad input."""

import pytest
import torch

import bioleaf
from bioleaf.errors import UsageError
from bioleaf.model import plasticity
from bioleaf.model.circuit import Plasticity, build_circuit, present
from bioleaf.tools.locality import check_locality
from bioleaf.training.trainer import Trainer


def test_a_silent_cell_is_pushed_up_a_capped_one_down_and_the_band_between_is_left_alone():
    count = torch.tensor([[0.0, 3.0, 10.0, 12.0]])
    h = plasticity.homeostatic_drive(count, steps=10, strength=0.5, threshold=2.0)
    assert h.tolist() == [[1.0, 0.0, -1.0, -1.0]]
    pre = torch.tensor([[2.0, 0.0, 4.0]])
    change = plasticity.homeostatic_scaling(count, pre, 10, 0.5, 2.0)
    assert torch.allclose(change, torch.outer(h[0], pre[0]).double() / 10)


def _cfg(**settings):
    return bioleaf.preset("digits", arch="64-32-10", encoder="regular", interneurons="ideal",
                          error_reference="nudged", **settings)


def _updates(cfg, circuit, images, targets):
    stream = cfg.encoder_obj().stream(images, cfg.steps, None)
    return present(circuit, stream, targets, cfg.context, batch=len(images), learn=Plasticity(W=True))


def test_a_presentation_adds_the_homeostatic_change_of_each_cells_own_count(digits):
    off, on = _cfg(), _cfg(homeostasis=0.05)
    circuit = build_circuit(off.sizes(64, 10), off.circuit, torch.Generator().manual_seed(0), off.init_scale)
    circuit.W[0][:4] = -circuit.W[0][:4].abs()  # four cells that cannot fire
    images, labels = digits.train_x[:8], digits.train_y[:8]
    targets = off.targets.of(labels, 10)
    plain, homeostatic = _updates(off, circuit, images, targets), _updates(on, circuit, images, targets)
    counts = plain.hidden_counts[0]
    assert (counts[:, :4] == 0).all() and (counts > 0).any()
    pre_sum = torch.zeros_like(images)  # the input trace summed over the presentation
    stream, trace = off.encoder_obj().stream(images, off.steps, None), None
    for t in range(off.steps):
        s = stream(t)
        trace = s.clone() if trace is None else off.neuron.lam * trace + s
        pre_sum += trace
    expected = plasticity.homeostatic_scaling(counts, pre_sum, off.steps, 0.05, off.neuron.threshold)
    assert torch.allclose(homeostatic.updates["W0"] - plain.updates["W0"], expected, atol=1e-9)
    assert (expected[:4] >= 0).all() and expected[:4].sum() > 0  # the silent cells strengthen their inputs
    assert torch.equal(homeostatic.updates["W1"], plain.updates["W1"])  # output cells have a teacher, no band


def _never_firing_after_training(digits, cells, **settings):
    """Train two epochs with ``cells`` of the hidden layer silenced at the start; how many of them never fire on the
    test images."""
    cfg = bioleaf.preset("digits", arch="64-32-10", epochs=2, seed=0, g_apical_layers="1", **settings).validate()
    trainer = Trainer(cfg, digits)
    W0 = trainer.rule.circuit.W[0]
    W0[cells] = -0.3 * W0[cells].abs()
    trainer.run()
    fwd = trainer.rule.forward(digits.test_x, torch.Generator().manual_seed(0))
    return int((fwd.counts[0][:, cells].sum(dim=0) == 0).sum())


@pytest.mark.parametrize("rule", ["integrated", "stdp"])
def test_homeostasis_wakes_cells_that_never_fire(digits, rule):
    silenced = list(range(8))
    settings = dict(w_rule=rule, interneurons="ideal", error_reference="free")
    assert _never_firing_after_training(digits, silenced, **settings) == len(silenced)
    assert _never_firing_after_training(digits, silenced, homeostasis=0.01, **settings) == 0


def test_the_homeostatic_rule_is_local(digits):
    cfg = bioleaf.preset("digits", arch="64-48-32-10", feedback="random", steps=20, target_high=15,
                         homeostasis=0.01)
    report = check_locality(cfg, digits, samples=8)
    assert report.ok, report.reason()
    assert report.used == cfg.idealisations


@pytest.mark.parametrize("value", [-0.1, 11.0])
def test_a_bad_strength_is_one_line_naming_the_flag(value):
    with pytest.raises(UsageError) as e:
        bioleaf.preset("digits", homeostasis=value).validate()
    assert "--homeostasis" in str(e.value) and "\n" not in str(e.value)
