"""The multi-step bptt (one product per layer over all steps, :class:`IFSequence` for the somata)
against autograd through the step-by-step reference (:func:`bioleaf.model.network.simulate` with a
surrogate spike): identical spikes, identical gradients."""

from __future__ import annotations

import math

import pytest
import torch

from bioleaf.config import TrainConfig
from bioleaf.model.encoding import Encoder
from bioleaf.model.losses import count_cross_entropy
from bioleaf.model.network import simulate
from bioleaf.model.neurons import NeuronParams
from bioleaf.rules import make_rule
from bioleaf.rules.bptt import input_traces, multistep_forward, surrogate_spike, weight_gradients

SIZES, STEPS, BATCH = [24, 16, 12, 5], 30, 8


def problem(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    weights = [((torch.rand(o, i, generator=g, dtype=dtype) * 2 - 1) * 2.5 * math.sqrt(3 / i)).requires_grad_()
               for i, o in zip(SIZES[:-1], SIZES[1:])]
    images = torch.rand(BATCH, SIZES[0], generator=g, dtype=dtype)
    labels = torch.randint(0, SIZES[-1], (BATCH,), generator=g)
    return weights, images, labels


def stream(images):
    return Encoder("bernoulli", 0.5).stream(images, STEPS, torch.Generator().manual_seed(5))


def fused(weights, images, labels, neuron, kind, slope=5.0, dtype=torch.float64):
    traces = input_traces(stream(images), STEPS, BATCH, SIZES[0], neuron.lam, dtype=images.dtype)
    inputs, currents, counts, potentials = multistep_forward(weights, traces, neuron, kind, slope)
    loss = count_cross_entropy(counts, labels, 2.0, reduction="sum")
    return counts, potentials, weight_gradients(loss, inputs, currents, dtype)


def reference(weights, images, labels, neuron, kind, slope=5.0):
    fwd = simulate(weights, stream(images), batch=BATCH, steps=STEPS, neuron=neuron,
                   spike_fn=surrogate_spike(kind, slope))
    loss = count_cross_entropy(fwd.output, labels, 2.0, reduction="sum")
    return fwd.output, fwd.potentials, torch.autograd.grad(loss, weights)


@pytest.mark.parametrize("neuron,kind", [
    (NeuronParams(), "fast-sigmoid"),
    (NeuronParams(tau_mem=20.0), "fast-sigmoid"),
    (NeuronParams(tau_mem=10.0, refractory=2, tau_syn=3.0, threshold=0.8), "arctan"),
])
def test_multistep_bptt_equals_autograd_through_the_reference_steps(neuron, kind):
    weights, images, labels = problem(torch.float64)
    counts, potentials, grads = fused(weights, images, labels, neuron, kind)
    ref_counts, ref_potentials, ref_grads = reference(weights, images, labels, neuron, kind)
    assert torch.equal(counts.detach(), ref_counts.detach())
    assert torch.equal(potentials, ref_potentials.detach())
    out = ref_counts.detach()
    assert 0 < float(out.mean()) < STEPS and out.unique().numel() > 3  # cells neither silent nor saturated
    for g, r in zip(grads, ref_grads):
        assert float(r.abs().max()) > 0
        assert torch.allclose(g, r, rtol=0, atol=1e-10 * float(r.abs().max()))


def test_multistep_forward_gives_the_reference_spikes_in_float32():
    weights, images, labels = problem(torch.float32, seed=1)
    counts, potentials, _ = fused(weights, images, labels, NeuronParams(tau_mem=20.0), "fast-sigmoid",
                                  dtype=torch.float32)
    with torch.no_grad():
        fwd = simulate(weights, stream(images), batch=BATCH, steps=STEPS, neuron=NeuronParams(tau_mem=20.0))
    assert torch.equal(counts.detach(), fwd.output)
    assert torch.equal(potentials, fwd.potentials)


def test_float32_and_float64_gradient_sums_agree():
    weights, images, labels = problem(torch.float32, seed=2)
    _, _, g32 = fused(weights, images, labels, NeuronParams(), "fast-sigmoid", dtype=torch.float32)
    _, _, g64 = fused(weights, images, labels, NeuronParams(), "fast-sigmoid", dtype=torch.float64)
    for a, b in zip(g32, g64):
        assert a.dtype == torch.float32 and b.dtype == torch.float64
        assert torch.allclose(a.double(), b, rtol=0, atol=1e-5 * float(b.detach().abs().max()))


@pytest.mark.parametrize("grad_sums", ["float32", "float64"])
def test_bptt_rule_takes_the_adam_step_of_its_gradient(grad_sums):
    """One train_batch: W moves by Adam's first step, -lr * sign(gradient), wherever the gradient is not 0."""
    cfg = TrainConfig(rule="bptt", arch="-".join(map(str, SIZES)), steps=STEPS, batch_size=BATCH,
                      init_scale=2.5, lr=1e-3, grad_sums=grad_sums).validate()
    rule = make_rule(cfg, SIZES, torch.Generator().manual_seed(0), torch.device("cpu"))
    _, images, labels = problem(torch.float32, seed=3)
    before = [w.detach().clone() for w in rule.W]
    counts, _, grads = fused([w.detach().requires_grad_() for w in before], images, labels, cfg.neuron,
                             cfg.surrogate, dtype=getattr(torch, grad_sums))
    gen = torch.Generator().manual_seed(5)
    rule.train_batch(images, labels, gen)
    for w, b, g in zip(rule.W, before, [g.detach() for g in grads]):
        moved = g.abs() > 1e-3 * float(g.abs().max())  # Adam's eps is negligible against these
        assert moved.any()
        step = (w.detach() - b)[moved]
        assert torch.allclose(step, -1e-3 * torch.sign(g[moved]).float(), rtol=1e-3)
