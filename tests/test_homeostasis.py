"""Homeostatic scaling of hidden cells' ``W`` (``--homeostasis``): the rule's values, what it adds to a
presentation's updates, that it wakes a silent cell in training, that it stays local, and its bad input."""

import pytest
import torch

import bioleaf
from bioleaf.errors import DataError, UsageError
from bioleaf.training.resume import _check_same_config
from bioleaf.model import plasticity
from bioleaf.model.neurons import NeuronParams, if_init, if_step
from bioleaf.model.circuit import Plasticity, build_circuit, present, present_phases
from bioleaf.tools.locality import check_locality
from bioleaf.training.trainer import Trainer


def test_a_silent_cell_is_pushed_up_a_capped_one_down_and_the_band_between_is_left_alone():
    count = torch.tensor([[0.0, 3.0, 10.0, 12.0]])
    h = plasticity.homeostatic_drive(count, cap=10, strength=0.5, threshold=2.0)
    assert h.tolist() == [[1.0, 0.0, -1.0, -1.0]]
    pre = torch.tensor([[2.0, 0.0, 4.0]])
    change = plasticity.homeostatic_scaling(h, pre, 10)
    assert torch.allclose(change, torch.outer(h[0], pre[0]).double() / 10)


@pytest.mark.parametrize("steps, refractory, cap", [(10, 0, 10), (10, 1, 5), (30, 2, 10), (31, 2, 11)])
def test_the_cap_is_the_most_spikes_the_soma_can_fire(steps, refractory, cap):
    assert plasticity.count_cap(steps, refractory) == cap
    neuron = NeuronParams(refractory=refractory, tau_syn=1.0)
    state, fired = if_init(1, 1), 0
    for _ in range(steps):  # a drive far above threshold: the soma fires as often as it can
        spikes, state = if_step(torch.full((1, 1), 100.0), state, neuron)
        fired += int(spikes.sum())
    assert fired == cap


def _all_pixels(images):
    """Every input fires at every step (a deterministic stream that can drive a cell to its cap)."""
    def spikes_at(t):
        return torch.ones_like(images)
    return spikes_at


@pytest.mark.parametrize("rule", ["integrated", "stdp"])
def test_a_presentation_adds_the_homeostatic_change_of_each_cells_own_count(digits, rule):
    settings = dict(arch="64-32-10", interneurons="ideal", error_reference="nudged", g_apical_layers="1", w_rule=rule)
    off, on = (bioleaf.preset("digits", homeostasis=h, **settings).validate() for h in (0.0, 0.05))
    circuit = build_circuit(off.sizes(64, 10), off.circuit, torch.Generator().manual_seed(0), off.init_scale)
    circuit.W[0][:4] = -circuit.W[0][:4].abs()  # four cells that cannot fire
    circuit.W[0][4:8] = circuit.W[0][4:8].abs() + 1.0  # four that fire at every step
    images = digits.train_x[:8]
    targets = off.targets.of(digits.train_y[:8], 10)
    plain, homeostatic = (present(circuit, _all_pixels(images), targets, cfg.context, batch=8,
                                  learn=Plasticity(W=True)) for cfg in (off, on))
    counts = plain.hidden_counts[0]
    assert (counts[:, :4] == 0).all() and (counts[:, 4:8] == off.steps).all()
    trace, pre_sum = torch.zeros_like(images), torch.zeros_like(images)
    for _ in range(off.steps):  # the input trace summed over the presentation
        trace = off.neuron.lam * trace + 1.0
        pre_sum += trace
    drive = plasticity.homeostatic_drive(counts, off.steps, 0.05, off.neuron.threshold)
    expected = plasticity.homeostatic_scaling(drive, pre_sum, off.steps)
    assert torch.allclose(homeostatic.updates["W0"] - plain.updates["W0"], expected, atol=1e-9)
    assert (expected[:4] > 0).all() and (expected[4:8] < 0).all()  # silent cells up, capped cells down
    assert torch.equal(homeostatic.updates["W1"], plain.updates["W1"])  # output cells have a teacher, no band


def test_a_learned_feedback_mirror_takes_the_same_homeostatic_increment(digits):
    cfg = bioleaf.preset("fashion-mnist-local", dataset="digits", arch="64-32-16-10", steps=20, target_high=15,
                         homeostasis=0.05).validate()
    circuit = build_circuit(cfg.sizes(64, 10), cfg.circuit, torch.Generator().manual_seed(0), cfg.init_scale)
    circuit.W[1][:4] = -circuit.W[1][:4].abs()  # cells of the second hidden layer that cannot fire
    images = digits.train_x[:8]
    stream = cfg.encoder_obj().stream(images, cfg.steps, torch.Generator().manual_seed(1))
    _, teach = present_phases(circuit, stream, cfg.targets.of(digits.train_y[:8], 10), cfg.context, batch=8,
                              lateral=Plasticity(W=False, P=True, Q=True), learn=Plasticity(W=True, B=True))
    assert (teach.hidden_counts[1][:, :4] == 0).all()
    assert torch.equal(teach.updates["B0"], teach.updates["W1"].T)  # Kolen-Pollack: identical increments


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


@pytest.mark.parametrize("value", [-0.1, 11.0, float("nan"), float("inf"), True, "0.1"])
def test_a_bad_strength_is_one_line_naming_the_flag(value):
    with pytest.raises(UsageError) as e:
        bioleaf.preset("digits", homeostasis=value)
    assert "--homeostasis" in str(e.value) and "\n" not in str(e.value)


def test_a_checkpoint_configuration_without_the_homeostasis_field_resumes_with_it_off(tmp_path):
    cfg = bioleaf.preset("digits")
    saved = cfg.to_json()
    del saved["circuit"]["homeostasis"]
    _check_same_config(tmp_path / "checkpoint.safetensors", saved, cfg)  # no difference: the default
    with pytest.raises(UsageError, match="--homeostasis"):
        _check_same_config(tmp_path / "checkpoint.safetensors", saved, bioleaf.preset("digits", homeostasis=0.01))
    with pytest.raises(DataError, match="checkpoint.safetensors"):
        _check_same_config(tmp_path / "checkpoint.safetensors", {**saved, "unknown": 1}, cfg)
