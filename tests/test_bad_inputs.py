"""Every user-reachable mistake ends as one line on stderr with the right exit code, never a traceback.

A table of bad inputs (flags, presets, ``--arch`` against the dataset, ``--device``, IDX files,
run directories and checkpoints), each run in-process through ``bioleaf.cli.main`` with the
expected exit code (2: usage, 1: data) and a fragment of the expected message. Arguments and
fragments may name resources (``{run}``, ``{idx_bad_magic}``, ...) that the ``ws`` fixture creates
on first use; ``{fresh}`` is a new, empty output path for every case.

``--debug`` turns the same errors into tracebacks (the last tests).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from bioleaf.training import checkpoint as ckpt
from bioleaf.cli import main
from bioleaf.errors import DataError, UsageError

SMALL = ["--dataset", "digits", "--arch", "64-32-10", "--limit", "300", "--steps", "10", "--epochs", "2",
         "--self-predict-batches", "2", "--no-progress"]
TRAIN = ["train", *SMALL, "--out", "{fresh}"]  # a later --out wins (argparse keeps the last value)


def write_idx(path: Path, array, *, magic: bytes | None = None) -> None:
    array = np.asarray(array, dtype=np.uint8)
    head = magic if magic is not None else b"\x00\x00\x08" + bytes([array.ndim])
    path.write_bytes(head + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes())


def write_idx_dir(directory: Path, n: int = 40, side: int = 8, labels=None) -> Path:
    """The four IDX files of a tiny MNIST-like dataset (random pixels)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    write_idx(directory / "train-images-idx3-ubyte", rng.integers(0, 256, (n, side, side)))
    write_idx(directory / "train-labels-idx1-ubyte", rng.integers(0, 10, n) if labels is None else labels)
    write_idx(directory / "t10k-images-idx3-ubyte", rng.integers(0, 256, (20, side, side)))
    write_idx(directory / "t10k-labels-idx1-ubyte", rng.integers(0, 10, 20))
    return directory


