"""On a GPU: every rule trains, the microcircuit's updates equal the CPU's, a run trained on the GPU loads on a
CPU, and ``bioleaf compare`` and ``bioleaf bench`` run with ``--device cuda``.

Every test here is marked ``cuda`` and skips without a CUDA GPU; ``bash scripts/gpu_check.sh`` runs them
(``pytest -m cuda``) on a CUDA machine, then the bench.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

import bioleaf
from bioleaf import cli
from bioleaf.tools.bench.trainers import circuit_values
from bioleaf.training import checkpoint as ckpt
from bioleaf.api import configure
from bioleaf.rules import make_rule
from test_bench import check_bench_result, check_scaling_run
from test_compare import QUICK_COMPARE, VARIANTS as COMPARE_VARIANTS

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

VARIANTS = {
    "bioleaf": {},  # the digits preset's circuit: learned interneurons, with their initial self-predicting phase
    "bioleaf-local": circuit_values("local"),
    "bioleaf-idealised": {"steps": 30, **circuit_values("idealised")},  # its target count 27 needs T >= 27
    "stbp": {"rule": "stbp"},
    "bptt": {"rule": "bptt"},
}
"""What each trained variant sets on top of the ``digits`` preset (the circuits of the bench among them)."""


@pytest.fixture(scope="module")
def cuda_runs(tmp_path_factory, digits) -> dict[str, tuple[bioleaf.api.Run, object]]:
    """Every variant trained for one digits epoch on the GPU, each written to a run directory of its own."""
    root = tmp_path_factory.mktemp("cuda_runs")
    return {name: (bioleaf.fit(configure("digits", {"epochs": 1, "device": "cuda", **values}), data=digits,
                               out=root / name), root / name) for name, values in VARIANTS.items()}


@pytest.mark.parametrize("name", VARIANTS)
def test_every_rule_trains_one_digits_epoch_on_the_gpu(name, cuda_runs):
    run, _ = cuda_runs[name]
    assert run.summary["device"].startswith("cuda") and run.summary["peak_memory_mb"] > 0
    assert all(t.device.type == "cuda" for t in run.model.rule.synapses().values())
    assert math.isfinite(run.history[-1]["train_loss"])
    assert run.test_accuracy > 0.6, run.test_accuracy  # 0.82-0.90 on a CPU after one epoch; chance is 0.1


@pytest.mark.parametrize("name", VARIANTS)
def test_a_run_trained_on_the_gpu_loads_on_a_cpu(name, cuda_runs, digits, monkeypatch):
    run, out = cuda_runs[name]
    trained = {k: v.detach().cpu() for k, v in run.model.rule.tensors().items()}
    tensors, meta = ckpt.load_tensors(out / "checkpoint.safetensors")
    assert meta["config"]["device"] == "cuda" and all(t.device.type == "cpu" for t in tensors.values())
    for key, value in trained.items():
        assert torch.equal(tensors[f"net.{key}"], value), key
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without a GPU
    model = bioleaf.load(out)
    assert model.rule.device.type == "cpu"
    for key, value in model.rule.synapses().items():
        assert torch.equal(value, trained[key]), key
    # other input spikes (the CPU's generator), the same weights
    assert abs(model.accuracy(digits.test_x, digits.test_y) - run.test_accuracy) < 0.1


@pytest.fixture
def float64():
    """torch's default dtype float64 for one test (every tensor of a presentation follows it)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def _one_batch_changes(cfg, device: str, images: torch.Tensor, labels: torch.Tensor):
    """The changes one training batch hands to the optimiser, and its statistics. The weights are drawn on the
    CPU and moved to ``device``; the interneurons start from their partners' weights (so that they fire and
    ``Q`` learns as well)."""
    rule = make_rule(cfg, cfg.sizes(images.shape[1], 10), torch.Generator().manual_seed(0), torch.device(device))
    with torch.no_grad():
        for p, w in zip(rule.circuit.P, rule.circuit.W[1:]):
            p.copy_(w)
    changes: dict[str, torch.Tensor] = {}
    rule.apply_changes = lambda updates, scale: changes.update({k: v.cpu() for k, v in updates.items()})
    stats = rule.train_batch(images.to(device), labels.to(device), torch.Generator(device=device).manual_seed(1))
    return changes, stats


@pytest.mark.parametrize("circuit", ["local", "idealised"])
def test_one_batch_of_the_microcircuit_computes_the_same_updates_on_the_gpu_as_on_the_cpu(circuit, float64, digits):
    """In float64 and with the deterministic ``regular`` spike code no potential lands within rounding of the
    threshold on one device and not on the other, so every spike is the same and the updates (free-phase
    ``P``, ``Q`` and teacher-phase ``W`` for the local circuit) agree to float64 rounding."""
    cfg = configure("digits", {"encoder": "regular", "steps": 30, **circuit_values(circuit)})
    images, labels = digits.train_x[:64].double(), digits.train_y[:64]
    on_cpu, cpu_stats = _one_batch_changes(cfg, "cpu", images, labels)
    on_gpu, gpu_stats = _one_batch_changes(cfg, "cuda", images, labels)
    assert set(on_gpu) == set(on_cpu) and gpu_stats == cpu_stats
    assert set(on_cpu) >= ({"W0", "W1", "P0", "Q0"} if circuit == "local" else {"W0", "W1"})
    for key, expected in on_cpu.items():
        scale = float(expected.abs().max())
        assert scale > 0 and expected.dtype == torch.float64, key
        torch.testing.assert_close(on_gpu[key], expected, rtol=1e-9, atol=1e-9 * scale, msg=key)


def test_a_one_epoch_digits_compare_runs_on_the_gpu(run_cli, tmp_path):
    code, out, err = run_cli("compare", *QUICK_COMPARE, "--device", "cuda", "--seeds", "0", "--out", str(tmp_path),
                             "--json")
    assert code == 0, err
    assert [(r["rule"], r["feedback"]) for r in json.loads(out)] == COMPARE_VARIANTS
    for run_dir in sorted((tmp_path / "runs").iterdir()):
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["device"] == "cuda" and summary["peak_memory_mb"] > 0, run_dir.name


def test_the_quick_bench_runs_on_the_gpu(capsys):
    pytest.importorskip("snntorch")
    assert cli.main(["bench", "--quick", "--device", "cuda", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    check_bench_result(result, "cuda")
    assert result["memory_method"] == "cuda_max_memory_allocated" and result["gpu"]


def test_the_quick_scaling_runs_on_the_gpu_with_the_community_shape(capsys, tmp_path):
    pytest.importorskip("snntorch")
    assert cli.main(["bench", "--scaling", "--quick", "--device", "cuda", "--out", str(tmp_path), "--json"]) == 0
    check_scaling_run(json.loads(capsys.readouterr().out), tmp_path, "cuda")
