"""Tests for bioleaf.tools.export: the NIR graph of a trained run, run back in snnTorch (and Norse).

One small digits model is trained once per module through the CLI (a few seconds). The whole
digits test set (360 samples) is then fed, with identical input spikes, through
``bioleaf.model.network.simulate`` and through the network snnTorch builds from the exported file.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bioleaf.training import checkpoint as ckpt
from bioleaf.cli import main
from bioleaf.model.encoding import Encoder
from bioleaf.errors import DataError, UsageError
from bioleaf.training.evaluate import load_model
from bioleaf.tools.export import NIR_DT, export_run
from bioleaf.model.losses import predict
from bioleaf.model.network import simulate

nir = pytest.importorskip("nir")

TRAIN = ["train", "--rule", "stbp", "--dataset", "digits", "--arch", "64-64-10", "--epochs", "2",
         "--batch-size", "32", "--lr", "0.003", "--init-scale", "0.5", "--no-progress"]
SPIKE_SEED = 1234


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "run"
    torch.set_num_threads(1)
    assert main(TRAIN + ["--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def nir_file(run_dir) -> Path:
    return export_run(run_dir, "nir", run_dir.parent / "model.nir")


@pytest.fixture(scope="module")
def test_spikes(run_dir, digits):
    """The digits test set's input spikes, drawn once: ``steps`` tensors ``[360, 64]``."""
    cfg, _ = load_model(run_dir)
    x = digits.test_x
    assert x.shape == (360, 64)
    gen = torch.Generator().manual_seed(SPIKE_SEED)
    return [Encoder("bernoulli", 0.5).step(x, t, cfg.steps, gen) for t in range(cfg.steps)]


def variant(run_dir: Path, dest: Path, **neuron) -> Path:
    """A copy of the run's model file whose neuron parameters are changed (same weights)."""
    tensors, meta = ckpt.load_tensors(run_dir / "model.safetensors")
    meta["config"]["neuron"].update(neuron)
    dest.mkdir()
    ckpt.save_tensors(dest / "model.safetensors", tensors, meta)
    return dest


