"""Tests for bioleaf.tools.bench and bioleaf.tools.scaling: the quick bench, the snnTorch twin's equivalence, the
FLOP count, the memory probes and the scaling sweep.

No timing is asserted: the machine running the tests may be shared with other jobs.
"""

import json
import math
import resource
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from bioleaf import cli
from bioleaf.tools import scaling, scaling_report
from bioleaf.tools.bench import flops, memory, peers, probes, run_bench, timing, trainers
from bioleaf.tools.bench.peers import snntorch_twin as twin
from bioleaf.config import TrainConfig
from bioleaf.model.encoding import Encoder
from bioleaf.errors import UsageError
from bioleaf.model.losses import count_cross_entropy
from bioleaf.model.circuit import CircuitParams
from bioleaf.model.network import simulate
from bioleaf.model.neurons import NeuronParams
from bioleaf.presets import PRESETS
from bioleaf.rules import make_rule
from bioleaf.rules.bptt import surrogate_spike

REQUIRED_KEYS = ("bioleaf_over_snntorch", "bioleaf_local_over_snntorch", "bioleaf_local_over_bioleaf",
                 "bptt_over_snntorch", "bioleaf_memory_ratio_T100_T10", "bptt_memory_ratio_T100_T10", "bioleaf_gflops",
                 "matmul_gflops", "bioleaf_over_fastest_peer", "bioleaf_local_over_fastest_peer",
                 "bioleaf_limit_efficiency", "bioleaf_local_limit_efficiency", "bioleaf_one_over_snntorch",
                 "bioleaf_one_over_bioleaf_local", "bioleaf_one_over_fastest_peer", "bioleaf_one_limit_efficiency")
"""The headline figures of a bench run: the speed ratios, the memory ratios, the arithmetic rates and limits."""
RAW_KEYS = ("bioleaf_samples_per_s", "bptt_samples_per_s", "snntorch_samples_per_s",
            "bioleaf_peak_mb_T10", "bioleaf_peak_mb_T100", "bptt_peak_mb_T10", "bptt_peak_mb_T100",
            "bioleaf_gflop_per_batch", "bioleaf_local_gflop_per_batch", "bioleaf_limit_seconds",
            "bioleaf_local_limit_seconds", "bioleaf_one_gflop_per_batch", "bioleaf_one_limit_seconds")


def check_bench_result(result: dict, device: str) -> None:
    """What every ``bioleaf bench --quick --json`` run returns (also on a GPU: tests/test_cuda.py)."""
    for key in REQUIRED_KEYS + RAW_KEYS:
        value = result[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)
    assert result["quick"] is True and result["device"] == device
    assert result["bioleaf_circuit"].endswith("copied-feedback, copied-interneurons, teacher-free-copy")
    assert result["bioleaf_local_circuit"].endswith("idealisations: replayed-input, partner-count")
    # a free and a teacher phase with learned P, Q and B products: more arithmetic than the idealised batch
    assert result["bioleaf_local_gflop_per_batch"] > result["bioleaf_gflop_per_batch"]
    assert result["bioleaf_phases"] == 1 and result["bioleaf_local_phases"] == 2
    # one copy, no label: a free period as long as the teacher's (the preset's proportion), the spike-timing rule
    assert result["bioleaf_one_circuit"].endswith("idealisations: none") and result["bioleaf_one_phases"] == 1
    assert result["bioleaf_one_steps_per_sample"] == 2 * result["speed_steps"]
    for name in peers.OPTIONAL_PEERS:  # each measured, or skipped where its package is missing
        assert result[name] in ("measured", peers.SKIPPED), (name, result[name])
        for key in (f"{name}_samples_per_s", f"bioleaf_over_{name}", f"bioleaf_local_over_{name}",
                    f"bioleaf_one_over_{name}"):
            assert (key in result) == (result[name] == "measured"), key
            assert key not in result or math.isfinite(result[key]) and result[key] > 0, key
    assert result["fastest_peer"] in peers.PEERS


