"""The training loop shared by every rule: data order, the epochs and their batches.

Output directory (``--out``)::

    config.json          the full configuration (written first)
    metrics.jsonl        one JSON object per finished epoch
    checkpoint.safetensors  everything needed to resume (weights, optimiser, RNG states, position)
    model.safetensors    the trained inference network (W) with its configuration
    summary.json         the final figures (written last)

Every file is written atomically (temporary file, fsync, rename), so an interrupted run never
leaves a half-written file behind. Randomness comes from three generators derived from the seed:
initial weights (``seed``), data order (``seed+1``) and input spikes (``seed+2``); evaluation uses a
fresh generator (``seed+3``) each time, so it never disturbs training and is itself repeatable.

The loop's parts live beside it: :mod:`~bioleaf.training.metrics` (epoch rows, warnings, summary),
:mod:`~bioleaf.training.resume` (output directory, checkpoints), :mod:`~bioleaf.training.stops`
(signals, divergence) and :mod:`~bioleaf.training.distributed` (shards and sums over ranks).
"""

from __future__ import annotations

import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import NoReturn

import torch
from tqdm import tqdm

from bioleaf.config import TrainConfig
from bioleaf.data import Dataset
from bioleaf.errors import DataError, DivergenceError, UsageError
from bioleaf.rules import BatchStats, make_rule
from bioleaf.training import checkpoint as ckpt
from bioleaf.training import metrics
from bioleaf.training.distributed import BatchFigures, Parallel
from bioleaf.training.metrics import Diagnostics, Progress
from bioleaf.training.resume import Position, read_on_every_rank, write_checkpoint
from bioleaf.training.stops import Interrupted, StopRequest, check_finite


def resolve_device(name: str) -> torch.device:
    """``cpu`` or ``cuda[:N]``; a clear error when CUDA is asked for but absent."""
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
        return dev
    return torch.device("cpu")