class Workspace(dict):
    """Resources by name, created on first use under one session directory."""

    counter = itertools.count()

    def __init__(self, root: Path):
        super().__init__()
        self.root = root

    def __missing__(self, key: str) -> str:
        if key == "fresh":
            return str(self.root / "fresh" / str(next(self.counter)))
        value = str(getattr(self, f"make_{key}")())
        self[key] = value
        return value

    # ------------------------------------------------------------ runs and files
    def make_run(self) -> Path:
        """A finished two-epoch bioleaf run (never modified by the cases)."""
        out = self.root / "run"
        torch.set_num_threads(1)
        assert main(["train", *SMALL, "--out", str(out)]) == 0
        return out

    def _run_copy(self, name: str) -> Path:
        dest = self.root / name
        shutil.copytree(self["run"], dest)
        return dest

    def make_a_file(self) -> Path:
        path = self.root / "a_file"
        path.write_text("not a directory\n")
        return path

    def make_empty_dir(self) -> Path:
        path = self.root / "empty"
        path.mkdir()
        return path

    def make_eval_truncated(self) -> Path:
        d = self._run_copy("eval_truncated")
        blob = (d / "model.safetensors").read_bytes()
        (d / "model.safetensors").write_bytes(blob[: len(blob) // 2])
        return d

    def make_eval_flipped(self) -> Path:
        d = self._run_copy("eval_flipped")
        blob = bytearray((d / "model.safetensors").read_bytes())
        blob[-10] ^= 0x01  # one bit of the last tensor's data
        (d / "model.safetensors").write_bytes(bytes(blob))
        return d

    def make_eval_foreign(self) -> Path:
        d = self._run_copy("eval_foreign")
        save_file({"weight": torch.zeros(3, 3)}, str(d / "model.safetensors"))
        return d

    def make_eval_checkpoint_as_model(self) -> Path:
        d = self._run_copy("eval_kind")
        shutil.copy(d / "checkpoint.safetensors", d / "model.safetensors")
        return d

    def make_eval_nan(self) -> Path:
        d = self._run_copy("eval_nan")
        tensors, meta = ckpt.load_tensors(d / "model.safetensors")
        tensors["W1"][0, 0] = float("nan")
        ckpt.save_tensors(d / "model.safetensors", tensors, meta)
        return d

    def make_eval_bad_config(self) -> Path:
        d = self._run_copy("eval_bad_config")
        tensors, meta = ckpt.load_tensors(d / "model.safetensors")
        meta["config"]["steps"] = -5
        ckpt.save_tensors(d / "model.safetensors", tensors, meta)
        return d

    def make_eval_no_model(self) -> Path:
        d = self._run_copy("eval_no_model")
        (d / "model.safetensors").unlink()
        return d

    # ----------------------------------------------------------------- IDX files
    def make_idx_bad_magic(self) -> Path:
        d = write_idx_dir(self.root / "idx_bad_magic")
        write_idx(d / "train-images-idx3-ubyte", np.zeros((40, 8, 8)), magic=b"\x12\x34\x08\x03")
        return d

    def make_idx_truncated(self) -> Path:
        d = write_idx_dir(self.root / "idx_truncated")
        blob = (d / "t10k-images-idx3-ubyte").read_bytes()
        (d / "t10k-images-idx3-ubyte").write_bytes(blob[:-7])
        return d

    def make_idx_bad_label(self) -> Path:
        labels = np.zeros(40, dtype=np.uint8)
        labels[5] = 12
        return write_idx_dir(self.root / "idx_bad_label", labels=labels)

    def make_idx_count_mismatch(self) -> Path:
        return write_idx_dir(self.root / "idx_count", labels=np.zeros(39, dtype=np.uint8))

    def make_idx_float_type(self) -> Path:
        d = write_idx_dir(self.root / "idx_float")
        write_idx(d / "train-labels-idx1-ubyte", np.zeros(40), magic=b"\x00\x00\x0d\x01")
        return d

    def make_idx_one_sample(self) -> Path:
        return write_idx_dir(self.root / "idx_one", n=1, labels=np.zeros(1, dtype=np.uint8))

    def make_idx_4x4(self) -> Path:
        return write_idx_dir(self.root / "idx_4x4", side=4)

    def make_idx_missing(self) -> Path:
        d = write_idx_dir(self.root / "idx_missing")
        (d / "t10k-labels-idx1-ubyte").unlink()
        return d

    def make_mnist_run(self) -> Path:
        """A finished one-epoch run on an 8x8 IDX directory (for eval with another --data-dir)."""
        out = self.root / "mnist_run"
        torch.set_num_threads(1)
        argv = ["train", "--dataset", "mnist", "--data-dir", self["idx_ok"], "--arch", "64-8-10", "--steps", "10",
                "--epochs", "1", "--self-predict-batches", "1", "--no-progress", "--out", str(out)]
        with contextlib.redirect_stderr(io.StringIO()):  # random images: its warning of chance accuracy is not the test's
            assert main(argv) == 0
        return out

    def make_idx_ok(self) -> Path:
        return write_idx_dir(self.root / "idx_ok")


USAGE, DATA = 2, 1
T = TRAIN
# (id, argv, exit code, expected fragment of the one stderr line)
CASES = [
    # ---------------------------------------------------------------- training flags: ranges and types
    ("steps-zero", T + ["--steps", "0"], USAGE, "--steps: expected an integer in 1..100000, got 0"),
    ("steps-text", T + ["--steps", "ten"], USAGE, "argument --steps: invalid int value: 'ten'"),
    ("steps-too-many", T + ["--steps", "100001"], USAGE, "--steps: expected an integer in 1..100000"),
    ("epochs-zero", T + ["--epochs", "0"], USAGE, "--epochs: expected an integer in 1..100000, got 0"),
    ("epochs-float", T + ["--epochs", "1.5"], USAGE, "argument --epochs: invalid int value: '1.5'"),
    ("batch-size-zero", T + ["--batch-size", "0"], USAGE, "--batch-size: expected an integer in 1..1000000"),
    ("lr-zero", T + ["--lr", "0"], USAGE, "--lr: expected a finite number > 0, got 0.0"),
    ("lr-negative", T + ["--lr=-0.1"], USAGE, "--lr: expected a finite number > 0, got -0.1"),
    ("lr-nan", T + ["--lr", "nan"], USAGE, "--lr: expected a finite number > 0, got nan"),
    ("lr-inf", T + ["--lr", "1e999"], USAGE, "--lr: expected a finite number > 0, got inf"),
    ("lr-text", T + ["--lr", "fast"], USAGE, "argument --lr: invalid number: 'fast'"),
    ("lr-layers-count", T + ["--lr-layers", "1,0.5,0.2"], USAGE,
     "--lr-layers: expected 2 positive numbers joined by ',', got '1,0.5,0.2'"),
    ("lr-layers-text", T + ["--lr-layers", "1,fast"], USAGE, "--lr-layers: expected positive numbers joined by ','"),
    ("lr-layers-zero", T + ["--lr-layers", "1,0"], USAGE, "--lr-layers: expected positive numbers joined by ','"),
    ("g-apical-layers-count", T + ["--arch", "64-16-16-10", "--g-apical-layers", "0,1,1"], USAGE,
     "--g-apical-layers: expected at most 2 multipliers (one per hidden layer, bottom first) joined by ',', "
     "got '0,1,1'"),
    ("g-apical-layers-text", T + ["--g-apical-layers", "0,strong"], USAGE,
     "--g-apical-layers: expected numbers in [0, 10] joined by ',', got '0,strong'"),
    ("g-apical-layers-negative", T + ["--g-apical-layers=-1,1"], USAGE,
     "--g-apical-layers: expected numbers in [0, 10] joined by ','"),
    ("nudge", T + ["--nudge", "both"], USAGE, "--nudge: expected one of one-sided, two-sided, got 'both'"),
    ("nudge-nudged-reference", T + ["--nudge", "two-sided"], USAGE,
     "--nudge two-sided: needs --error-reference free (and so --interneurons ideal)"),
    ("gate", T + ["--gate", "open"], USAGE, "--gate: expected one of fired, headroom, got 'open'"),
    ("optimizer", T + ["--optimizer", "rmsprop"], USAGE, "--optimizer: expected one of adam, sgd, got 'rmsprop'"),
    ("lr-schedule", T + ["--lr-schedule", "step"], USAGE, "--lr-schedule: expected one of constant, cosine, got 'step'"),
    ("grad-sums", T + ["--rule", "bptt", "--grad-sums", "float16"], USAGE,
     "--grad-sums: expected one of float64, float32, got 'float16'"),
    ("momentum", T + ["--momentum", "1.5"], USAGE, "--momentum: expected a number in [0, 1), got 1.5"),
    ("weight-decay", T + ["--weight-decay=-0.1"], USAGE, "--weight-decay: expected a number in [0, 1), got -0.1"),
    ("seed-negative", T + ["--seed=-1"], USAGE, "--seed: expected an integer in 0..9223372036854775802, got -1"),
    ("seed-huge", T + ["--seed", str(2**70)], USAGE, f"--seed: expected an integer in 0..9223372036854775802, got {2**70}"),
    ("limit-small", T + ["--limit", "5"], USAGE, "--limit: expected an integer in 10..1000000000, got 5"),
    ("threads", T + ["--threads=-1"], USAGE, "--threads: expected an integer in 0..4096, got -1"),
    ("val-fraction", T + ["--val-fraction", "0.9"], USAGE, "--val-fraction: expected a number in [0, 0.5], got 0.9"),
    ("val-fraction-nan", T + ["--val-fraction", "nan"], USAGE, "--val-fraction: expected a number in [0, 0.5], got nan"),
    ("encoder", T + ["--encoder", "morse"], USAGE, "--encoder: expected one of bernoulli, regular, latency, got 'morse'"),
    ("max-rate-zero", T + ["--max-rate", "0"], USAGE, "--max-rate: expected a number in (0, 1], got 0.0"),
    ("max-rate-two", T + ["--max-rate", "2"], USAGE, "--max-rate: expected a number in (0, 1], got 2.0"),
    ("init-scale-zero", T + ["--init-scale", "0"], USAGE, "--init-scale: expected a number in (0, 100.0], got 0.0"),
    ("init-scale-huge", T + ["--init-scale", "1e300"], USAGE, "--init-scale: expected a number in (0, 100.0], got 1e+300"),
    ("threshold", T + ["--threshold", "0"], USAGE, "--threshold: expected a finite value > 0, got 0.0"),
    ("threshold-nan", T + ["--threshold", "nan"], USAGE, "--threshold: expected a finite value > 0, got nan"),
    ("tau-mem", T + ["--tau-mem=-1"], USAGE, "--tau-mem: expected a value > 0 (ms), or inf for no leak, got -1.0"),
    ("tau-syn", T + ["--tau-syn", "0"], USAGE, "--tau-syn: expected a finite value > 0 (ms), got 0.0"),
    ("refractory-negative", T + ["--refractory=-1"], USAGE, "--refractory: expected an integer in 0..100000 (steps), got -1"),
    ("refractory-huge", T + ["--refractory", "1000000000000"], USAGE, "--refractory: expected an integer in 0..100000"),
    ("dt", T + ["--dt", "0"], USAGE, "--dt: expected a finite value > 0 (ms), got 0.0"),
    ("feedback", T + ["--feedback", "mirror"], USAGE, "--feedback: expected one of symmetric, random, learned, direct, got 'mirror'"),
    ("interneurons", T + ["--interneurons", "none"], USAGE, "--interneurons: expected one of learned, ideal, got 'none'"),
    ("error-reference", T + ["--error-reference", "live"], USAGE,
     "--error-reference: expected one of nudged, free, got 'live'"),
    ("error-reference-learned", T + ["--error-reference", "free", "--interneurons", "learned"], USAGE,
     "--error-reference free: needs --interneurons ideal"),
    ("g-basal", T + ["--g-basal", "0"], USAGE, "--g-basal: expected a finite value > 0, got 0.0"),
    ("g-apical", T + ["--g-apical", "11"], USAGE, "--g-apical: expected a value in [0, 10], got 11.0"),
    ("teacher-strength", T + ["--teacher-strength", "2"], USAGE, "--teacher-strength: expected a value in (0, 1]"),
    ("target-high-vs-steps", T + ["--target-high", "11"], USAGE,
     "--steps/--target-high: a cell spikes at most once per step, so --target-high 11.0 needs --steps >= 11, got --steps 10"),
    ("steps-vs-target-high", T + ["--steps", "5"], USAGE, "--steps/--target-high:"),
    ("target-low-above-high", T + ["--target-low", "5", "--target-high", "3"], USAGE,
     "--target-high/--target-low: expected 0 <= low < high <= steps (10) spikes, got low=5.0, high=3.0"),
    ("lr-interneuron", T + ["--lr-interneuron", "1"], USAGE, "--lr-interneuron: expected a number in [0, 1), got 1.0"),
    ("feedback-decay", T + ["--feedback-decay=-2"], USAGE, "--feedback-decay: expected a number in [0, 1000], got -2.0"),
    ("feedback-decay-vs-lr", T + ["--feedback", "learned", "--lr", "0.01", "--feedback-decay", "100"], USAGE,
     "--feedback-decay/--lr: learned feedback shrinks B and W by 1 - lr x decay per step, so 0.01 x 100 must stay below 1"),
    ("self-predict-batches", T + ["--self-predict-batches=-1"], USAGE,
     "--self-predict-batches: expected an integer in 0..10000000, got -1"),
    ("surrogate", T + ["--rule", "bptt", "--surrogate", "relu"], USAGE,
     "--surrogate: expected one of fast-sigmoid, arctan, got 'relu'"),
    ("surrogate-slope", T + ["--surrogate-slope", "0"], USAGE, "--surrogate-slope: expected a number in (0, inf), got 0.0"),
    ("ce-temperature", T + ["--ce-temperature", "inf"], USAGE, "--ce-temperature: expected a number in (0, inf), got inf"),
    ("rule", T + ["--rule", "hebb"], USAGE, "--rule: expected one of bioleaf, stbp, bptt, got 'hebb'"),
    ("dataset", T + ["--dataset", "cifar"], USAGE, "--dataset: expected one of fashion-mnist, mnist, digits, got 'cifar'"),
    ("preset", T + ["--preset", "huge"], USAGE, "--preset: expected one of digits, fashion-mnist-local, fashion-mnist-local-direct, fashion-mnist-one-presentation, fashion-mnist, got 'huge'"),
    ("checkpoint-every", T + ["--checkpoint-every=-1"], USAGE, "--checkpoint-every: expected an integer >= 0, got -1"),
    ("dist-timeout-alone", T + ["--dist-timeout", "5"], USAGE, "--dist-timeout: only meaningful with --distributed"),
    ("unknown-flag", T + ["--learning-rate", "0.1"], USAGE, "unrecognized arguments: --learning-rate 0.1"),
    ("unknown-command", ["fit"], USAGE, "argument command: invalid choice: 'fit'"),
    # ------------------------------------------------------------------- --arch (also against the dataset)
    ("arch-text", T + ["--arch", "64-x-10"], USAGE, "--arch: expected layer sizes joined by '-', like 784-400-400-10, got '64-x-10'"),
    ("arch-one-size", T + ["--arch", "64"], USAGE, "--arch: expected at least two sizes, each in 1..100000, got '64'"),
    ("arch-zero", T + ["--arch", "64-0-10"], USAGE, "--arch: expected at least two sizes, each in 1..100000"),
    ("arch-inputs", T + ["--arch", "784-32-10"], USAGE,
     "--arch: digits needs 64 inputs and 10 outputs (e.g. 64-400-10), got 784-32-10"),
    ("arch-outputs", T + ["--arch", "64-32-5"], USAGE, "--arch: digits needs 64 inputs and 10 outputs"),
    ("arch-too-big", T + ["--arch", "64-100000-100000-10"], USAGE,
     "--arch: 64-100000-100000-10 has 10007400000 bottom-up synapses, more than the supported 300000000"),
    # -------------------------------------------------------------------------------------- --device
    pytest.param(T + ["--device", "cuda"], USAGE, "--device cuda: CUDA is not available on this machine (use --device cpu)",
                 id="device-cuda", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
    ("device-bad-index", T + ["--device", "cuda:x"], USAGE, "--device: expected one of cpu, cuda, cuda:N, got 'cuda:x'"),
    ("device-tpu", T + ["--device", "tpu"], USAGE, "--device: expected one of cpu, cuda, cuda:N, got 'tpu'"),
    # ------------------------------------------------------------------------------ --out and --resume
    ("out-is-a-file", T + ["--out", "{a_file}"], USAGE, "--out {a_file}: exists and is not a directory"),
    ("out-under-a-file", T + ["--out", "{a_file}/sub"], USAGE, "--out {a_file}/sub: cannot create directory"),
    ("out-holds-a-run", T + ["--out", "{run}"], USAGE,
     "--out {run}: already holds a run; add --resume to continue it or --overwrite to replace it"),
    ("resume-nothing", T + ["--out", "{empty_dir}", "--resume"], USAGE,
     "--resume: no checkpoint in {empty_dir} (expected {empty_dir}/checkpoint.safetensors)"),
    ("resume-other-flags", T + ["--out", "{run}", "--resume", "--steps", "12"], USAGE,
     "--resume: the flags differ from the checkpoint in {run}/checkpoint.safetensors: --steps 10 (now 12)"),
    ("resume-other-nested-flag", T + ["--out", "{run}", "--resume", "--tau-syn", "4"], USAGE,
     "--resume: the flags differ from the checkpoint in {run}/checkpoint.safetensors: --tau-syn 5.0 (now 4.0)"),
    ("resume-fewer-epochs", T + ["--out", "{run}", "--resume", "--epochs", "1"], USAGE,
     "--epochs 1: the checkpoint in {run}/checkpoint.safetensors is already at epoch 2"),
    # --------------------------------------------------------------------------- datasets and IDX files
    ("mnist-without-dir", T + ["--dataset", "mnist"], USAGE, "dataset 'mnist' needs --data-dir DIR"),
    ("data-dir-missing", T + ["--dataset", "mnist", "--data-dir", "{fresh}"], DATA, "MNIST not found in"),
    ("idx-file-missing", T + ["--dataset", "mnist", "--data-dir", "{idx_missing}", "--arch", "64-8-10"], DATA,
     "MNIST not found in {idx_missing} (missing t10k-labels-idx1-ubyte.gz)"),
    ("idx-bad-magic", T + ["--dataset", "mnist", "--data-dir", "{idx_bad_magic}", "--arch", "64-8-10"], DATA,
     "{idx_bad_magic}/train-images-idx3-ubyte: not an IDX file: magic number must start with two zero bytes"),
    ("idx-truncated", T + ["--dataset", "mnist", "--data-dir", "{idx_truncated}", "--arch", "64-8-10"], DATA,
     "{idx_truncated}/t10k-images-idx3-ubyte: truncated IDX file"),
    ("idx-label-range", T + ["--dataset", "mnist", "--data-dir", "{idx_bad_label}", "--arch", "64-8-10"], DATA,
     "{idx_bad_label}/train-labels-idx1-ubyte: label 12 at index 5 is out of range, expected 0..9"),
    ("idx-count-mismatch", T + ["--dataset", "mnist", "--data-dir", "{idx_count_mismatch}", "--arch", "64-8-10"],
     DATA, "train-images-idx3-ubyte has 40 images but train-labels-idx1-ubyte has 39 labels"),
    ("idx-data-type", T + ["--dataset", "mnist", "--data-dir", "{idx_float_type}", "--arch", "64-8-10"], DATA,
     "unsupported IDX data type code 0x0d"),
    ("idx-no-training-left", T + ["--dataset", "mnist", "--data-dir", "{idx_one_sample}", "--arch", "64-8-10"], DATA,
     "mnist: no training samples left after holding out 1 for validation"),
    # --------------------------------------------------------------------------- eval: runs and models
    ("eval-no-dir", ["eval", "{fresh}"], DATA, "no such run directory"),
    ("eval-no-model", ["eval", "{eval_no_model}"], DATA, "{eval_no_model}/model.safetensors: no such checkpoint file"),
    ("eval-truncated", ["eval", "{eval_truncated}"], DATA,
     "{eval_truncated}/model.safetensors: not a readable safetensors file"),
    ("eval-bit-flip", ["eval", "{eval_flipped}"], DATA,
     "{eval_flipped}/model.safetensors: corrupted file (integrity digest mismatch"),
    ("eval-foreign", ["eval", "{eval_foreign}"], DATA,
     "{eval_foreign}/model.safetensors: foreign safetensors file (no 'bioleaf' metadata"),
    ("eval-checkpoint-as-model", ["eval", "{eval_checkpoint_as_model}"], DATA,
     "{eval_checkpoint_as_model}/model.safetensors: not a bioleaf model file (kind='checkpoint')"),
    ("eval-nan-weights", ["eval", "{eval_nan}"], DATA, "{eval_nan}/model.safetensors: tensor 'W1' holds non-finite values"),
    ("eval-bad-config", ["eval", "{eval_bad_config}"], DATA,
     "{eval_bad_config}/model.safetensors: bad configuration in the metadata (--steps: expected an integer"),
    ("eval-other-image-size", ["eval", "{mnist_run}", "--data-dir", "{idx_4x4}"], DATA,
     "images have 16 pixels, but the model in {mnist_run} expects 64 inputs (64-8-10)"),
    # ---------------------------------------------------------------------------------- other commands
    ("equivalence-samples", ["check-equivalence", "--dataset", "digits", "--arch", "64-16-10", "--samples", "0"], USAGE,
     "--samples: expected an integer in 1..100000, got 0"),
    ("equivalence-device", ["check-equivalence", "--dataset", "digits", "--arch", "64-16-10", "--device", "cuda"],
     USAGE, "--device cuda: check-equivalence runs on the CPU only (leave --device out)"),
    ("locality-device", ["check-locality", "--dataset", "digits", "--arch", "64-16-10", "--device", "cuda:0"], USAGE,
     "--device cuda:0: check-locality runs on the CPU only (leave --device out)"),
    ("compare-rule", ["compare", "--dataset", "digits", "--rule", "stbp", "--out", "{fresh}"], USAGE,
     "compare: use --rules and --seeds (not --rule/--seed)"),
    ("compare-seeds", ["compare", "--dataset", "digits", "--seeds", "0,x", "--out", "{fresh}"], USAGE,
     "--seeds: expected comma-separated integers, got '0,x'"),
    ("bench-device", ["bench", "--device", "gpu"], USAGE, "--device: expected one of cpu, cuda, cuda:N, got 'gpu'"),
    pytest.param(["bench", "--scaling", "--device", "cuda"], USAGE, "--device cuda: CUDA is not available on this machine",
                 id="bench-device-cuda", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
    ("bench-out-without-scaling", ["bench", "--out", "{fresh}"], USAGE, "--out: only with --scaling"),
    ("bench-budget-without-scaling", ["bench", "--memory-budget", "100"], USAGE, "--memory-budget: only with --scaling"),
    ("bench-budget-zero", ["bench", "--scaling", "--memory-budget", "0", "--out", "{fresh}"], USAGE,
     "--memory-budget: expected a number of MB > 0, got 0.0"),
    ("bench-budget-text", ["bench", "--scaling", "--memory-budget", "lots"], USAGE,
     "argument --memory-budget: invalid number: 'lots'"),
    ("bench-out-under-a-file", ["bench", "--scaling", "--out", "{a_file}/sub"], USAGE,
     "--out {a_file}/sub: cannot create directory"),
]


@pytest.fixture(scope="session")
def ws(tmp_path_factory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("bad_inputs"))


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """``bioleaf ARGV`` in-process: (exit code, stdout, stderr); argparse errors exit via SystemExit."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


PARAMS = [pytest.param(*c[1:], id=c[0]) if isinstance(c[0], str) else c for c in CASES]


@pytest.mark.parametrize("argv, code, fragment", PARAMS)
def test_bad_input(argv, code, fragment, ws, capsys):
    argv = [a.format_map(ws) for a in argv]
    fragment = fragment.format_map(ws)
    got, out, err = run_main(argv, capsys)
    assert "Traceback" not in out + err
    assert got == code, err
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert fragment in err, err


def test_the_table_is_large_and_distinct():
    ids = [p.id for p in PARAMS]
    assert len(ids) == len(set(ids)) and len(ids) >= 30
    assert len({p.values[2] for p in PARAMS}) >= 30


@pytest.mark.parametrize("argv, error", [
    (T + ["--steps", "0"], UsageError),
    (["eval", "{eval_truncated}"], DataError),
], ids=["usage", "data"])
def test_debug_shows_the_traceback(argv, error, ws, capsys):
    with pytest.raises(error):
        main(["--debug", *[a.format_map(ws) for a in argv]])


def test_unexpected_errors_are_one_line_too(ws, capsys, monkeypatch):
    """A bug (here a simulated one) still ends as one line and exit code 1, with how to see the traceback."""
    import bioleaf.training.evaluate

    def broken(*args, **kwargs):
        raise ZeroDivisionError("simulated bug\nsecond line")

    monkeypatch.setattr(bioleaf.training.evaluate, "evaluate_run", broken)
    code, out, err = run_main(["eval", ws["run"]], capsys)
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("bioleaf eval: error: internal error: ZeroDivisionError: simulated bug second line")
    assert "--debug" in err
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "eval", ws["run"]])


def test_out_of_memory_is_one_line(ws, capsys, monkeypatch):
    import bioleaf.training.evaluate

    def oom(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried")

    monkeypatch.setattr(bioleaf.training.evaluate, "evaluate_run", oom)
    code, _, err = run_main(["eval", ws["run"]], capsys)
    assert code == 1 and err == "bioleaf eval: error: out of memory (use a smaller --arch or --batch-size)\n"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_model_trained_on_cuda_evaluates_on_the_cpu(ws, tmp_path, capsys):
    """``--device cuda`` in a model's configuration is not the user's flag: eval falls back to the CPU."""
    run = tmp_path / "gpu_run"
    shutil.copytree(ws["run"], run)
    tensors, meta = ckpt.load_tensors(run / "model.safetensors")
    meta["config"]["device"] = "cuda"
    ckpt.save_tensors(run / "model.safetensors", tensors, meta)
    code, out, err = run_main(["eval", str(run)], capsys)
    assert code == 0 and err == "" and out.startswith("test accuracy")
