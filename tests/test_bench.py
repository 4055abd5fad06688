"""Tests for bioleaf.bench: the quick bench, the snnTorch twin's equivalence, the FLOP count.

No timing is asserted: the machine running the tests may be shared with other jobs.
"""

import json
import math
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from bioleaf import bench, cli
from bioleaf.config import TrainConfig
from bioleaf.encoding import Encoder
from bioleaf.errors import UsageError
from bioleaf.losses import count_cross_entropy
from bioleaf.microcircuit import CircuitParams
from bioleaf.network import simulate
from bioleaf.neurons import NeuronParams
from bioleaf.rules import make_rule
from bioleaf.rules.bptt import surrogate_spike

RAW_KEYS = ("bioleaf_samples_per_s", "bptt_samples_per_s", "snntorch_samples_per_s",
            "bioleaf_peak_mb_T10", "bioleaf_peak_mb_T100", "bptt_peak_mb_T10", "bptt_peak_mb_T100",
            "bioleaf_gflop_per_batch")


def test_quick_bench_through_the_cli_returns_every_key_finite_and_positive(capsys):
    pytest.importorskip("snntorch")
    assert cli.main(["bench", "--quick", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in bench.REQUIRED_KEYS + RAW_KEYS:
        value = result[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)
    assert result["quick"] is True and result["memory_method"] in ("clear_refs", "sampling")


def test_bench_without_snntorch_is_a_usage_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "snntorch", None)  # makes `import snntorch` raise ImportError
    with pytest.raises(UsageError, match=r"snntorch is not installed; pip install 'bioleaf\[bench\]'"):
        bench.run_bench(quick=True)


def _tiny_problem(dtype):
    """A tiny network driven hard enough that its cells fire often (float64: no rounding ties)."""
    sizes, steps, batch = [24, 16, 12, 5], 40, 8
    g = torch.Generator().manual_seed(0)
    weights = [((torch.rand(o, i, generator=g, dtype=dtype) * 2 - 1) * 2.5 * math.sqrt(3 / i)).requires_grad_()
               for i, o in zip(sizes[:-1], sizes[1:])]
    images = torch.rand(batch, sizes[0], generator=g, dtype=dtype)
    labels = torch.randint(0, sizes[-1], (batch,), generator=g)
    return sizes, steps, batch, weights, images, labels


def _ours(weights, images, labels, neuron, steps):
    stream = Encoder("bernoulli", 0.5).stream(images, steps, torch.Generator().manual_seed(5))
    fwd = simulate(weights, stream, batch=images.shape[0], steps=steps, neuron=neuron,
                   spike_fn=surrogate_spike("fast-sigmoid", 5.0))
    return fwd, count_cross_entropy(fwd.output, labels, 2.0)


def _snntorch(weights, images, labels, neuron, steps, detach_reset, dtype):
    net = bench.SnnTorchTwin([weights[0].shape[1]] + [w.shape[0] for w in weights], neuron, 5.0,
                             detach_reset=detach_reset, dtype=dtype).load_weights(weights)
    stream = Encoder("bernoulli", 0.5).stream(images, steps, torch.Generator().manual_seed(5))
    counts, potentials = net(stream, batch=images.shape[0], steps=steps)
    return net, counts, potentials, F.cross_entropy(counts / 2.0, labels)


@pytest.mark.parametrize("tau_mem", [20.0, math.inf])
@pytest.mark.parametrize("detach_reset", [True, False])
def test_snntorch_twin_forward_gives_identical_output_counts(tau_mem, detach_reset):
    pytest.importorskip("snntorch")
    neuron = NeuronParams(tau_mem=tau_mem)
    sizes, steps, batch, weights, images, labels = _tiny_problem(torch.float64)
    fwd, _ = _ours(weights, images, labels, neuron, steps)
    _, counts, potentials, _ = _snntorch(weights, images, labels, neuron, steps, detach_reset, torch.float64)
    assert torch.equal(counts, fwd.output)
    assert torch.allclose(potentials, fwd.potentials, rtol=0, atol=1e-9)
    # a meaningful check: output cells neither silent nor saturated, counts differ between cells
    out = fwd.output.detach()
    assert 0 < float(out.mean()) < steps and out.unique().numel() > 3


def test_snntorch_twin_gradients_equal_ours_when_its_reset_is_attached():
    pytest.importorskip("snntorch")
    neuron = NeuronParams(tau_mem=20.0)
    sizes, steps, batch, weights, images, labels = _tiny_problem(torch.float64)
    _, loss = _ours(weights, images, labels, neuron, steps)
    ours = torch.autograd.grad(loss, weights)
    net, _, _, loss2 = _snntorch(weights, images, labels, neuron, steps, False, torch.float64)
    theirs = torch.autograd.grad(loss2, list(net.parameters()))
    assert torch.allclose(loss, loss2, rtol=1e-12)
    for a, b in zip(ours, theirs):
        # snnTorch's spike tensor is float32, so the gradient passes through float32 once
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7 * float(a.abs().max()))


@pytest.mark.parametrize("circuit", [
    CircuitParams(),  # defaults: learned interneurons, symmetric feedback -> free + teacher phase
    CircuitParams(interneurons="ideal"),  # teacher phase only
    CircuitParams(feedback="learned"),
    CircuitParams(feedback="random", interneurons="ideal"),
    CircuitParams(interneurons="ideal", error_reference="free"),  # teacher phase + its teacher-free copy
    CircuitParams(interneurons="ideal", error_reference="free", nudge="two-sided"),  # + the second teacher phase
    CircuitParams(interneurons="ideal", error_reference="free", nudge="two-sided", g_apical_layers="0"),
])
@pytest.mark.parametrize("arch", ["30-12-9-4", "30-12-4"])
def test_recorded_bioleaf_products_replay_the_flops_torch_counts(circuit, arch):
    sizes = [int(n) for n in arch.split("-")]
    cfg = TrainConfig(rule="bioleaf", arch=arch, steps=12, batch_size=6, self_predict_batches=0,
                      circuit=circuit).validate()
    rule = make_rule(cfg, sizes, torch.Generator().manual_seed(0), torch.device("cpu"))
    images = torch.rand(6, sizes[0], generator=torch.Generator().manual_seed(1))
    labels = torch.arange(6) % sizes[-1]
    batch = lambda: rule.train_batch(images, labels, torch.Generator().manual_seed(2))  # noqa: E731
    counted = bench.counted_flops(batch)
    matmuls = bench.recorded_matmuls(batch)
    assert counted > 0 and sum(m.flops for m in matmuls) == counted
    assert bench.counted_flops(bench.matmul_replay(matmuls)) == counted
    per_step = 3 if len(sizes) == 4 else 2  # at least the bottom-up products of every layer, every step
    assert len(matmuls) >= per_step * cfg.steps


def test_matmul_replay_runs_the_listed_products():
    matmuls = [bench.Matmul("mm", 4, 5, 3, 7), bench.Matmul("mm", 3, 4, 5, 1), bench.Matmul("bmm", 2, 3, 4, 2)]
    run = bench.matmul_replay(matmuls, torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        run()
    assert counter.get_total_flops() == sum(m.flops for m in matmuls)

