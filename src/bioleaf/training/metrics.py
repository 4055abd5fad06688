"""What training measures and reports: the running sums, one ``metrics.jsonl`` row per epoch, the
warnings of a network that cannot learn, and the run's summary.

Evaluation draws its input spikes from a fresh generator (``seed + 3``) every time, so it never
disturbs training and is itself repeatable.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch

from bioleaf.config import TrainConfig
from bioleaf.data import Dataset
from bioleaf.model.losses import predict
from bioleaf.model.network import Forward
from bioleaf.rules import Rule
from bioleaf.training import checkpoint as ckpt
from bioleaf.training.distributed import BatchFigures

EVAL_BATCH = 1000
PROBE_SAMPLES = 64

Diagnostics = Callable[[Rule, torch.Tensor, torch.Tensor], dict]
"""Extra per-epoch figures for ``metrics.jsonl``: ``diagnostics(rule, images, labels)`` on a fixed probe
batch of training images (e.g. :func:`bioleaf.tools.diagnostics.circuit_diagnostics`)."""


@dataclass
class Progress:
    """Position and running sums, all checkpointed so a resumed run continues them exactly."""

    epoch: int = 0
    batch: int = 0  # batches done in the current epoch
    loss_sum: float = 0.0
    correct: int = 0
    samples: int = 0
    seconds: float = 0.0  # training seconds in the current epoch
    train_seconds: float = 0.0  # all finished epochs
    train_samples: int = 0
    history: list[dict] = field(default_factory=list)

    def add_batch(self, figures: BatchFigures, seconds: float) -> None:
        """Count one more batch of the current epoch, with its figures summed over the ranks."""
        self.seconds += seconds
        self.loss_sum += figures.loss_sum
        self.correct += figures.correct
        self.samples += figures.samples
        self.batch += 1

    def end_epoch(self, row: dict) -> None:
        """Log the finished epoch's ``row`` and start the next epoch's sums at zero."""
        self.history.append(row)
        self.train_seconds += self.seconds
        self.train_samples += self.samples
        self.epoch, self.batch, self.loss_sum, self.correct, self.samples, self.seconds = self.epoch + 1, 0, 0.0, 0, 0, 0.0


def forward_chunks(rule: Rule, x: torch.Tensor, generator: torch.Generator) -> Iterator[Forward]:
    """The teacher-off forward pass of ``x``, ``EVAL_BATCH`` rows at a time, the input spikes drawn from
    ``generator`` in row order."""
    for i in range(0, len(x), EVAL_BATCH):
        yield rule.forward(x[i:i + EVAL_BATCH].to(rule.device), generator)


@torch.no_grad()
def infer_all(rule: Rule, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The predicted class (teacher off) of every row of ``x`` (:func:`forward_chunks`)."""
    chunks = [predict(fwd.output, fwd.potentials) for fwd in forward_chunks(rule, x, generator)]
    return torch.cat(chunks) if chunks else torch.zeros(0, dtype=torch.long, device=rule.device)


@dataclass
class Evaluation:
    """Test-mode figures of a set of images (teacher off): the accuracy and, per hidden layer, the share of its
    cells that never fire on any image (``silent``) and the share of its active (image, cell) counts at the
    cap of one spike per step (``saturated``)."""

    accuracy: float
    silent: list[float]
    saturated: list[float]


class CodeHealth:
    """Running per-layer counts of :class:`Evaluation`'s silent and saturated shares, chunk by chunk, for hidden
    layers of ``widths`` cells."""

    def __init__(self, widths: list[int], steps: int, device: torch.device):
        self.steps = steps
        self.fired = [torch.zeros(n, dtype=torch.bool, device=device) for n in widths]
        self.active, self.capped = [0] * len(widths), [0] * len(widths)

    def add(self, hidden_counts: list[torch.Tensor]) -> None:
        for l, counts in enumerate(hidden_counts):
            self.fired[l] |= (counts > 0).any(dim=0)
            self.active[l] += int((counts > 0).sum())
            self.capped[l] += int((counts >= self.steps).sum())

    def shares(self) -> tuple[list[float], list[float]]:
        silent = [1.0 - float(f.float().mean()) for f in self.fired]
        return silent, [c / a if a else 0.0 for c, a in zip(self.capped, self.active)]


@torch.no_grad()
def evaluate(rule: Rule, x: torch.Tensor, y: torch.Tensor, seed: int, device: torch.device) -> Evaluation:
    """Test-mode figures with a fresh, seeded spike generator (:func:`forward_chunks`)."""
    if len(x) == 0:
        return Evaluation(float("nan"), [], [])
    gen = torch.Generator(device=device).manual_seed(seed + 3)
    health, correct = CodeHealth(rule.sizes[1:-1], rule.cfg.steps, rule.device), 0
    for i, fwd in enumerate(forward_chunks(rule, x, gen)):
        labels = y[i * EVAL_BATCH:(i + 1) * EVAL_BATCH].to(device)
        correct += int((predict(fwd.output, fwd.potentials) == labels).sum())
        health.add(fwd.counts[:-1])
    return Evaluation(correct / len(x), *health.shares())


def accuracy(rule: Rule, x: torch.Tensor, y: torch.Tensor, seed: int, device: torch.device) -> float:
    """Test-mode accuracy (teacher off) with a fresh, seeded spike generator."""
    return evaluate(rule, x, y, seed, device).accuracy


def output_spikes(rule: Rule, x: torch.Tensor, seed: int, steps: int) -> tuple[float, float]:
    """With the teacher off: the mean output spike count per image (0: a silent network) and the fraction of
    output cells, over the images, that fire at 90 % of the steps or more (1: a saturated output)."""
    fwd = rule.forward(x, torch.Generator(device=x.device).manual_seed(seed + 3))
    return float(fwd.output.sum()) / max(len(x), 1), float((fwd.output >= 0.9 * steps).float().mean())


