"""Robustness of training: kill and resume, corrupted checkpoints, divergence, config fuzzing.

- Kill and resume: real ``python -m bioleaf train`` subprocesses get real signals (SIGTERM, SIGINT,
  SIGKILL) once their checkpoint shows a chosen position (``--checkpoint-every`` writes one after
  every K batches; the test reads the position from the file's JSON header). ``--resume`` then
  continues, and the final weights, optimiser state, RNG states (``torch.equal``, bit for bit) and
  metrics (all but wall-clock seconds) equal those of an uninterrupted run with the same seed.
  Every run is single-threaded (``OMP_NUM_THREADS=1`` in the subprocesses, ``torch.set_num_threads(1)``
  in this process), so the uninterrupted reference and the final resume run in-process (cheaper:
  no second interpreter start); the stbp test also resumes in subprocesses. The subprocesses read
  the bundled digits written as IDX files (``--dataset mnist --data-dir``), which spares each of
  them the scikit-learn import.
- A second SIGINT stops at once and leaves the last checkpoint whole and loadable.
- Corrupted checkpoints (truncated, bit-flipped, foreign, wrong shape/dtype, missing tensor) are
  refused with one line naming the file and the problem, exit code 1.
- NaN/Inf (a diverging ``--lr``, or values injected after a given batch) stops training with a
  message naming rule, tensor, layer, epoch and batch; the last good checkpoint still loads and
  resumes to the same result as an uninterrupted run.
- Hypothesis fuzzes ``TrainConfig.validate`` and the CLI flags: every value gives either a valid
  config or a one-line ``UsageError`` naming the flag, never another exception.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from bioleaf.training import checkpoint as ckpt
from bioleaf.cli import main
from bioleaf.cli.parser import build_parser, config_from_args
from bioleaf.config import TRAIN_FLAGS, TrainConfig, flag_of
from bioleaf.data import load_dataset
from bioleaf.errors import UsageError
from bioleaf.model.circuit import CircuitParams
from bioleaf.model.losses import CountTargets
from bioleaf.model.neurons import NeuronParams

CKPT = "checkpoint.safetensors"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
SMALL = ["--dataset", "digits", "--arch", "64-32-10", "--limit", "300", "--steps", "10",
         "--self-predict-batches", "2", "--no-progress"]
# 270 training samples: 17 batches of 16 per epoch (bioleaf), 34 batches of 8 (stbp); the data flags come from
# the digits_idx fixture
KILL_RUN = {"bioleaf": ["--rule", "bioleaf", "--epochs", "3", "--batch-size", "16", "--checkpoint-every", "1"],
            "stbp": ["--rule", "stbp", "--epochs", "3", "--batch-size", "8", "--checkpoint-every", "3",
                     "--lr-schedule", "cosine"]}  # the resumed runs also continue the schedule where it stopped
TIMEOUT = 120
WALL_CLOCK = {"seconds", "samples_per_second", "train_seconds", "peak_memory_mb"}


# --------------------------------------------------------------------------------------- helpers
def train_cmd(flags: list[str], out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bioleaf", "train", *flags, "--out", str(out), *extra]


def position(path: Path) -> tuple[int, int] | None:
    """(epoch, batch) of the checkpoint at ``path``, read from its JSON header only (None if absent).
    Checkpoints are replaced by a rename, so the bytes read are always one whole file."""
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return None
    size = int.from_bytes(blob[:8], "little")
    meta = json.loads(json.loads(blob[8:8 + size])["__metadata__"]["bioleaf"])
    return meta["progress"]["epoch"], meta["progress"]["batch"]


def run_until(cmd: list[str], out: Path, target: tuple[int, int], sig: int) -> tuple[int, str]:
    """Start ``cmd``; once its checkpoint is at ``target`` or later, send ``sig``; (exit code, stderr)."""
    start = position(out / CKPT)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            pos = position(out / CKPT)
            if pos is not None and pos != start and pos >= target:
                break
            if proc.poll() is not None:
                pytest.fail(f"training ended (exit {proc.returncode}) before reaching {target}: {proc.stderr.read()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no checkpoint at {target} after {TIMEOUT} s")
            time.sleep(0.002)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


def train_here(flags: list[str], out: Path, *extra: str) -> None:
    """``bioleaf train`` in this process, single-threaded like the subprocesses; it must succeed."""
    torch.set_num_threads(1)
    assert main(["train", *flags, "--out", str(out), *extra]) == 0


def strip_clock(value):
    """``value`` without its wall-clock fields (seconds, throughput, memory)."""
    if isinstance(value, dict):
        return {k: strip_clock(v) for k, v in value.items() if k not in WALL_CLOCK}
    if isinstance(value, list):
        return [strip_clock(v) for v in value]
    return value


def assert_same_run(ref: Path, got: Path) -> None:
    """Bit-identical tensors (checkpoint: weights, optimiser, RNG; model) and identical metrics."""
    for name in (CKPT, "model.safetensors"):
        a, meta_a = ckpt.load_tensors(ref / name)
        b, meta_b = ckpt.load_tensors(got / name)
        assert a.keys() == b.keys(), name
        differ = [k for k in a if not torch.equal(a[k], b[k])]
        assert not differ, f"{name}: tensors differ: {differ}"
        assert strip_clock(meta_a) == strip_clock(meta_b), name
    read = lambda p: [json.loads(line) for line in p.read_text().splitlines()]  # noqa: E731
    assert strip_clock(read(ref / "metrics.jsonl")) == strip_clock(read(got / "metrics.jsonl"))
    assert strip_clock(json.loads((ref / "summary.json").read_text())) == \
        strip_clock(json.loads((got / "summary.json").read_text()))


def one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1 and "Traceback" not in err, err
    return err[:-1]


@pytest.fixture(scope="module")
def digits_idx(tmp_path_factory) -> list[str]:
    """SMALL's flags, but with the bundled digits written as IDX files (``--dataset mnist --data-dir``):
    a subprocess then does not import scikit-learn, which costs as much as importing torch."""
    directory = tmp_path_factory.mktemp("digits_idx")
    data = load_dataset("digits", val_fraction=0.0)
    for prefix, x, y in (("train", data.train_x, data.train_y), ("t10k", data.test_x, data.test_y)):
        pixels = (x * 255).round().to(torch.uint8).reshape(-1, 8, 8).numpy()
        (directory / f"{prefix}-images-idx3-ubyte").write_bytes(
            b"\x00\x00\x08\x03" + struct.pack(">3I", *pixels.shape) + pixels.tobytes())
        (directory / f"{prefix}-labels-idx1-ubyte").write_bytes(
            b"\x00\x00\x08\x01" + struct.pack(">I", len(y)) + y.to(torch.uint8).numpy().tobytes())
    return ["--dataset", "mnist", "--data-dir", str(directory), *SMALL[2:]]


@pytest.fixture(scope="module")
def kill_flags(digits_idx):
    """The training flags of the kill-and-resume tests for ``rule``."""
    return lambda rule: digits_idx + KILL_RUN[rule]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, kill_flags):
    """Uninterrupted runs with kill_flags(rule), made once per rule."""
    runs: dict[str, Path] = {}

    def get(rule: str) -> Path:
        if rule not in runs:
            out = tmp_path_factory.mktemp(f"ref_{rule}") / "run"
            train_here(kill_flags(rule), out)
            runs[rule] = out
        return runs[rule]

    return get


# ------------------------------------------------------------------------------ kill and resume
@pytest.mark.parametrize("sig, target", [
    (signal.SIGTERM, (0, 3)),  # early in the first epoch
    (signal.SIGINT, (1, 2)),  # just after an epoch boundary
    (signal.SIGTERM, (1, 14)),  # late in the second epoch
], ids=["sigterm-epoch1-batch3", "sigint-epoch2-batch2", "sigterm-epoch2-batch14"])
def test_bioleaf_killed_mid_epoch_resumes_to_identical_weights(sig, target, kill_flags, reference, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_until(train_cmd(kill_flags("bioleaf"), out), out, target, sig)
    line = one_line(err)
    stopped = position(out / CKPT)
    assert code == 130, err
    assert line == (f"bioleaf train: error: {signal.Signals(sig).name}: stopped at epoch {stopped[0] + 1}, "
                    f"batch {stopped[1]}; checkpoint saved in {out / CKPT}; continue with the same command plus --resume")
    assert target <= stopped < (3, 0) and stopped[1] > 0  # mid-epoch, before the end
    assert not list(out.glob(".*.tmp"))  # no temporary file left behind
    train_here(kill_flags("bioleaf"), out, "--resume")
    assert_same_run(reference("bioleaf"), out)


def test_stbp_killed_three_times_resumes_to_identical_weights(kill_flags, reference, tmp_path, capsys):
    """One stbp run stopped at three points (SIGINT, SIGKILL, SIGTERM), resumed after each; with
    SIGKILL nothing is saved at the stop: the resume starts from the last periodic checkpoint."""
    out = tmp_path / "run"
    cmd = train_cmd(kill_flags("stbp"), out)
    code, err = run_until(cmd, out, (0, 6), signal.SIGINT)
    assert code == 130 and "SIGINT: stopped at epoch 1" in one_line(err)
    code, err = run_until(cmd + ["--resume"], out, (1, 9), signal.SIGKILL)
    assert code == -signal.SIGKILL
    killed_at = position(out / CKPT)  # the last whole checkpoint before the kill
    ckpt.load_tensors(out / CKPT)
    assert killed_at >= (1, 9)
    for leftover in out.glob(".*.tmp"):  # a write cut short by SIGKILL may leave its temporary file
        leftover.unlink()
    code, err = run_until(cmd + ["--resume"], out, (1, 27), signal.SIGTERM)
    assert code == 130 and "SIGTERM: stopped at epoch 2" in one_line(err)
    train_here(kill_flags("stbp"), out, "--resume")
    assert_same_run(reference("stbp"), out)


def test_second_sigint_exits_at_once_and_keeps_the_checkpoint(digits_idx, tmp_path, capsys):
    """One long batch per epoch: the first SIGINT asks to stop after it, the second stops at once."""
    out = tmp_path / "run"
    flags = digits_idx + ["--arch", "64-512-10", "--steps", "100", "--batch-size", "270", "--epochs", "3",
                          "--self-predict-batches", "1"]
    proc = subprocess.Popen(train_cmd(flags, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline = time.monotonic() + TIMEOUT
        while position(out / CKPT) is None:  # the end of epoch 1
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "timeout"
            time.sleep(0.002)
        before = (out / CKPT).read_bytes()
        proc.send_signal(signal.SIGINT)
        time.sleep(0.15)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    err = "".join(line for line in err.splitlines(True) if not line.startswith("warning: epoch"))  # one batch: chance
    assert one_line(err) == (f"bioleaf train: interrupted; the last checkpoint {out / CKPT} is intact: "
                             "continue with the same command plus --resume")
    assert (out / CKPT).read_bytes() == before and position(out / CKPT) == (1, 0)
    assert not list(out.glob(".*.tmp"))
    train_here(flags, out, "--resume", "--epochs", "1")  # loads the checkpoint and finishes


def test_atomic_write_keeps_the_previous_file_when_interrupted(tmp_path, monkeypatch):
    """A write that fails half-way (here: the rename raises, as after a second SIGINT) leaves the
    previous file byte for byte and no temporary file."""
    path = tmp_path / CKPT
    ckpt.save_tensors(path, {"w": torch.ones(3)}, {"kind": "test"})
    before = path.read_bytes()

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_tensors(path, {"w": torch.zeros(3)}, {"kind": "test"})
    assert path.read_bytes() == before and os.listdir(tmp_path) == [CKPT]


# -------------------------------------------------------------------------- corrupted checkpoints
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    torch.set_num_threads(1)
    assert main(["train", *SMALL, "--epochs", "1", "--out", str(out)]) == 0
    return out


def _truncate(path: Path) -> None:
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 3])


def _flip_data_bit(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[len(blob) - 100] ^= 0x10  # inside the tensor data, which safetensors itself does not check
    path.write_bytes(bytes(blob))


def _flip_header_bit(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    size = int.from_bytes(blob[:8], "little")
    at = blob.index(b"progress", 8, 8 + size) + 3  # a letter inside the JSON metadata
    blob[at] ^= 0x01
    path.write_bytes(bytes(blob))


def _foreign(path: Path) -> None:
    save_file({"net.W0": torch.zeros(32, 64)}, str(path))


def _resave(change):
    def corrupt(path: Path) -> None:
        tensors, meta = ckpt.load_tensors(path)
        change(tensors, meta)
        ckpt.save_tensors(path, tensors, meta)
    return corrupt


def _drop(name):
    return _resave(lambda t, m: t.pop(name))


def _set(name, value):
    return _resave(lambda t, m: t.__setitem__(name, value(t[name])))


CORRUPTIONS = [
    ("truncated", _truncate, "{p}: not a readable safetensors file"),
    ("empty", lambda p: p.write_bytes(b""), "{p}: not a readable safetensors file"),
    ("bit-flip-data", _flip_data_bit, "{p}: corrupted file (integrity digest mismatch: the contents changed after writing)"),
    ("bit-flip-metadata", _flip_header_bit, "{p}: corrupted file (integrity digest mismatch"),
    ("foreign", _foreign, "{p}: foreign safetensors file (no 'bioleaf' metadata; not written by bioleaf)"),
    ("not-safetensors", lambda p: p.write_text('{"weights": [1, 2, 3]}\n'), "{p}: not a readable safetensors file"),
    ("missing-tensor", _drop("net.W1"), "{p}: missing tensor 'W1'"),
    ("wrong-shape", _set("net.W0", lambda t: torch.zeros(16, 64)),
     "{p}: tensor 'W0' has shape (16, 64) torch.float32, expected (32, 64) torch.float32"),
    ("wrong-dtype", _set("net.W0", lambda t: t.double()),
     "{p}: tensor 'W0' has shape (32, 64) torch.float64, expected (32, 64) torch.float32"),
    ("non-finite", _set("net.P0", lambda t: t.fill_(math.inf)), "{p}: tensor 'P0' holds non-finite values"),
    ("extra-tensor", _resave(lambda t, m: t.__setitem__("net.W9", torch.zeros(2))), "{p}: unexpected tensors ['W9']"),
    ("optimizer-shape", _set("opt.0.exp_avg", lambda t: torch.zeros(3)),
     "{p}: optimiser state 'exp_avg' of parameter 0 has shape (3,), which does not fit this run"),
    ("missing-rng", _drop("rng.spikes"), "{p}: incomplete checkpoint ('rng.spikes')"),
    ("model-not-checkpoint", lambda p: shutil.copy(p.parent / "model.safetensors", p),
     "{p}: not a training checkpoint (kind='model')"),
]


@pytest.mark.parametrize("corrupt, expected", [c[1:] for c in CORRUPTIONS], ids=[c[0] for c in CORRUPTIONS])
def test_corrupted_checkpoint_is_refused(corrupt, expected, finished_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    corrupt(out / CKPT)
    before = (out / CKPT).read_bytes()
    code = main(["train", *SMALL, "--epochs", "2", "--out", str(out), "--resume"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert one_line(err).startswith("bioleaf train: error: " + expected.format(p=out / CKPT))
    assert (out / CKPT).read_bytes() == before  # a refused checkpoint is left as it was


# ------------------------------------------------------------------------------------ divergence
def test_diverging_lr_names_rule_layer_epoch_batch_and_keeps_the_last_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    torch.set_num_threads(1)
    code = main(["train", *SMALL, "--rule", "stbp", "--optimizer", "sgd", "--lr", "1e30", "--epochs", "1",
                 "--checkpoint-every", "1", "--out", str(out)])
    err = one_line(capsys.readouterr().err)
    assert code == 1
    assert err == (f"bioleaf train: error: rule stbp: non-finite values in W0 (layer 0) at epoch 1, batch 2; the last "
                   f"good checkpoint {out / CKPT} is kept (lower --lr or --teacher-strength)")
    tensors, meta = ckpt.load_tensors(out / CKPT)  # whole, and from before the bad batch
    assert (meta["progress"]["epoch"], meta["progress"]["batch"]) == (0, 1)
    assert all(bool(torch.isfinite(t).all()) for t in tensors.values() if t.is_floating_point())


def _inject_after(monkeypatch, rule_cls, when: int, poison) -> None:
    """Patch ``rule_cls.train_batch`` so that ``poison(rule)`` runs after its batch number ``when`` (0-based)."""
    original = rule_cls.train_batch
    calls = {"n": 0}

    def patched(self, images, labels, generator):
        stats = original(self, images, labels, generator)
        if calls["n"] == when:
            poison(self)
        calls["n"] += 1
        return stats

    monkeypatch.setattr(rule_cls, "train_batch", patched)


def _nan_in(name):
    def poison(rule):
        with torch.no_grad():
            rule.tensors()[name].view(-1)[0] = math.nan
    return poison


def _nan_in_optimizer(rule):
    state = rule.optimizer.state[rule.tensors()["W0"]]
    state["exp_avg_sq"].view(-1)[0] = math.inf


def _nan_in_apical(rule):
    rule.last_apical_residual = [math.nan]


NAN_RUN = SMALL + ["--epochs", "2", "--batch-size", "16", "--checkpoint-every", "1"]


@pytest.fixture(scope="module")
def nan_reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("nan_ref") / "run"
    train_here(NAN_RUN, out)
    return out


@pytest.mark.parametrize("poison, what", [
    (_nan_in("W1"), "W1 (layer 1)"),
    (_nan_in("Q0"), "Q0 (layer 0)"),
    (_nan_in_optimizer, "the optimiser's exp_avg_sq of W0 (layer 0)"),
    (_nan_in_apical, "the apical potentials (layer 0)"),
], ids=["weight", "interneuron-weight", "update", "potential"])
def test_nan_injected_mid_training_is_caught_and_the_checkpoint_resumes(poison, what, nan_reference, tmp_path,
                                                                        capsys, monkeypatch):
    """17 batches per epoch: the poison lands after the 20th batch (epoch 2, batch 3). The last good
    checkpoint (epoch 2, batch 2) resumes, without the poison, to the uninterrupted result."""
    from bioleaf.rules.bioleaf import BioleafRule

    torch.set_num_threads(1)
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        _inject_after(m, BioleafRule, 19, poison)
        code = main(["train", *NAN_RUN, "--out", str(out)])
    err = one_line(capsys.readouterr().err)
    assert code == 1
    assert err == (f"bioleaf train: error: rule bioleaf: non-finite values in {what} at epoch 2, batch 3; the last "
                   f"good checkpoint {out / CKPT} is kept (lower --lr or --teacher-strength)")
    assert position(out / CKPT) == (1, 2)
    train_here(NAN_RUN, out, "--resume")
    assert_same_run(nan_reference, out)


def test_divergence_before_any_checkpoint_says_so(tmp_path, capsys, monkeypatch):
    from bioleaf.rules.stbp import StbpRule

    torch.set_num_threads(1)
    _inject_after(monkeypatch, StbpRule, 0, _nan_in("W0"))
    code = main(["train", *SMALL, "--rule", "stbp", "--epochs", "1", "--out", str(tmp_path / "run")])
    err = one_line(capsys.readouterr().err)
    assert code == 1 and err.endswith("at epoch 1, batch 1; no checkpoint had been written yet "
                                      "(lower --lr or --teacher-strength)")
    assert not (tmp_path / "run" / CKPT).exists()


# ---------------------------------------------------------------------------- config fuzzing
NESTED = {**{f"neuron.{n}": n for n in NeuronParams._fields},
          **{f"circuit.{f.name}": f.name for f in dataclasses.fields(CircuitParams)},
          **{f"targets.{f.name}": f.name for f in dataclasses.fields(CountTargets)}}
TOP = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("neuron", "circuit", "targets")]
CHOICES = {"rule": ["bioleaf", "stbp", "bptt"], "dataset": ["digits", "mnist", "fashion-mnist"],
           "optimizer": ["adam", "sgd"], "surrogate": ["fast-sigmoid", "arctan"], "device": ["cpu", "cuda", "cuda:0"],
           "encoder": ["bernoulli", "regular", "latency"], "circuit.feedback": ["symmetric", "random", "learned"],
           "circuit.interneurons": ["learned", "ideal"], "arch": ["64-32-10", "1-1", "64--10", "64-200000-10"],
           "lr_layers": ["1,0.5", "1", "0,1", "a,b"], "data_dir": ["/tmp", ""],
           "circuit.g_apical_layers": ["0,1", "1", "0", "-1", "a,1", "11"],
           "circuit.nudge": ["one-sided", "two-sided", "both"],
           "circuit.error_reference": ["nudged", "free"],
           "grad_sums": ["float32", "float64", "float16"], "lr_schedule": ["constant", "cosine", "step"]}
ANYTHING = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=10), st.lists(st.integers(), max_size=2),
    st.integers(min_value=-3, max_value=30), st.floats(min_value=-2, max_value=30))


def value_for(field: str):
    plausible = st.sampled_from(CHOICES[field]) if field in CHOICES else st.sampled_from([0, 1, 0.5, 1e-3, 10, 2.0])
    return st.one_of(ANYTHING, plausible)


def config_with(changes: dict) -> TrainConfig:
    """``TrainConfig.with_values`` (the preset/flag path), checked to set exactly the changed fields."""
    base = TrainConfig(dataset="digits")
    cfg = base.with_values(changes)
    for key in TOP + list(NESTED):
        group, _, name = key.rpartition(".")
        got = getattr(getattr(cfg, group) if group else cfg, name)
        assert got is changes[key] if key in changes else got == getattr(getattr(base, group) if group else base, name)
    return cfg


def named_flags(message: str) -> set[str]:
    """The flags a UsageError names at its start: ``"--steps/--target-high: ..."`` -> both."""
    return set(message.split(": ", 1)[0].split(" ", 1)[0].split("/"))


FIELDS = st.lists(st.sampled_from(TOP + list(NESTED)), unique=True, min_size=1, max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FIELDS.flatmap(lambda keys: st.fixed_dictionaries({k: value_for(k) for k in keys})))
def test_fuzzed_config_is_valid_or_a_usage_error_naming_the_flag(changes):
    cfg = config_with(changes)
    try:
        cfg.validate()
    except UsageError as e:
        message = str(e)
        assert "\n" not in message
        expected = {flag_of(k) for k in changes} | {"config"}
        assert named_flags(message) & expected, (message, changes)
        return
    # a valid config survives the JSON round trip of config.json and checkpoints, and stays valid
    again = TrainConfig.from_json(json.loads(json.dumps(cfg.to_json(), allow_nan=False)))
    assert again == cfg and again.validate() == cfg


TOKENS = st.one_of(
    st.sampled_from(["0", "1", "-1", "10", "0.5", "2", "nan", "inf", "-inf", "1e999", "1e-300", "abc", "", "0x10",
                     "1,2", "1,0.5", "64-32-10", "64-0-10", "cuda", "cuda:x", "cpu", "symmetric", "learned", "ideal",
                     "adam", "sgd", "regular", "arctan", "100000", str(2**64), "1.5", " 3", "True", "None"]),
    st.text(max_size=8))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(sorted(TRAIN_FLAGS)), unique=True, min_size=1, max_size=3).flatmap(
    lambda flags: st.tuples(st.just(flags), st.lists(TOKENS, min_size=len(flags), max_size=len(flags)))))
def test_fuzzed_cli_flags_give_a_config_or_one_usage_line(flags_and_values):
    flags, values = flags_and_values
    argv = ["train", "--dataset", "digits"] + [f"{f}={v}" for f, v in zip(flags, values)]
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse: a value of the wrong type
        assert e.code == 2
        line = stderr.getvalue()
        assert line.count("\n") == 1 and any(f"argument {f}:" in line for f in flags), line
        return
    try:
        cfg = config_from_args(args)
    except UsageError as e:
        assert "\n" not in str(e)
        assert named_flags(str(e)) & set(flags), (str(e), flags, values)
        return
    assert isinstance(cfg, TrainConfig)


@given(st.floats(0, 1), st.floats(0, 1))
def test_cosine_schedule_falls_from_one_to_zero(a, b):
    cosine, constant = TrainConfig(lr_schedule="cosine").validate(), TrainConfig().validate()
    lo, hi = sorted((a, b))
    assert 0 <= cosine.lr_factor(hi) <= cosine.lr_factor(lo) <= 1
    assert cosine.lr_factor(0) == 1 and abs(cosine.lr_factor(1)) < 1e-12 and constant.lr_factor(hi) == 1
