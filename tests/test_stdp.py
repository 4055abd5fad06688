"""The spike-timing-dependent W rule: its measured learning window, its eligibility against the formula, its
bounded memory, training with it, its locality, and the flag combinations it refuses."""

import pytest
import torch

import bioleaf
from bioleaf.errors import UsageError
from bioleaf.model import plasticity
from bioleaf.model.circuit import CircuitParams
from bioleaf.model.circuit.eligibility import SpikeTimingSums
from bioleaf.model.circuit.state import StepSignals
from bioleaf.model.neurons import NeuronParams
from bioleaf.tools.locality import check_locality
from bioleaf.tools.window import learning_window, weight_change


def test_the_stdp_window_depends_on_spike_timing_and_the_integrated_one_does_not():
    neuron = NeuronParams(tau_syn=5.0)
    window = learning_window(neuron, span=10)
    stdp, integrated = window["stdp"], window["integrated"]
    causal, acausal = stdp[11:], stdp[:10]  # post 1..10 ms after pre, and 10..1 ms before
    assert all(c > 0 for c in causal) and all(a == 0 for a in acausal)
    assert all(a > b for a, b in zip(causal, causal[1:]))  # the later the postsynaptic spike, the smaller the change
    assert stdp[10] == pytest.approx(1.0)  # coincident spikes: the whole presynaptic trace, theta / g = 1
    assert causal[4] == pytest.approx(neuron.lam ** 5)  # the window is the presynaptic PSP
    assert max(integrated) - min(integrated) < 1e-12 and integrated[0] > 0  # no timing dependence at all


def test_a_plasticity_trace_widens_the_window_and_keeps_it_causal():
    neuron = NeuronParams(tau_syn=1.0)
    decay = CircuitParams(w_rule="stdp", stdp_tau=10.0).window_decay(neuron.dt)
    psp, wide = (learning_window(neuron, span=20, window_decay=d)["stdp"] for d in (0.0, decay))
    assert all(w == 0 for w in wide[:20])  # a postsynaptic spike before the presynaptic one: no change
    assert all(w > 0 for w in wide[20:])
    assert wide[30] > 10 * psp[30]  # 10 ms after: the 1 ms PSP has gone, the 10 ms plasticity trace has not
    assert max(range(41), key=wide.__getitem__) > 20  # it rises after the presynaptic spike, then falls
    # the low-pass keeps the PSP's area but what is still in flight at the end: sum x~ = sum x - lam_w x~(T) / (1 - lam_w)
    last = wide[-1]
    assert sum(wide) == pytest.approx(sum(psp) - decay * last / (1 - decay), rel=1e-6)


@pytest.mark.parametrize("settings, flags", [
    (dict(w_rule="stdp", stdp_tau=-1.0), ("--tau-stdp",)),
    (dict(w_rule="stdp", stdp_tau=float("nan")), ("--tau-stdp",)),
    (dict(w_rule="stdp", stdp_tau=61.0), ("--tau-stdp", "--steps")),
    (dict(stdp_tau=10.0), ("--tau-stdp", "--w-rule")),
])
def test_a_bad_plasticity_trace_is_one_line_naming_the_flags(settings, flags):
    with pytest.raises(UsageError) as e:
        bioleaf.preset("digits", arch="64-48-32-10", g_apical_layers="1", **settings)
    assert all(flag in str(e.value) for flag in flags) and "\n" not in str(e.value)


def test_a_predicted_rate_depresses_whatever_the_timing():
    neuron = NeuronParams(tau_syn=2.0)
    unpredicted = weight_change("stdp", 3, neuron)
    predicted = weight_change("stdp", 3, neuron, predicted_rate=0.2)
    assert predicted < unpredicted
    assert weight_change("stdp", -3, neuron, predicted_rate=0.2) < 0  # a predicted spike that did not follow the input


def _signals(g, steps, batch, n_pre, n_post):
    return [StepSignals([torch.rand(batch, n_pre, generator=g)], [torch.randn(batch, n_post, generator=g) * 0.3], [],
                        [(torch.rand(batch, n_post, generator=g) < 0.3).float()], [], [], []) for _ in range(steps)]