def probe_size(data: Dataset) -> int:
    """How many training images (the first ones) make the probe batch of the per-epoch figures."""
    return min(PROBE_SAMPLES, len(data.train_x))


def epoch_row(rule: Rule, data: Dataset, progress: Progress, cfg: TrainConfig, device: torch.device,
              diagnostics: Diagnostics | None = None) -> dict:
    """The ``metrics.jsonl`` row of the epoch ``progress`` holds the sums of: training loss and accuracy,
    validation and test accuracy, speed, the ``diagnostics`` and the output activity on the probe batch
    (non-finite numbers as ``None``)."""
    st = progress
    row = {"epoch": st.epoch + 1, "train_loss": st.loss_sum / max(st.samples, 1),
           "train_accuracy": st.correct / max(st.samples, 1),
           "val_accuracy": accuracy(rule, data.val_x, data.val_y, cfg.seed, device)}
    test = evaluate(rule, data.test_x, data.test_y, cfg.seed, device)
    row.update({"test_accuracy": test.accuracy, "seconds": st.seconds,
                "samples_per_second": st.samples / max(st.seconds, 1e-9),
                "test_silent_share": test.silent, "test_saturated_share": test.saturated})
    probe = slice(0, probe_size(data))
    probe_x = data.train_x[probe].to(device)
    if diagnostics is not None:
        row.update(diagnostics(rule, probe_x, data.train_y[probe].to(device)))
    row["probe_output_spikes"], row["probe_saturated_fraction"] = output_spikes(rule, probe_x, cfg.seed, cfg.steps)
    return {k: json_finite(v) for k, v in row.items()}


def json_finite(value):
    """``value`` with every non-finite float (also inside lists) replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [json_finite(v) for v in value]
    return value


def write_history(path: Path, history: list[dict]) -> None:
    """``metrics.jsonl``: one JSON object per finished epoch, the whole file rewritten atomically."""
    ckpt.atomic_write_bytes(path, "".join(json.dumps(row) + "\n" for row in history).encode())


def report_epoch(row: dict, epochs: int, n_out: int, probe_samples: int, echo: bool) -> None:
    """The epoch's line (with ``echo``) and a warning per symptom of a network that cannot learn (a
    ``RuntimeWarning`` without ``echo``)."""
    if echo:
        val = "" if row["val_accuracy"] is None else f"  val {row['val_accuracy']:.2%}"
        print(f"epoch {row['epoch']}/{epochs}  loss {row['train_loss']:.4g}  "
              f"train {row['train_accuracy']:.2%}{val}  test {row['test_accuracy']:.2%}  {row['seconds']:.1f}s",
              flush=True)
    for message in symptoms(row, n_out, probe_samples):
        if echo:
            print(f"warning: epoch {row['epoch']}: {message}", file=sys.stderr, flush=True)
        else:
            warnings.warn(f"epoch {row['epoch']}: {message}", RuntimeWarning, stacklevel=3)


def symptoms(row: dict, n_out: int, probe_samples: int) -> list[str]:
    """What the epoch's figures say is wrong, each with the flag most likely to blame: a silent output, a
    saturated one (every cell firing at almost every step), accuracy at chance (``n_out`` classes)."""
    spikes, saturated = row["probe_output_spikes"], row["probe_saturated_fraction"]
    found = []
    if spikes == 0:
        found.append(f"no output cell fired on the {probe_samples} probe images (teacher off): the network is "
                     "silent and spike-count errors cannot reach it; raise --init-scale or --max-rate (a short "
                     "--tau-syn weakens every spike)")
    elif saturated >= 0.3:
        found.append(f"{saturated:.0%} of the output cells fire at 90 % of the steps or more: the output is "
                     "saturated and its counts cannot follow their targets; lower --init-scale or --lr")
    if spikes > 0 and row["test_accuracy"] <= 1.5 / n_out:
        found.append(f"test accuracy {row['test_accuracy']:.2%} is at chance (1/{n_out}): the network does not "
                     "learn; lower --lr (bioleaf: compare --feedback random to tell a feedback problem from a "
                     "learning-rate one)")
    return found


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process: CUDA allocations on a GPU, else the peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def best_epoch(history: list[dict]) -> int:
    """The epoch with the best :func:`ranking_accuracy` (the first of equals)."""
    return max(history, key=ranking_accuracy)["epoch"]


def ranking_accuracy(row: dict) -> float | None:
    """The accuracy that ranks an epoch's ``row``: validation, or test without a validation set."""
    return row["val_accuracy"] if row["val_accuracy"] is not None else row["test_accuracy"]


def run_summary(cfg: TrainConfig, sizes: list[int], device: torch.device, world_size: int,
                progress: Progress) -> dict:
    """``summary.json``: the run's settings, final test accuracy, best epoch, speed and peak memory."""
    circuit = cfg.rule == "bioleaf"
    return {"rule": cfg.rule, "dataset": cfg.dataset, "arch": "-".join(map(str, sizes)),
            "steps": cfg.steps, "epochs": cfg.epochs, "seed": cfg.seed, "batch_size": cfg.batch_size,
            "feedback": cfg.circuit.feedback if circuit else None,
            "interneurons": cfg.circuit.interneurons if circuit else None,
            "idealisations": cfg.idealisations,
            "device": str(device), "world_size": world_size,
            "test_accuracy": progress.history[-1]["test_accuracy"], "best_epoch": best_epoch(progress.history),
            "train_seconds": progress.train_seconds,
            "samples_per_second": progress.train_samples / max(progress.train_seconds, 1e-9),
            "peak_memory_mb": peak_memory_mb(device)}
