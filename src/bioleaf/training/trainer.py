"""The training loop shared by every rule: data order, metrics, checkpoints, resume, guards.

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
"""

from __future__ import annotations

import hashlib
import json
import math
import resource
import signal
import sys
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
from tqdm import tqdm

from bioleaf.training import checkpoint as ckpt
from bioleaf.config import TrainConfig, flag_of
from bioleaf.data import Dataset
from bioleaf.errors import BioleafError, DataError, DivergenceError, UsageError
from bioleaf.rules import Rule, make_rule

EVAL_BATCH = 1000
PROBE_SAMPLES = 64


def _flatten(config: dict, prefix: str = "") -> dict:
    """``{"neuron": {"dt": 1.0}}`` -> ``{"neuron.dt": 1.0}`` (nested settings compared one by one)."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class Interrupted(BioleafError):
    """Training stopped on SIGINT/SIGTERM after writing a checkpoint (exit code 130)."""

    exit_code = 130


@dataclass
class Parallel:
    """How this process takes part in data-parallel training (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    all_reduce: Callable[[list[torch.Tensor]], None] = lambda tensors: None

    def shard(self, batch: int) -> slice:
        """This rank's contiguous rows of a global batch of ``batch`` rows."""
        per, extra = divmod(batch, self.world_size)
        start = self.rank * per + min(self.rank, extra)
        return slice(start, start + per + (self.rank < extra))

    def gather(self, values: list[float]) -> torch.Tensor:
        """Every rank's ``values`` as a ``[world_size, len(values)]`` float64 tensor (one all-reduce)."""
        table = torch.zeros(self.world_size, len(values), dtype=torch.float64)
        table[self.rank] = torch.tensor(values, dtype=torch.float64)
        if self.world_size > 1:
            self.all_reduce([table])
        return table

    def agree(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any rank (a collective: every rank must call it)."""
        return bool(self.gather([float(flag)]).any())

    def barrier(self) -> None:
        """Wait until every rank got here."""
        self.gather([0.0])

    @property
    def is_main(self) -> bool:
        return self.rank == 0


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


def prepare_out(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to mix runs: a directory holding a run needs --resume or --overwrite."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    has_run = (out / "config.json").exists()
    if resume and not (out / "checkpoint.safetensors").exists():
        raise UsageError(f"--resume: no checkpoint in {out} (expected {out / 'checkpoint.safetensors'})")
    if has_run and not resume and not overwrite:
        raise UsageError(f"--out {out}: already holds a run; add --resume to continue it or --overwrite to replace it")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot create directory ({e.strerror})") from None


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process: CUDA allocations on a GPU, else the peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@torch.no_grad()
def infer_all(rule: Rule, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The predicted class (teacher off) of every row of ``x``, ``EVAL_BATCH`` rows at a time, the input
    spikes drawn from ``generator`` in row order."""
    chunks = [rule.infer(x[i:i + EVAL_BATCH].to(rule.device), generator) for i in range(0, len(x), EVAL_BATCH)]
    return torch.cat(chunks) if chunks else torch.zeros(0, dtype=torch.long, device=rule.device)


def accuracy(rule: Rule, x: torch.Tensor, y: torch.Tensor, seed: int, device: torch.device) -> float:
    """Test-mode accuracy (teacher off) with a fresh, seeded spike generator."""
    if len(x) == 0:
        return float("nan")
    gen = torch.Generator(device=device).manual_seed(seed + 3)
    return int((infer_all(rule, x, gen) == y.to(device)).sum()) / len(x)


def output_spikes(rule: Rule, x: torch.Tensor, seed: int, steps: int) -> tuple[float, float]:
    """With the teacher off: the mean output spike count per image (0: a silent network) and the fraction of
    output cells, over the images, that fire at 90 % of the steps or more (1: a saturated output)."""
    fwd = rule.forward(x, torch.Generator(device=x.device).manual_seed(seed + 3))
    return float(fwd.output.sum()) / max(len(x), 1), float((fwd.output >= 0.9 * steps).float().mean())


def check_finite(rule: Rule, epoch: int, batch: int, checkpoint: Path | None = None) -> None:
    """Stop with :class:`DivergenceError` naming the rule, tensor, layer, epoch and batch if any learned value
    (a weight, or its optimiser state: the accumulated updates) or an apical potential is NaN/Inf.
    ``checkpoint``: the last good checkpoint (it is never overwritten with the bad values)."""
    kept = (f"the last good checkpoint {checkpoint} is kept" if checkpoint is not None and checkpoint.exists()
            else "no checkpoint had been written yet")

    def fail(what: str) -> None:
        raise DivergenceError(f"rule {rule.cfg.rule}: non-finite values in {what} at epoch {epoch + 1}, batch {batch + 1}; "
                              f"{kept} (lower --lr or --teacher-strength)")

    tensors = rule.tensors()
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            fail(f"{name} (layer {name[1:]})")
    names = {id(t): name for name, t in tensors.items()}
    for param, state in (rule.optimizer.state.items() if rule.optimizer is not None else ()):
        for key, value in state.items():
            if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
                name = names.get(id(param), "?")
                fail(f"the optimiser's {key} of {name} (layer {name[1:]})")
    for l, residual in enumerate(getattr(rule, "last_apical_residual", None) or []):
        if not math.isfinite(residual):
            fail(f"the apical potentials (layer {l})")


def _json_finite(value):
    """``value`` with every non-finite float (also inside lists) replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_json_finite(v) for v in value]
    return value


class StopRequest:
    """SIGINT/SIGTERM handling: the first signal asks to stop after the current batch; a second
    SIGINT stops at once (files on disk are always whole, so nothing is corrupted)."""

    def __init__(self) -> None:
        self.requested: str | None = None

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    @contextmanager
    def installed(self) -> Iterator["StopRequest"]:
        import threading
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


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


class Trainer:
    """Runs one configuration to completion (or to a clean stop), writing its files into ``out``.

    ``out=None`` writes nothing (the history stays in :attr:`state`); ``progress`` shows a progress bar,
    ``echo`` prints one line per epoch and warnings to the terminal, ``signals`` turns SIGINT/SIGTERM
    into a clean stop with a checkpoint (the CLI's; a library call leaves the process's handlers alone).
    Thread counts and torch's global seed are not touched: that is the caller's (the CLI's) business.
    """

    def __init__(self, cfg: TrainConfig, data: Dataset, out: Path | None = None, *, checkpoint_every: int = 0,
                 progress: bool = False, parallel: Parallel | None = None, echo: bool = False,
                 signals: bool = False):
        self.cfg, self.data, self.out = cfg, data, None if out is None else Path(out)
        self.checkpoint_every, self.show_progress = checkpoint_every, progress
        self.echo, self.signals = echo, signals
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
        if self.par.world_size > 1:
            self.rule.reduce = self.par.all_reduce

    # ----------------------------------------------------------------- files
    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files (rank 0, with an output directory)."""
        return self.out is not None and self.par.is_main

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.out is None else self.out / "checkpoint.safetensors"

    def save_checkpoint(self) -> None:
        if not self.writes:
            return
        opt_tensors, opt_meta = ckpt.optimizer_state(self.rule.optimizer)
        tensors = {**{f"net.{k}": v for k, v in self.rule.tensors().items()}, **opt_tensors,
                   "rng.order_epoch": self.epoch_order_state, "rng.spikes": self.spike_gen.get_state()}
        meta = {"kind": "checkpoint", "config": self.cfg.to_json(), "sizes": self.sizes,
                "progress": self.state.__dict__, "optimizer": opt_meta}
        ckpt.save_tensors(self.checkpoint_path, tensors, meta)

    def load_checkpoint(self) -> None:
        """Load ``checkpoint.safetensors``. In data-parallel training every rank loads it, and the ranks
        check that they all loaded the very same file; otherwise every rank stops with an error."""
        if self.par.world_size == 1:
            return self._load_checkpoint()
        path, error, digest = self.checkpoint_path, None, 0.0
        try:
            self._load_checkpoint()
            digest = float(int.from_bytes(hashlib.sha256(path.read_bytes()).digest()[:6], "big"))
        except BioleafError as e:
            error = e
        table = self.par.gather([float(error is not None), digest])
        if error is not None:
            raise error
        failed = [r for r in range(self.par.world_size) if table[r, 0]]
        if failed:
            raise DataError(f"--resume: rank(s) {', '.join(map(str, failed))} could not load {path} (see their "
                            "messages); every rank needs the same checkpoint")
        differ = [r for r in range(self.par.world_size) if table[r, 1] != table[0, 1]]
        if differ:
            raise DataError(f"--resume: rank(s) {', '.join(map(str, differ))} loaded a different {path} than rank 0; "
                            "on several nodes --out must be a shared directory (or hold the same checkpoint)")

    def _load_checkpoint(self) -> None:
        path = self.checkpoint_path
        tensors, meta = ckpt.load_tensors(path)
        if meta.get("kind") != "checkpoint":
            raise DataError(f"{path}: not a training checkpoint (kind={meta.get('kind')!r})")
        saved = meta.get("config", {})
        if not isinstance(saved, dict):
            raise DataError(f"{path}: incomplete checkpoint (no configuration)")
        saved, now = _flatten(saved), _flatten(self.cfg.to_json())
        diff = sorted(k for k in set(saved) | set(now) if k != "epochs" and saved.get(k) != now.get(k))
        if diff:
            shown = ", ".join(f"{flag_of(k)} {saved.get(k)!r} (now {now.get(k)!r})" for k in diff[:4])
            raise UsageError(f"--resume: the flags differ from the checkpoint in {path}: {shown}")
        net = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
        ckpt.check_tensors(path, net, self.rule.tensors())
        with torch.no_grad():
            for name, t in self.rule.tensors().items():
                t.copy_(net[name].to(t.device))
        self.rule.after_load()
        opt = {k: v for k, v in tensors.items() if k.startswith("opt.")}
        ckpt.load_optimizer_state(self.rule.optimizer, opt, meta.get("optimizer", {}), path)
        try:
            self.state = Progress(**meta["progress"])
            self.epoch_order_state = tensors["rng.order_epoch"]
            self.spike_gen.set_state(tensors["rng.spikes"].to(torch.uint8))
        except (KeyError, TypeError, RuntimeError) as e:
            raise DataError(f"{path}: incomplete checkpoint ({str(e).splitlines()[0]})") from None
        if self.state.epoch > self.cfg.epochs or (self.state.epoch == self.cfg.epochs and self.state.batch > 0):
            raise UsageError(f"--epochs {self.cfg.epochs}: the checkpoint in {path} is already at epoch "
                             f"{self.state.epoch + (self.state.batch > 0)}; resume with at least that many --epochs")

    def save_model(self) -> None:
        if not self.writes:
            return
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
            self.rule.shard = self.par.shard(len(idx)) if self.par.world_size > 1 else None
            self.rule.self_predict(data.train_x[idx].to(self.device), spike_gen)

    def _epoch(self, stop: StopRequest) -> None:
        cfg, st, data = self.cfg, self.state, self.data
        self.order_gen.set_state(self.epoch_order_state)
        order = torch.randperm(len(data.train_x), generator=self.order_gen)
        n_batches = math.ceil(len(order) / cfg.batch_size)
        bar = tqdm(total=n_batches, initial=st.batch, desc=f"epoch {st.epoch + 1}/{cfg.epochs}", unit="batch",
                   disable=not (self.show_progress and self.par.is_main), leave=False, file=sys.stderr)
        while st.batch < n_batches:
            idx = order[st.batch * cfg.batch_size:(st.batch + 1) * cfg.batch_size]
            self.rule.shard = self.par.shard(len(idx)) if self.par.world_size > 1 else None
            x, y = data.train_x[idx].to(self.device), data.train_y[idx].to(self.device)
            if cfg.lr_schedule != "constant":
                self.rule.scale_learning_rates(cfg.lr_factor((st.epoch * n_batches + st.batch) / (cfg.epochs * n_batches)))
            t0 = time.perf_counter()
            stats = self.rule.train_batch(x, y, self.spike_gen)
            diverged = None
            if stats.samples:  # an idle rank (empty shard: batch < ranks) leaves the checks to the others
                try:
                    check_finite(self.rule, st.epoch, st.batch, self.checkpoint_path)
                except DivergenceError as e:
                    diverged = e
            # one all-reduce sums the statistics and agrees on stopping (a signal or a divergence on any
            # rank): every rank stops after the same batch, none is left waiting in a collective
            loss_sum = stats.loss_sum if stats.samples else 0.0
            totals = torch.tensor([loss_sum, stats.correct, stats.samples, float(stop.requested is not None),
                                   float(diverged is not None)], dtype=torch.float64)
            if self.par.world_size > 1:
                self.par.all_reduce([totals])
            if diverged is not None:
                raise diverged
            if totals[4] > 0:
                raise DivergenceError(f"rule {self.rule.cfg.rule}: non-finite values on another rank at epoch {st.epoch + 1}, "
                                      f"batch {st.batch + 1} (see its message)")
            st.seconds += time.perf_counter() - t0
            st.loss_sum += float(totals[0])
            st.correct += int(totals[1])
            st.samples += int(totals[2])
            st.batch += 1
            bar.update(1)
            bar.set_postfix(loss=f"{st.loss_sum / st.samples:.4g}", acc=f"{st.correct / st.samples:.3f}")
            if totals[3] > 0:
                bar.close()
                self.save_checkpoint()
                self.par.barrier()  # no rank reports the checkpoint before rank 0 has written it
                why = stop.requested or "stop requested on another rank"
                raise Interrupted(f"{why}: stopped at epoch {st.epoch + 1}, batch {st.batch}; checkpoint "
                                  f"saved in {self.checkpoint_path}; continue with the same command plus --resume")
            if self.checkpoint_every and st.batch % self.checkpoint_every == 0 and st.batch < n_batches:
                self.save_checkpoint()
        bar.close()
        self._end_epoch()

    def _end_epoch(self) -> None:
        cfg, st, data = self.cfg, self.state, self.data
        row = {"epoch": st.epoch + 1, "train_loss": st.loss_sum / max(st.samples, 1),
               "train_accuracy": st.correct / max(st.samples, 1),
               "val_accuracy": accuracy(self.rule, data.val_x, data.val_y, cfg.seed, self.device),
               "test_accuracy": accuracy(self.rule, data.test_x, data.test_y, cfg.seed, self.device),
               "seconds": st.seconds, "samples_per_second": st.samples / max(st.seconds, 1e-9)}
        probe = slice(0, min(PROBE_SAMPLES, len(data.train_x)))
        probe_x = data.train_x[probe].to(self.device)
        row.update(self.rule.diagnostics(probe_x, data.train_y[probe].to(self.device)))
        row["probe_output_spikes"], row["probe_saturated_fraction"] = output_spikes(self.rule, probe_x, cfg.seed,
                                                                                   cfg.steps)
        row = {k: _json_finite(v) for k, v in row.items()}
        st.history.append(row)
        st.train_seconds += st.seconds
        st.train_samples += st.samples
        st.epoch, st.batch, st.loss_sum, st.correct, st.samples, st.seconds = st.epoch + 1, 0, 0.0, 0, 0, 0.0
        self.epoch_order_state = self.order_gen.get_state()
        if self.writes:
            lines = "".join(json.dumps(r) + "\n" for r in st.history)
            ckpt.atomic_write_bytes(self.out / "metrics.jsonl", lines.encode())
            self.save_checkpoint()
            self.save_model()
        if self.par.is_main:
            self._report(row, probe.stop)

    def _report(self, row: dict, probe_samples: int) -> None:
        """The epoch's line (with ``echo``) and a warning per symptom of a network that cannot learn (a
        ``RuntimeWarning`` without ``echo``)."""
        if self.echo:
            val = "" if row["val_accuracy"] is None else f"  val {row['val_accuracy']:.2%}"
            print(f"epoch {row['epoch']}/{self.cfg.epochs}  loss {row['train_loss']:.4g}  "
                  f"train {row['train_accuracy']:.2%}{val}  test {row['test_accuracy']:.2%}  {row['seconds']:.1f}s",
                  flush=True)
        for message in self._symptoms(row, probe_samples):
            if self.echo:
                print(f"warning: epoch {row['epoch']}: {message}", file=sys.stderr, flush=True)
            else:
                warnings.warn(f"epoch {row['epoch']}: {message}", RuntimeWarning, stacklevel=3)

    def _symptoms(self, row: dict, probe_samples: int) -> list[str]:
        """What the epoch's figures say is wrong, each with the flag most likely to blame: a silent output, a
        saturated one (every cell firing at almost every step), accuracy at chance."""
        n_out, spikes, saturated = self.sizes[-1], row["probe_output_spikes"], row["probe_saturated_fraction"]
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

    def _finish(self) -> dict:
        cfg, st = self.cfg, self.state
        best = max(st.history, key=lambda r: r["val_accuracy"] if r["val_accuracy"] is not None else r["test_accuracy"])
        summary = {"rule": cfg.rule, "dataset": cfg.dataset, "arch": "-".join(map(str, self.sizes)),
                   "steps": cfg.steps, "epochs": cfg.epochs, "seed": cfg.seed, "batch_size": cfg.batch_size,
                   "feedback": cfg.circuit.feedback if cfg.rule == "bioleaf" else None,
                   "interneurons": cfg.circuit.interneurons if cfg.rule == "bioleaf" else None,
                   "idealisations": cfg.idealisations,
                   "device": str(self.device), "world_size": self.par.world_size,
                   "test_accuracy": st.history[-1]["test_accuracy"], "best_epoch": best["epoch"],
                   "train_seconds": st.train_seconds,
                   "samples_per_second": st.train_samples / max(st.train_seconds, 1e-9),
                   "peak_memory_mb": peak_memory_mb(self.device)}
        if self.writes:
            self.save_model()
            ckpt.atomic_write_json(self.out / "summary.json", summary)
        return summary