def bioleaf_reference(run_dir: Path, spikes: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Output spike counts and predictions of our own simulator."""
    cfg, rule = load_model(run_dir)
    with torch.no_grad():
        fwd = simulate(rule.weights, lambda t: spikes[t], batch=spikes[0].shape[0], steps=len(spikes),
                       neuron=cfg.neuron, g_basal=rule.g_basal)
    return fwd.output, predict(fwd.output, fwd.potentials)


# --- snnTorch --------------------------------------------------------------------------------------
# The same recipe is shown in docs/interop.md.

def snntorch_from_nir(path: Path, subtract_reset: bool = True) -> torch.nn.Module:
    """snnTorch's NIR import of ``path``; with ``subtract_reset`` its neurons reset by subtraction
    like bioleaf's (snnTorch's importer resets to zero, as NIR's CubaLIF says)."""
    snn = pytest.importorskip("snntorch")
    pytest.importorskip("nirtorch")
    from snntorch.import_nir import import_from_nir

    net = import_from_nir(nir.read(path))
    if subtract_reset:
        for name, m in list(net.named_children()):
            if isinstance(m, snn.Synaptic):
                beta = float(m.beta)
                # without leak, a reset delayed to the next step is exactly bioleaf's subtraction
                setattr(net, name, snn.Synaptic(alpha=float(m.alpha), beta=beta, threshold=float(m.threshold),
                                                reset_mechanism="subtract", reset_delay=beta == 1.0,
                                                init_hidden=True))
    return net


def run_snntorch(net: torch.nn.Module, spikes: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Output spike counts and predictions (same tie-break) of an imported snnTorch network."""
    import snntorch as snn

    neurons = [m for m in net.modules() if isinstance(m, snn.Synaptic)]
    for m in neurons:  # fresh state: zeros of the right shape at the first step
        m.reset_mem()
    counts = None
    with torch.no_grad():
        for s in spikes:
            out = net(s)
            out = out[0] if isinstance(out, tuple) else out
            counts = out.clone() if counts is None else counts + out
    last = neurons[-1]
    v = last.mem - (out * last.threshold if last.reset_delay and last.reset_mechanism == "subtract" else 0)
    return counts, predict(counts, v)


def agreement(ours: tuple[torch.Tensor, torch.Tensor], theirs: tuple[torch.Tensor, torch.Tensor]) -> tuple[float, float]:
    """(fraction of samples with the same prediction, fraction with identical output counts)."""
    same_pred = (ours[1] == theirs[1]).float().mean().item()
    same_counts = (ours[0] == theirs[0]).all(dim=1).float().mean().item()
    return same_pred, same_counts


def test_graph_holds_weights_and_dynamics(run_dir, nir_file):
    cfg, rule = load_model(run_dir)
    g = nir.read(nir_file)
    assert [(a, b) for a, b in g.edges] == [("input", "W0"), ("W0", "neuron0"), ("neuron0", "W1"),
                                            ("W1", "neuron1"), ("neuron1", "output")]
    for l, w in enumerate(rule.weights):
        assert isinstance(g.nodes[f"W{l}"], nir.Linear)
        np.testing.assert_array_equal(g.nodes[f"W{l}"].weight, w.numpy())
        n = g.nodes[f"neuron{l}"]
        assert isinstance(n, nir.CubaLIF) and n.v_threshold.shape == (w.shape[0],)
        # forward Euler at h = NIR_DT gives back bioleaf's per-step decays and unit gains
        np.testing.assert_allclose(1 - NIR_DT / n.tau_syn, cfg.neuron.lam, rtol=1e-12)
        np.testing.assert_allclose(NIR_DT * n.w_in / n.tau_syn, 1.0, rtol=1e-12)
        np.testing.assert_allclose(NIR_DT * n.r / n.tau_mem, 1.0, rtol=1e-12)
        assert np.float32(1 - NIR_DT / n.tau_mem[0]) == 1.0  # no leak, to float32 precision
        np.testing.assert_array_equal(n.v_threshold, cfg.neuron.threshold)
        assert np.all(n.v_leak == 0) and np.all(n.v_reset == 0) and n.metadata["reset"] == "subtract"
    assert g.metadata["dt"] == NIR_DT and g.metadata["steps"] == cfg.steps
    assert g.metadata["tau_mem_ms"] == "inf" and g.metadata["arch"] == "64-64-10"


def test_snntorch_import_agrees_with_bioleaf(run_dir, nir_file, test_spikes, capsys):
    ours = bioleaf_reference(run_dir, test_spikes)
    assert ours[0].sum() > 0, "the trained network must spike for the comparison to mean anything"
    pred, counts = agreement(ours, run_snntorch(snntorch_from_nir(nir_file), test_spikes))
    raw_pred, raw_counts = agreement(ours, run_snntorch(snntorch_from_nir(nir_file, subtract_reset=False),
                                                        test_spikes))
    with capsys.disabled():
        print(f"\n[export] snnTorch vs bioleaf on {len(ours[1])} digits test samples: predictions {pred:.2%}, "
              f"identical counts {counts:.2%} (subtract reset); as imported (reset to zero): "
              f"predictions {raw_pred:.2%}, identical counts {raw_counts:.2%}")
    assert pred >= 0.99 and counts >= 0.99
    assert raw_pred >= 0.8  # reset to zero loses the overshoot, yet weights and decays are right


def test_snntorch_import_agrees_with_leak(run_dir, test_spikes, tmp_path, capsys):
    leaky = variant(run_dir, tmp_path / "leaky", tau_mem=20.0)
    path = export_run(leaky, "nir", tmp_path / "leaky.nir")
    g = nir.read(path)
    np.testing.assert_allclose(1 - NIR_DT / g.nodes["neuron0"].tau_mem, math.exp(-1 / 20), rtol=1e-12)
    ours = bioleaf_reference(leaky, test_spikes)
    pred, counts = agreement(ours, run_snntorch(snntorch_from_nir(path), test_spikes))
    with capsys.disabled():
        print(f"\n[export] leaky (tau_mem 20 ms): predictions {pred:.2%}, identical counts {counts:.2%}")
    assert pred >= 0.99


@pytest.mark.parametrize("tau_mem", [math.inf, 20.0], ids=["no-leak", "leaky"])
def test_norse_import_agrees_with_bioleaf(run_dir, test_spikes, tmp_path, capsys, tau_mem):
    norse = pytest.importorskip("norse.torch")
    from norse.torch.functional.reset import reset_subtract

    run = run_dir if math.isinf(tau_mem) else variant(run_dir, tmp_path / "leaky", tau_mem=tau_mem)
    g = nir.read(export_run(run, "nir", tmp_path / "m.nir"))
    net = norse.from_nir(g, reset_method=reset_subtract, dt=float(g.metadata["dt"]))
    state, counts = None, None
    with torch.no_grad():
        for s in test_spikes:
            out, state = net(s, state)
            counts = out.clone() if counts is None else counts + out
    lif = state.state["neuron1"]  # ((synapse state, LIF state),) in Norse 1.1
    while not hasattr(lif, "v"):
        lif = lif[-1]
    pred, same = agreement(bioleaf_reference(run, test_spikes), (counts, predict(counts, lif.v)))
    with capsys.disabled():
        print(f"\n[export] Norse vs bioleaf (tau_mem {tau_mem} ms): predictions {pred:.2%}, identical counts {same:.2%}")
    assert pred >= 0.99


def test_cli_export(run_dir, tmp_path, run_cli):
    out = tmp_path / "m.nir"
    code, stdout, err = run_cli("export", str(run_dir), "--format", "nir", "--out", str(out))
    assert (code, err) == (0, "") and stdout.strip() == f"wrote {out}"
    assert isinstance(nir.read(out).nodes["neuron1"], nir.CubaLIF)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.nir"]  # no temporary file left


# --- bad inputs ------------------------------------------------------------------------------------

def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_missing_run_dir(tmp_path):
    with pytest.raises(DataError) as e:
        export_run(tmp_path / "nope", "nir", tmp_path / "m.nir")
    assert one_line(e) == f"{tmp_path / 'nope'}: no such run directory"


def test_missing_model_file(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(DataError) as e:
        export_run(tmp_path / "run", "nir", tmp_path / "m.nir")
    assert one_line(e) == f"{tmp_path / 'run' / 'model.safetensors'}: no such checkpoint file"


def test_foreign_safetensors(tmp_path):
    from safetensors.torch import save_file

    (tmp_path / "run").mkdir()
    save_file({"w": torch.zeros(2, 2)}, str(tmp_path / "run" / "model.safetensors"))
    with pytest.raises(DataError) as e:
        export_run(tmp_path / "run", "nir", tmp_path / "m.nir")
    msg = one_line(e)
    assert msg.startswith(f"{tmp_path / 'run' / 'model.safetensors'}: foreign safetensors file")


def test_corrupt_model_file(tmp_path, run_dir):
    (tmp_path / "run").mkdir()
    blob = (run_dir / "model.safetensors").read_bytes()
    (tmp_path / "run" / "model.safetensors").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError) as e:
        export_run(tmp_path / "run", "nir", tmp_path / "m.nir")
    assert one_line(e).startswith(f"{tmp_path / 'run' / 'model.safetensors'}: not a readable safetensors file")
    assert not (tmp_path / "m.nir").exists()


def test_unknown_format(run_dir, tmp_path):
    with pytest.raises(UsageError) as e:
        export_run(run_dir, "onnx", tmp_path / "m.onnx")
    assert one_line(e) == "--format: expected one of nir, got 'onnx'"


def test_missing_output_directory(run_dir, tmp_path):
    out = tmp_path / "no" / "such" / "m.nir"
    with pytest.raises(UsageError) as e:
        export_run(run_dir, "nir", out)
    assert one_line(e) == f"--out {out}: directory {out.parent} does not exist"


def test_output_is_a_directory(run_dir, tmp_path):
    with pytest.raises(UsageError) as e:
        export_run(run_dir, "nir", tmp_path)
    assert one_line(e).startswith(f"--out {tmp_path}: is a directory")


def test_refractory_model_is_refused(run_dir, tmp_path):
    refr = variant(run_dir, tmp_path / "refr", refractory=2)
    with pytest.raises(UsageError) as e:
        export_run(refr, "nir", tmp_path / "m.nir")
    assert one_line(e) == (f"--format nir: {refr / 'model.safetensors'} uses a refractory period (2 steps), "
                           "which NIR cannot express; only models with --refractory 0 can be exported")


def test_non_finite_weights_are_refused(run_dir, tmp_path):
    tensors, meta = ckpt.load_tensors(run_dir / "model.safetensors")
    tensors["W1"][0, 0] = float("nan")
    (tmp_path / "run").mkdir()
    ckpt.save_tensors(tmp_path / "run" / "model.safetensors", tensors, meta)
    with pytest.raises(DataError) as e:
        export_run(tmp_path / "run", "nir", tmp_path / "m.nir")
    assert one_line(e) == f"{tmp_path / 'run' / 'model.safetensors'}: tensor 'W1' holds non-finite values"


def test_missing_nir_package(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nir", None)  # makes `import nir` raise ImportError
    with pytest.raises(UsageError) as e:
        export_run(run_dir, "nir", tmp_path / "m.nir")
    assert one_line(e) == "--format nir needs the 'nir' package (pip install nir)"


def test_failed_write_keeps_old_file(run_dir, tmp_path, monkeypatch):
    import os

    out = tmp_path / "m.nir"
    out.write_bytes(b"old")

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(UsageError) as e:
        export_run(run_dir, "nir", out)
    assert one_line(e) == f"--out {out}: cannot write (No space left on device)"
    assert out.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["m.nir"]


def test_cli_reports_one_line_errors(run_cli, tmp_path, run_dir):
    code, _, err = run_cli("export", str(tmp_path / "nope"), "--out", str(tmp_path / "m.nir"))
    assert code == 1 and err == f"bioleaf export: error: {tmp_path / 'nope'}: no such run directory\n"
    out = tmp_path / "missing" / "m.nir"
    code, _, err = run_cli("export", str(run_dir), "--out", str(out))
    assert code == 2 and err == f"bioleaf export: error: --out {out}: directory {out.parent} does not exist\n"