class Trainer:
    """Runs one configuration to completion (or to a clean stop), writing its files into ``out``.

    ``out=None`` writes nothing (the history stays in :attr:`state`); ``progress`` shows a progress bar,
    ``echo`` prints one line per epoch and warnings to the terminal, ``signals`` turns SIGINT/SIGTERM
    into a clean stop with a checkpoint (the CLI's; a library call leaves the process's handlers alone),
    ``diagnostics`` adds its figures on a probe batch to every epoch's row.
    Thread counts and torch's global seed are not touched: that is the caller's (the CLI's) business.
    """

    def __init__(self, cfg: TrainConfig, data: Dataset, out: Path | None = None, *, checkpoint_every: int = 0,
                 progress: bool = False, parallel: Parallel | None = None, echo: bool = False,
                 signals: bool = False, diagnostics: Diagnostics | None = None):
        self.cfg, self.data, self.out = cfg, data, None if out is None else Path(out)
        self.checkpoint_every, self.show_progress = checkpoint_every, progress
        self.echo, self.signals, self.diagnostics = echo, signals, diagnostics
        self.par = parallel or Parallel()
        self.device = resolve_device(cfg.device)
        self.sizes = cfg.sizes(data.input_size, data.num_classes)
        if len(data.train_x) == 0:
            raise DataError(f"{cfg.dataset}: no training samples left after holding out {len(data.val_x)} for "
                            "validation (use more samples, --limit or a smaller --val-fraction)")
        self.rule = make_rule(cfg, self.sizes, torch.Generator().manual_seed(cfg.seed), self.device)
        self.order_gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.spike_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 2)
        self.epoch_order_state = self.order_gen.get_state()
        self.state = Progress()
        self.par.attach(self.rule)

    # ----------------------------------------------------------------- files
    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files (rank 0, with an output directory)."""
        return self.out is not None and self.par.is_main

    @property
    def checkpoint_path(self) -> Path | None:
        """``checkpoint.safetensors`` in the output directory (``None`` without one)."""
        return None if self.out is None else self.out / "checkpoint.safetensors"

    def save_checkpoint(self) -> None:
        """Write the checkpoint of the current position (rank 0, with an output directory)."""
        if self.writes:
            position = Position(self.state, self.epoch_order_state, self.spike_gen)
            write_checkpoint(self.checkpoint_path, self.cfg, self.sizes, self.rule, position)

    def load_checkpoint(self) -> None:
        """Load ``checkpoint.safetensors``. In data-parallel training every rank loads it, and the ranks
        check that they all loaded the very same file; otherwise every rank stops with an error."""
        position = read_on_every_rank(self.par, self.checkpoint_path, self.cfg, self.rule, self.spike_gen)
        self.state, self.epoch_order_state = position.progress, position.order_state

    def save_model(self) -> None:
        """Write ``model.safetensors``: the synapses with the configuration (rank 0, with an output directory)."""
        if self.writes:
            meta = {"kind": "model", "config": self.cfg.to_json(), "sizes": self.sizes}
            ckpt.save_tensors(self.out / "model.safetensors", self.rule.synapses(), meta)

    # ------------------------------------------------------------------ loop
    def run(self, resume: bool = False) -> dict:
        """Train; returns the summary (also written to ``summary.json``)."""
        if resume:
            self.load_checkpoint()
        elif self.writes:
            ckpt.atomic_write_json(self.out / "config.json", self.cfg.to_json())
        self.self_predicting_phase()
        stop = StopRequest()
        with stop.installed() if self.signals else nullcontext():
            while self.state.epoch < self.cfg.epochs:
                self._epoch(stop)
        return self._finish()

    def self_predicting_phase(self) -> None:
        """The initial self-predicting phase of a rule with learned lateral synapses: one teacher-free
        presentation of each of ``self_predict_batches`` different random training batches (drawn, with
        their spikes, from a generator of their own, seed + 5: the epochs' data order and spikes are those
        of a run without the phase). Ranks draw the same batches and simulate their shards."""
        left = self.rule.self_predicting_batches()
        if not left:
            return
        data, size = self.data, min(self.cfg.batch_size, len(self.data.train_x))
        order_gen = torch.Generator().manual_seed(self.cfg.seed + 5)
        spike_gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed + 5)
        order = torch.randperm(len(data.train_x), generator=order_gen)
        starts = [(i * size) % (len(order) - size + 1) for i in range(left)]
        for start in starts:
            idx = order[start:start + size]
            self.par.assign_shard(self.rule, len(idx))
            self.rule.self_predict(data.train_x[idx].to(self.device), spike_gen)

    def _epoch(self, stop: StopRequest) -> None:
        """Train the rest of the current epoch batch by batch, then log it."""
        cfg, st = self.cfg, self.state
        self.order_gen.set_state(self.epoch_order_state)
        order = torch.randperm(len(self.data.train_x), generator=self.order_gen)
        n_batches = math.ceil(len(order) / cfg.batch_size)
        bar = tqdm(total=n_batches, initial=st.batch, desc=f"epoch {st.epoch + 1}/{cfg.epochs}", unit="batch",
                   disable=not (self.show_progress and self.par.is_main), leave=False, file=sys.stderr)
        while st.batch < n_batches:
            x, y = self._prepare_batch(order[st.batch * cfg.batch_size:(st.batch + 1) * cfg.batch_size], n_batches)
            t0 = time.perf_counter()
            figures = self._learn(x, y, stop)
            st.add_batch(figures, time.perf_counter() - t0)
            bar.update(1)
            bar.set_postfix(loss=f"{st.loss_sum / st.samples:.4g}", acc=f"{st.correct / st.samples:.3f}")
            if figures.stop:
                bar.close()
                self._stop(stop)
            if self.checkpoint_every and st.batch % self.checkpoint_every == 0 and st.batch < n_batches:
                self.save_checkpoint()
        bar.close()
        self._end_epoch()

    def _prepare_batch(self, idx: torch.Tensor, n_batches: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The images and labels of the training rows ``idx`` on the device; assigns this rank's shard of them
        and sets the learning rates of this point of the schedule."""
        cfg, st = self.cfg, self.state
        self.par.assign_shard(self.rule, len(idx))
        x, y = self.data.train_x[idx].to(self.device), self.data.train_y[idx].to(self.device)
        if cfg.lr_schedule != "constant":
            self.rule.scale_learning_rates(cfg.lr_factor((st.epoch * n_batches + st.batch) / (cfg.epochs * n_batches)))
        return x, y

    def _learn(self, x: torch.Tensor, y: torch.Tensor, stop: StopRequest) -> BatchFigures:
        """One learning step on the global batch ``x``, ``y`` (this rank simulates its shard); the batch's
        figures summed over the ranks. Every rank stops here if any rank diverged."""
        st = self.state
        stats = self.rule.train_batch(x, y, self.spike_gen)
        diverged = self._divergence(stats)
        figures = self.par.sum_batch(BatchFigures(loss_sum=stats.loss_sum if stats.samples else 0.0,
                                                  correct=stats.correct, samples=stats.samples,
                                                  stop=int(stop.requested is not None),
                                                  diverged=int(diverged is not None)))
        if diverged is not None:
            raise diverged
        if figures.diverged:
            raise DivergenceError(f"rule {self.rule.cfg.rule}: non-finite values on another rank at epoch {st.epoch + 1}, "
                                  f"batch {st.batch + 1} (see its message)")
        return figures

    def _divergence(self, stats: BatchStats) -> DivergenceError | None:
        """The error :func:`check_finite` raises after this batch, if any. An idle rank (empty shard: fewer rows
        than ranks) leaves the check to the others."""
        if not stats.samples:
            return None
        try:
            check_finite(self.rule, self.state.epoch, self.state.batch, self.checkpoint_path)
        except DivergenceError as e:
            return e
        return None

    def _stop(self, stop: StopRequest) -> NoReturn:
        """A rank asked to stop after this batch: save the checkpoint and raise :class:`Interrupted` on every rank."""
        st = self.state
        self.save_checkpoint()
        self.par.barrier()  # no rank reports the checkpoint before rank 0 has written it
        why = stop.requested or "stop requested on another rank"
        raise Interrupted(f"{why}: stopped at epoch {st.epoch + 1}, batch {st.batch}; checkpoint "
                          f"saved in {self.checkpoint_path}; continue with the same command plus --resume")

    def _end_epoch(self) -> None:
        """Log the finished epoch (``metrics.jsonl``, checkpoint, model) and report it."""
        row = metrics.epoch_row(self.rule, self.data, self.state, self.cfg, self.device, self.diagnostics)
        self.state.end_epoch(row)
        self.epoch_order_state = self.order_gen.get_state()
        if self.writes:
            metrics.write_history(self.out / "metrics.jsonl", self.state.history)
            self.save_checkpoint()
            self.save_model()
        if self.par.is_main:
            metrics.report_epoch(row, self.cfg.epochs, self.sizes[-1], metrics.probe_size(self.data), self.echo)

    def _finish(self) -> dict:
        """The summary, written with the final model."""
        summary = metrics.run_summary(self.cfg, self.sizes, self.device, self.par.world_size, self.state)
        if self.writes:
            self.save_model()
            ckpt.atomic_write_json(self.out / "summary.json", summary)
        return summary