@pytest.mark.parametrize("steps, window_decay", [(7, 0.0), (10, 0.0), (23, 0.0), (23, 0.8)])
def test_the_eligibility_is_the_sum_of_error_times_presynaptic_trace(steps, window_decay):
    g = torch.Generator().manual_seed(steps)
    signals = _signals(g, steps, 5, 4, 3)
    sums = SpikeTimingSums([0], [0.5], [2.0], threshold=1.5, chunk=10, window_decay=window_decay)
    u, expected, fired = torch.zeros(5, 3), torch.zeros(3, 4, dtype=torch.float64), 0.0
    plastic = torch.zeros(5, 4)  # the plasticity trace, a low-pass of the PSP trace (the PSP trace itself at 0)
    for sig in signals:
        sums.add(sig)
        assert all(p.steps < 10 for p in sums._pending.values())  # memory bounded by the chunk, whatever T
        u = u + 2.0 * sig.basal[0]  # the basal-only integrate-and-fire prediction
        predicted = (u >= 1.5).float()
        u = u - 1.5 * predicted
        fired += float(predicted.sum())
        error = 1.5 * (sig.spikes[0] - predicted) / 0.5
        plastic = window_decay * plastic + (1 - window_decay) * sig.inputs[0]
        expected += error.double().T @ plastic.double()
    sums.complete()
    assert fired > 0 and torch.allclose(sums.E[0], expected, atol=1e-9)


def test_the_learning_rows_are_the_teacher_copy():
    g = torch.Generator().manual_seed(0)
    signals = _signals(g, 6, 8, 4, 3)
    whole = SpikeTimingSums([0], [1.0], [1.0], threshold=1.0)
    half = SpikeTimingSums([0], [1.0], [1.0], threshold=1.0, rows=slice(4, 8))
    own = SpikeTimingSums([0], [1.0], [1.0], threshold=1.0)
    for sig in signals:
        whole.add(sig)
        half.add(sig)
        own.add(StepSignals([sig.inputs[0][4:]], [sig.basal[0][4:]], [], [sig.spikes[0][4:]], [], [], []))
    for s in (whole, half, own):
        s.complete()
    assert torch.equal(half.E[0], own.E[0]) and not torch.equal(half.E[0], whole.E[0])


def _stdp_digits(**settings):
    return bioleaf.preset("digits", arch="64-48-32-10", g_apical_layers="1", w_rule="stdp", **settings)


def test_the_idealised_circuit_learns_digits_with_the_stdp_rule(digits):
    cfg = _stdp_digits(interneurons="ideal", error_reference="free", epochs=2, seed=0)
    run = bioleaf.fit(cfg, digits)
    assert run.test_accuracy >= 0.8


def test_the_stdp_rule_is_local(digits):
    cfg = _stdp_digits(feedback="random", steps=20, target_high=15)
    report = check_locality(cfg, digits, samples=8)
    assert report.ok, report.reason()
    assert report.used == cfg.idealisations
    assert "W1" not in report.changes["W0"]


@pytest.mark.parametrize("settings, flags", [
    (dict(g_apical_layers="0"), ("--w-rule", "--g-apical-layers")),
    (dict(feedback="learned"), ("--w-rule", "--feedback learned")),
    (dict(nudge="two-sided", interneurons="ideal", error_reference="free"), ("--w-rule", "--nudge")),
    (dict(w_rule="spike"), ("--w-rule",)),
])
def test_unsupported_combinations_name_both_flags(settings, flags):
    base = dict(arch="64-48-32-10", g_apical_layers="1", w_rule="stdp")
    with pytest.raises(UsageError) as e:
        bioleaf.preset("digits", **{**base, **settings}).validate()
    assert all(flag in str(e.value) for flag in flags) and "\n" not in str(e.value)


def test_a_constant_error_gives_the_integrated_rules_change():
    g = torch.Generator().manual_seed(1)
    error, pre = torch.randn(1, 3, generator=g).repeat(200, 1), torch.rand(200, 4, generator=g)  # 200 steps, 1 sample
    stepwise = plasticity.basal_error_stdp(error, pre)
    integrated = plasticity.basal_error_integrated(pre.sum(0, keepdim=True), error.sum(0, keepdim=True),
                                                   torch.ones(1, 3), 200)
    assert torch.allclose(stepwise, integrated, rtol=1e-6)
    assert bioleaf.preset("digits").circuit.w_rule == "integrated"  # the integrated rule stays the default
