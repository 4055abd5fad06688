"""A run's output directory and its checkpoint: what a checkpoint holds, how it is written, and how
``--resume`` restores it (on every rank, checking that all ranks loaded the same file).

A checkpoint (``checkpoint.safetensors``, in the format of :mod:`bioleaf.training.checkpoint`) holds
every learned tensor of the rule (``net.*``), the optimiser's state (``opt.*``), the data order's
generator state at the start of the current epoch and the input spikes' generator state (``rng.*``);
its metadata holds the configuration, the layer sizes and the :class:`~bioleaf.training.metrics.Progress`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from bioleaf.config import TrainConfig, flag_of
from bioleaf.errors import BioleafError, DataError, UsageError
from bioleaf.rules import Rule
from bioleaf.training import checkpoint as ckpt
from bioleaf.training.distributed import Parallel
from bioleaf.training.metrics import Progress


@dataclass
class Position:
    """Where a run stands besides its rule's tensors: the progress, the data order's generator state at the
    start of the current epoch and the generator of the input spikes."""

    progress: Progress
    order_state: torch.Tensor
    spike_gen: torch.Generator


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


def write_checkpoint(path: Path, cfg: TrainConfig, sizes: list[int], rule: Rule, position: Position) -> None:
    """Write the checkpoint of ``rule`` at ``position`` to ``path`` (atomically)."""
    opt_tensors, opt_meta = ckpt.optimizer_state(rule.optimizer)
    tensors = {**{f"net.{k}": v for k, v in rule.tensors().items()}, **opt_tensors,
               "rng.order_epoch": position.order_state, "rng.spikes": position.spike_gen.get_state()}
    meta = {"kind": "checkpoint", "config": cfg.to_json(), "sizes": sizes,
            "progress": position.progress.__dict__, "optimizer": opt_meta}
    ckpt.save_tensors(path, tensors, meta)


def read_on_every_rank(parallel: Parallel, path: Path, cfg: TrainConfig, rule: Rule,
                       spike_gen: torch.Generator) -> Position:
    """:func:`read_checkpoint` on every rank of data-parallel training; the ranks check that they all
    loaded the very same file, otherwise every rank stops with an error. A collective."""
    if parallel.world_size == 1:
        return read_checkpoint(path, cfg, rule, spike_gen)
    position, error, digest = None, None, 0.0
    try:
        position = read_checkpoint(path, cfg, rule, spike_gen)
        digest = float(int.from_bytes(hashlib.sha256(path.read_bytes()).digest()[:6], "big"))
    except BioleafError as e:
        error = e
    table = parallel.gather([float(error is not None), digest])
    if error is not None:
        raise error
    failed = [r for r in range(parallel.world_size) if table[r, 0]]
    if failed:
        raise DataError(f"--resume: rank(s) {', '.join(map(str, failed))} could not load {path} (see their "
                        "messages); every rank needs the same checkpoint")
    differ = [r for r in range(parallel.world_size) if table[r, 1] != table[0, 1]]
    if differ:
        raise DataError(f"--resume: rank(s) {', '.join(map(str, differ))} loaded a different {path} than rank 0; "
                        "on several nodes --out must be a shared directory (or hold the same checkpoint)")
    return position


def read_checkpoint(path: Path, cfg: TrainConfig, rule: Rule, spike_gen: torch.Generator) -> Position:
    """Restore ``rule``'s tensors and optimiser and ``spike_gen`` from the checkpoint at ``path``, which must
    have been written with the same configuration (``epochs`` may grow); the position it was saved at."""
    tensors, meta = ckpt.load_tensors(path)
    if meta.get("kind") != "checkpoint":
        raise DataError(f"{path}: not a training checkpoint (kind={meta.get('kind')!r})")
    _check_same_config(path, meta.get("config", {}), cfg)
    _restore_rule(path, tensors, meta, rule)
    try:
        position = Position(Progress(**meta["progress"]), tensors["rng.order_epoch"], spike_gen)
        spike_gen.set_state(tensors["rng.spikes"].to(torch.uint8))
    except (KeyError, TypeError, RuntimeError) as e:
        raise DataError(f"{path}: incomplete checkpoint ({str(e).splitlines()[0]})") from None
    done = position.progress
    if done.epoch > cfg.epochs or (done.epoch == cfg.epochs and done.batch > 0):
        raise UsageError(f"--epochs {cfg.epochs}: the checkpoint in {path} is already at epoch "
                         f"{done.epoch + (done.batch > 0)}; resume with at least that many --epochs")
    return position


def _check_same_config(path: Path, saved: dict, cfg: TrainConfig) -> None:
    """:class:`UsageError` naming up to four flags whose value differs from the checkpoint's (``--epochs`` may)."""
    if not isinstance(saved, dict):
        raise DataError(f"{path}: incomplete checkpoint (no configuration)")
    try:  # the fields a checkpoint's configuration lacks take their defaults
        saved = TrainConfig.from_json(saved).to_json()
    except (UsageError, TypeError, ValueError) as e:
        raise DataError(f"{path}: incomplete checkpoint (its configuration: {str(e).splitlines()[0]})") from None
    saved, now = _flatten(saved), _flatten(cfg.to_json())
    diff = sorted(k for k in set(saved) | set(now) if k != "epochs" and saved.get(k) != now.get(k))
    if diff:
        shown = ", ".join(f"{flag_of(k)} {saved.get(k)!r} (now {now.get(k)!r})" for k in diff[:4])
        raise UsageError(f"--resume: the flags differ from the checkpoint in {path}: {shown}")


def _restore_rule(path: Path, tensors: dict[str, torch.Tensor], meta: dict, rule: Rule) -> None:
    """Copy the checkpoint's learned tensors and optimiser state into ``rule``."""
    net = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
    ckpt.check_tensors(path, net, rule.tensors())
    with torch.no_grad():
        for name, t in rule.tensors().items():
            t.copy_(net[name].to(t.device))
    rule.after_load()
    opt = {k: v for k, v in tensors.items() if k.startswith("opt.")}
    ckpt.load_optimizer_state(rule.optimizer, opt, meta.get("optimizer", {}), path)


def _flatten(config: dict, prefix: str = "") -> dict:
    """``{"neuron": {"dt": 1.0}}`` -> ``{"neuron.dt": 1.0}`` (nested settings compared one by one)."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
