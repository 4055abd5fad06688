"""Reload a trained run (``model.safetensors`` + ``config.json``) and measure it on the test set."""

from __future__ import annotations

from pathlib import Path

import torch

from bioleaf.config import TrainConfig
from bioleaf.data import load_dataset
from bioleaf.errors import DataError, UsageError
from bioleaf.rules import Rule, make_rule
from bioleaf.training import checkpoint as ckpt
from bioleaf.training.metrics import evaluate
from bioleaf.training.trainer import resolve_device


def load_model(run_dir: Path) -> tuple[TrainConfig, Rule]:
    """The configuration and a rule holding the trained synapses of ``run_dir`` (the bottom-up ``W``
    always; the microcircuit's ``B``, ``P``, ``Q`` where the file has them, the idealisations imposed)."""
    path = Path(run_dir) / "model.safetensors"
    if not Path(run_dir).is_dir():
        raise DataError(f"{run_dir}: no such run directory")
    tensors, meta = ckpt.load_tensors(path)
    if meta.get("kind") != "model" or not isinstance(meta.get("config"), dict):
        raise DataError(f"{path}: not a bioleaf model file (kind={meta.get('kind')!r})")
    try:
        cfg = TrainConfig.from_json(meta["config"]).validate()
    except UsageError as e:  # the file, not the user's flags, is wrong
        raise DataError(f"{path}: bad configuration in the metadata ({e})") from None
    sizes = meta.get("sizes")
    if not isinstance(sizes, list) or not all(isinstance(s, int) and s > 0 for s in sizes) or len(sizes) < 2:
        raise DataError(f"{path}: bad 'sizes' in metadata: {sizes!r}")
    try:
        device = resolve_device(cfg.device)
    except UsageError:  # trained on a GPU this machine lacks: the weights evaluate on the CPU as well
        device = torch.device("cpu")
    rule = make_rule(cfg, sizes, torch.Generator().manual_seed(0), device)
    synapses = rule.synapses()
    expected = {name: t for name, t in synapses.items() if name.startswith("W") or name in tensors}
    ckpt.check_tensors(path, tensors, expected)
    with torch.no_grad():
        for name, w in expected.items():
            w.copy_(tensors[name])
    rule.after_load()
    return cfg, rule


def evaluate_run(run_dir: Path, data_dir: str | None = None) -> dict:
    """Test accuracy of a finished run, reproducing the trainer's evaluation exactly, and per hidden layer the
    share of cells that never fire on the test set and the share of active counts at the cap
    (:class:`bioleaf.training.metrics.Evaluation`)."""
    cfg, rule = load_model(run_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = load_dataset(cfg.dataset, data_dir or cfg.data_dir, limit=cfg.limit, val_fraction=cfg.val_fraction)
    if data.input_size != rule.sizes[0]:
        raise DataError(f"{data.source}: images have {data.input_size} pixels, but the model in {run_dir} expects "
                        f"{rule.sizes[0]} inputs ({'-'.join(map(str, rule.sizes))})")
    test = evaluate(rule, data.test_x, data.test_y, cfg.seed, rule.device)
    return {"rule": cfg.rule, "dataset": cfg.dataset, "arch": "-".join(map(str, rule.sizes)),
            "test_accuracy": test.accuracy, "test_samples": len(data.test_x), "silent_share": test.silent,
            "saturated_share": test.saturated}