def test_quick_bench_through_the_cli_returns_every_key_finite_and_positive(capsys):
    pytest.importorskip("snntorch")
    assert cli.main(["bench", "--quick", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    check_bench_result(result, "cpu")
    assert result["memory_method"] in ("clear_refs", "sampling")


def test_bench_without_snntorch_is_a_usage_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "snntorch", None)  # makes `import snntorch` raise ImportError
    with pytest.raises(UsageError, match=r"snntorch is not installed; pip install 'bioleaf\[bench\]'"):
        run_bench(quick=True)


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
    net = twin.SnnTorchTwin([weights[0].shape[1]] + [w.shape[0] for w in weights], neuron, 5.0,
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


def counted_flops(fn) -> int:
    """The matrix-product FLOPs torch actually executes in ``fn()`` (``torch.utils.flop_counter``), the
    reference the recorded products are checked against (also in tests/test_phases.py)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


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

    def batch():
        return rule.train_batch(images, labels, torch.Generator().manual_seed(2))

    counted = counted_flops(batch)
    matmuls = flops.recorded_matmuls(batch)
    assert counted > 0 and flops.total_flops(matmuls) == counted
    assert counted_flops(flops.matmul_replay(matmuls)) == counted
    per_step = 3 if len(sizes) == 4 else 2  # at least the bottom-up products of every layer, every step
    assert len(matmuls) >= per_step * cfg.steps


def test_the_recorded_products_name_the_ones_run_in_float64():
    """The spike-timing rule's eligibility and our bptt's float64 gradient sums run in float64; our default bptt
    runs every product in float32."""
    x, y = torch.rand(4, 784), torch.randint(0, 10, (4,))
    float64 = {}
    for name in ("bioleaf_one", "bptt", "bptt_float64"):
        trainer = trainers.make_trainer(name, "784-16-16-10", 6, 4, torch.device("cpu"))
        matmuls = flops.recorded_matmuls(lambda: trainer.train_batch(x, y, torch.Generator().manual_seed(0)))
        assert {m.dtype for m in matmuls} <= {"float32", "float64"}
        float64[name] = flops.total_flops(matmuls, "float64") / flops.total_flops(matmuls)
    assert 0 < float64["bioleaf_one"] < 1 and float64["bptt"] == 0 and 0 < float64["bptt_float64"] < 1


def test_matmul_replay_runs_the_listed_products():
    matmuls = [flops.Matmul("mm", 4, 5, 3, 7), flops.Matmul("mm", 3, 4, 5, 1), flops.Matmul("bmm", 2, 3, 4, 2)]
    run = flops.matmul_replay(matmuls, torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        run()
    assert counter.get_total_flops() == sum(m.flops for m in matmuls)



# --------------------------------------------------------------------------- the benchmarked circuits
def test_the_idealised_circuit_is_the_fashion_mnist_preset_s_and_the_local_one_copies_no_weight():
    idealised = trainers.bench_config("bioleaf", "784-16-16-10", 30, 8, "idealised")
    local = trainers.bench_config("bioleaf", "784-16-16-10", 30, 8, "local")
    assert idealised.idealisations == ["copied-feedback", "copied-interneurons", "teacher-free-copy"]
    assert local.idealisations == ["replayed-input", "partner-count"] and local.circuit.interneurons == "learned"
    assert trainers.bench_config("bioleaf", "784-16-16-10", 30, 8) == idealised
    with pytest.raises(UsageError, match="circuit must be one of idealised, local, one-presentation"):
        trainers.circuit_values("default")


def test_the_one_presentation_circuit_is_the_direct_preset_s_in_one_copy_with_the_spike_timing_rule():
    one = trainers.bench_config("bioleaf", "784-16-16-10", 30, 8, "one-presentation")
    preset, direct = PRESETS["fashion-mnist-one-presentation"], PRESETS["fashion-mnist-local-direct"]
    assert one.idealisations == [] and one.circuit.one_presentation() and one.circuit.free_steps == 30
    assert one.circuit.feedback == direct["circuit.feedback"] == "direct" and one.circuit.gate == direct["circuit.gate"]
    assert one.circuit.w_rule == "stdp" and one.circuit.stdp_tau == 10
    assert one.circuit.apical_couplings(2) == [preset["circuit.g_apical"]] * 2 == [0.5, 0.5]
    assert one.circuit.inhibition_sources(3) == [1, 1]  # the top layer's interneurons, mirroring the output cells
    short = trainers.bench_config("bioleaf", "784-16-16-10", 6, 8, "one-presentation")  # a 6 ms presentation
    assert short.circuit.stdp_tau == 6 * short.neuron.dt


@pytest.mark.parametrize("steps, free", [(30, 30), (20, 20), (100, 100), (5, 5), (1, 1)])
def test_the_one_presentation_circuit_keeps_its_preset_s_free_period_in_proportion_to_t(steps, free):
    """The preset presents 30 free steps before its 30 taught ones: at the bench's T, as many free steps as taught."""
    one = trainers.bench_config("bioleaf", "784-16-16-10", steps, 8, "one-presentation")
    assert one.circuit.free_steps == trainers.free_steps_at(steps, "one-presentation") == free


def test_the_fully_local_circuit_is_read_from_the_fashion_mnist_local_preset(monkeypatch):
    local = trainers.circuit_values("local")
    assert local["circuit.feedback"] == "learned" and "circuit.interneurons" not in local
    assert trainers.bench_config("bioleaf", "784-16-16-10", 10, 4, "local").idealisations == ["replayed-input",
                                                                                        "partner-count"]
    monkeypatch.setitem(PRESETS, trainers.LOCAL_PRESET, {**PRESETS[trainers.LOCAL_PRESET], "circuit.g_apical": 0.7})
    assert trainers.circuit_values("local") == {**local, "circuit.g_apical": 0.7}
    assert trainers.make_trainer("bioleaf_local", "784-16-16-10", 10, 4, torch.device("cpu")).cfg.circuit.g_apical == 0.7


@pytest.mark.parametrize("arch", ["64-64", "784-16-16-10"])
def test_every_trainer_trains_a_batch_also_without_a_hidden_layer(arch):
    pytest.importorskip("snntorch")
    sizes = [int(n) for n in arch.split("-")]
    xs, ys, source = timing.fixed_batches(arch, 4, 1, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert source == "uniform-noise" and xs[0].shape == (4, sizes[0])
    for name in trainers.TRAINERS:
        if name in peers.OPTIONAL_PEERS and not peers.installed(name):
            continue
        stats = trainers.make_trainer(name, arch, 12, 4, torch.device("cpu")).train_batch(
            xs[0], ys[0], torch.Generator().manual_seed(1))
        assert stats.samples == 4 and math.isfinite(stats.loss_sum), name


# --------------------------------------------------------------------------- scaling
def check_scaling_run(result: dict, out, device: str) -> None:
    """What ``bioleaf bench --scaling --quick --json`` returns and writes (also on a GPU: tests/test_cuda.py)."""
    rows = result["rows"]
    sweeps = [r["sweep"] for r in rows]
    assert list(dict.fromkeys(sweeps)) == ["width", "T", "batch"] + (["community"] if device == "cuda" else [])
    assert result["device"] == device and result["quick"] is True
    for r in rows:
        assert r["rule"] in scaling.SCALING_TRAINERS and not r["oom"], r
        assert math.isfinite(r["samples_per_s"]) and r["samples_per_s"] > 0 and r["peak_mb"] >= 0, r
        assert r["over_snntorch"] > 0 and (r["rule"] != "snntorch" or r["over_snntorch"] == 1.0), r
        circuit = r["rule"] in trainers.BIOLEAF_TRAINERS  # a limit replay each, and memory against the idealised circuit's
        assert (r["limit_efficiency"] > 0) if circuit else r["limit_efficiency"] is None, r
        assert (r["memory_over_idealised"] is not None) == (circuit and r["peak_mb"] > 0), r
    slopes = {(s["sweep"], s["rule"]): s for s in result["slopes"]}
    assert set(slopes) == {(sweep, name) for sweep in ("width", "T", "batch") for name in scaling.SCALING_TRAINERS}
    assert all(math.isfinite(s["time_slope"]) for s in slopes.values())
    width, steps, batch = scaling.QUICK_SCALING.centre
    centre = {(r["sweep"], r["rule"]): r["samples_per_s"] for r in rows
              if r["value"] == {"width": width, "T": steps, "batch": batch}.get(r["sweep"])}
    for name in scaling.SCALING_TRAINERS:  # the shape the three sweeps share is measured once
        assert centre["width", name] == centre["T", name] == centre["batch", name]
    assert json.loads((out / "results.json").read_text()) == result
    table = (out / "results.md").read_text()
    assert table.count("| width |") == 2 and all(label in table for label in scaling_report.LABELS.values())
    assert "| trainer | width: time | width: memory |" in table
    assert (out / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_scaling_through_the_cli_measures_every_trainer_and_writes_table_json_and_png(capsys, tmp_path):
    pytest.importorskip("snntorch")
    assert cli.main(["bench", "--scaling", "--quick", "--out", str(tmp_path), "--json"]) == 0
    check_scaling_run(json.loads(capsys.readouterr().out), tmp_path, "cpu")


def test_a_memory_probe_past_its_budget_reports_oom_and_leaves_the_limit_as_it_was():
    before = resource.getrlimit(resource.RLIMIT_AS)
    result = memory.memory_probe("bptt", 50, "784-64-64-10", 32, 1, budget_mb=1)
    assert result["oom"] is True and "peak_mb" not in result
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    result = memory.memory_probe("bptt", 50, "784-64-64-10", 32, 1, budget_mb=1000)
    assert result["oom"] is False and result["peak_mb"] > 1 and result["method"] in ("clear_refs", "sampling")


def test_scaling_probes_run_in_fresh_processes_and_one_past_its_budget_reports_oom():
    pytest.importorskip("snntorch")
    common = {"batches": 1, "seed": 0, "threads": 1, "device": "cpu"}
    specs = [{"rule": "snntorch", "steps": 5, "arch": "784-16-16-10", "batch": 4, "budget_mb": 4096.0, **common},
             {"rule": "bptt", "steps": 50, "arch": "784-64-64-10", "batch": 32, "budget_mb": 1.0, **common}]
    fitted, past = probes.run_probes(specs, parallel=2, timeout_s=120)
    assert fitted["rule"] == "snntorch" and fitted["oom"] is False and fitted["peak_mb"] >= 0
    assert fitted["rss_before_mb"] > 50  # torch is loaded: a process of its own, not this one
    assert past["rule"] == "bptt" and past["oom"] is True


def test_trainers_out_of_memory_are_marked_oom_instead_of_failing_the_sweep(monkeypatch, tmp_path):
    """bptt's probe runs out of memory (it is then not timed), snnTorch runs out while it is timed."""
    pytest.importorskip("snntorch")
    def bptt_out_of_memory(specs, **kwargs):
        return [{**spec, "oom": True} if spec["rule"] == "bptt" else {**spec, "oom": False, "peak_mb": 1.5}
                for spec in specs]
    monkeypatch.setattr(scaling, "run_probes", bptt_out_of_memory)
    calls = []

    def train_batch(self, images, labels, generator):
        calls.append(1)
        if len(calls) > 1:  # the warm-up batch fits, the first timed one does not
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.setattr(twin.SnnTorchTrainer, "train_batch", train_batch)
    settings = scaling.ScalingSettings(widths=(8, 16), steps=(4,), batch_sizes=(2,), centre=(8, 4, 2), rounds=2)
    result = scaling.run_scaling(settings=settings, out=tmp_path)
    rows = {(r["value"], r["rule"]): r for r in result["rows"] if r["sweep"] == "width"}
    assert rows[8, "bptt"]["oom"] and rows[8, "bptt"]["samples_per_s"] is None and rows[8, "bptt"]["peak_mb"] is None
    assert rows[8, "snntorch"]["oom"] and rows[8, "snntorch"]["samples_per_s"] is None
    assert rows[8, "snntorch"]["peak_mb"] == 1.5  # it fitted while probed
    assert rows[16, "snntorch"]["oom"]  # a new trainer at the next width: out of memory again
    for value in (8, 16):
        for name in trainers.BIOLEAF_TRAINERS:
            row = rows[value, name]
            assert not row["oom"] and row["samples_per_s"] > 0 and row["over_snntorch"] is None, row
    table = (tmp_path / "results.md").read_text()
    assert "| 8 | " in table and table.count(" OOM |") == 4 * 3  # 4 rows: bptt's speed and memory, snnTorch's speed
    assert (tmp_path / "scaling.png").stat().st_size > 0
    slopes = {(s["sweep"], s["rule"]): s for s in result["slopes"]}
    assert slopes["width", "bptt"]["time_slope"] is None and slopes["width", "snntorch"]["time_slope"] is None


def test_loglog_slopes_recover_the_exponent_of_a_power_law_and_skip_missing_points():
    assert scaling_report.loglog_slope([1, 2, 4], [3.0, 12.0, 48.0]) == pytest.approx(2.0)
    assert scaling_report.loglog_slope([10, 100, 1000], [5.0, None, 50.0]) == pytest.approx(0.5)
    assert scaling_report.loglog_slope([10, 100], [5.0, None]) is None
    rows = [{"sweep": "width", "value": w, "rule": name, "batch": 10, "samples_per_s": 10 / (w / 100) ** 1.5,
             "peak_mb": w / 4} for w in (100, 200, 400) for name in scaling.SCALING_TRAINERS]
    rows += [{**rows[0], "sweep": "T"}]  # a sweep of one point has no slope
    slopes = scaling_report.scaling_slopes(rows)
    assert [(s["sweep"], s["rule"]) for s in slopes] == [("width", name) for name in scaling.SCALING_TRAINERS]
    assert all(s["time_slope"] == pytest.approx(1.5) and s["memory_slope"] == pytest.approx(1.0) for s in slopes)
