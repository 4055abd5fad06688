"""``bioleaf plot DIR``: PNG figures of what a trained network did.

- ``learning_curves.png``: train / validation / test accuracy per epoch (every rule);
- ``alignment.png`` (bioleaf): angle between BioLeaF's update and the ST-BP gradient per layer over
  training, and the residual apical potential (``metrics.jsonl``);
- ``rasters.png`` (bioleaf): spike rasters of the input, pyramidal cells and interneurons for one
  test sample, teacher on;
- ``learning_window.png`` (bioleaf): the change of one bottom-up synapse against the offset of one postsynaptic
  spike from one presynaptic spike, for both ``W`` rules, with the run's neuron (:mod:`bioleaf.tools.window`);
- ``apical.png`` (bioleaf): apical potentials of a few hidden cells for that sample without and
  with the teacher: ~0 in the self-predicting state, the cell's error once the teacher acts.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from bioleaf.config import TrainConfig  # noqa: E402
from bioleaf.data import load_dataset  # noqa: E402
from bioleaf.errors import DataError  # noqa: E402
from bioleaf.model.circuit import Plasticity, present  # noqa: E402
from bioleaf.model.plasticity import W_RULES  # noqa: E402
from bioleaf.rules import Rule, make_rule  # noqa: E402
from bioleaf.tools.window import learning_window  # noqa: E402
from bioleaf.training import checkpoint as ckpt  # noqa: E402


def read_metrics(run_dir: Path) -> list[dict]:
    """The rows of a run's ``metrics.jsonl``, one per epoch (:class:`DataError` if missing or unreadable)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: missing (is {run_dir} a directory written by bioleaf train?)")
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON lines ({e.msg}, line {e.lineno})") from None


def plot_run(run_dir: Path, sample: int = 0) -> list[Path]:
    """Write every figure that applies to the run in ``run_dir``; returns their paths."""
    run_dir = Path(run_dir)
    rows = read_metrics(run_dir)
    written = [_learning_curves(rows, run_dir / "learning_curves.png")]
    if rows and "stbp_angle_deg" in rows[0]:
        written.append(_alignment(rows, run_dir / "alignment.png"))
    tensors, meta = ckpt.load_tensors(run_dir / "checkpoint.safetensors")
    cfg = TrainConfig.from_json(meta["config"]).validate()
    if cfg.rule == "bioleaf":
        written.append(_learning_window(cfg, run_dir / "learning_window.png"))
    if cfg.rule == "bioleaf" and len(meta["sizes"]) > 2:
        written += _activity(cfg, meta["sizes"], tensors, run_dir, sample)
    return written


def save_png(fig, path: Path) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically (a reader never sees half a file) and close it."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    ckpt.atomic_write_bytes(path, buf.getvalue())
    return path


def _learning_curves(rows: list[dict], path: Path) -> Path:
    """Train, validation and test accuracy per epoch (those every row has)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    epochs = [r["epoch"] for r in rows]
    for key in ("train_accuracy", "val_accuracy", "test_accuracy"):
        values = [r.get(key) for r in rows]
        if all(v is not None for v in values):
            ax.plot(epochs, values, marker="o", label=key.split("_")[0])
    ax.set(xlabel="epoch", ylabel="accuracy", title="learning curves")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_png(fig, path)


def _learning_window(cfg: TrainConfig, path: Path) -> Path:
    """The measured learning window of both ``W`` rules (the run's own drawn solid)."""
    window = learning_window(cfg.neuron, window_decay=cfg.circuit.window_decay(cfg.neuron.dt))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for rule in W_RULES:
        style = "-" if rule == cfg.circuit.w_rule else "--"
        ax.plot(window["offset_ms"], window[rule], style, marker=".", label=rule)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set(xlabel="postsynaptic minus presynaptic spike time (ms)", ylabel="weight change (one synapse)",
           title=f"learning window (tau_syn {cfg.neuron.tau_syn:g} ms, tau_stdp {cfg.circuit.stdp_tau:g} ms)")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_png(fig, path)


def _alignment(rows: list[dict], path: Path) -> Path:
    """Per epoch: the angle of each layer's update to the ST-BP gradient, the self-prediction residual, and
    the angle of each mirrored feedback matrix to its transposed forward weights."""
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(13, 3.5))
    epochs = [r["epoch"] for r in rows]
    for l in range(len(rows[0]["stbp_angle_deg"])):
        a1.plot(epochs, [r["stbp_angle_deg"][l] for r in rows], marker="o", label=f"layer {l + 1}")
    a1.set(xlabel="epoch", ylabel="angle (degrees)", title="BioLeaF update vs ST-BP gradient")
    a1.axhline(90, color="grey", lw=0.8, ls="--")
    a1.legend()
    for l in range(len(rows[0].get("apical_residual", []))):
        a2.plot(epochs, [r["apical_residual"][l] for r in rows], marker="o", label=f"hidden layer {l + 1}")
    a2.set(xlabel="epoch", ylabel="mean |apical potential|", title="self-prediction residual (no teacher)")
    a2.legend()
    mirrored = [l for l in range(len(rows[0].get("feedback_angle_deg", [])))
                if all(r["feedback_angle_deg"][l] is not None for r in rows)]  # None: direct feedback, no mirror
    for l in mirrored:
        a3.plot(epochs, [r["feedback_angle_deg"][l] for r in rows], marker="o", label=f"B{l} vs W{l + 1}^T")
    a3.set(xlabel="epoch", ylabel="angle (degrees)", title="feedback vs transposed forward weights", ylim=(0, 95))
    a3.axhline(90, color="grey", lw=0.8, ls="--")
    if mirrored:
        a3.legend()
    for a in (a1, a2, a3):
        a.grid(alpha=0.3)
    return save_png(fig, path)


def _activity(cfg: TrainConfig, sizes: list[int], tensors: dict, run_dir: Path, sample: int) -> list[Path]:
    """``rasters.png`` and ``apical.png``: the test sample ``sample`` presented to the trained circuit."""
    rule = _trained_rule(cfg, sizes, tensors, run_dir)
    data = load_dataset(cfg.dataset, cfg.data_dir, limit=cfg.limit, val_fraction=cfg.val_fraction)
    if not 0 <= sample < len(data.test_x):
        raise DataError(f"--sample: expected 0..{len(data.test_x) - 1}, got {sample}")
    x, label = data.test_x[sample:sample + 1], data.test_y[sample:sample + 1]
    runs = _presentations(cfg, rule, x, cfg.targets.of(label, sizes[-1]))
    title = f"spike rasters, test sample {sample} (label {int(label)}), teacher on"
    return [_rasters(runs["teacher"], len(sizes) - 2, title, run_dir / "rasters.png"),
            _apical(runs, len(sizes) - 2, run_dir / "apical.png")]


def _trained_rule(cfg: TrainConfig, sizes: list[int], tensors: dict, run_dir: Path) -> Rule:
    """The run's rule with the synapses of its checkpoint (``tensors``, checked against the rule's)."""
    rule = make_rule(cfg, sizes, torch.Generator().manual_seed(0), torch.device("cpu"))
    net = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
    ckpt.check_tensors(run_dir / "checkpoint.safetensors", net, rule.tensors())
    with torch.no_grad():
        for name, t in rule.tensors().items():
            t.copy_(net[name])
    return rule


def _presentations(cfg: TrainConfig, rule: Rule, x: torch.Tensor, targets: torch.Tensor) -> dict[str, dict]:
    """What the circuit recorded while ``x`` was presented without (``free``) and with (``teacher``) its teacher
    nudging towards ``targets``, the same input spikes in both, nothing learned."""
    runs = {}
    for name, nudge in (("free", None), ("teacher", targets)):
        gen = torch.Generator().manual_seed(cfg.seed + 3)
        runs[name] = present(rule.circuit, rule.encoder.stream(x, cfg.steps, gen), nudge, cfg.context, batch=1,
                             learn=Plasticity(W=False), record=True).record
    return runs


def _rasters(record: dict, hidden: int, title: str, path: Path) -> Path:
    """Spike rasters of the input, the pyramidal cells and the interneurons of one recorded presentation."""
    rec = {k: v[:, 0] for k, v in record.items()}
    panels = ["input"] + [f"pyr{l}" for l in range(hidden + 1)] + [f"inter{l}" for l in range(hidden)]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 1.6 * len(panels)), sharex=True)
    for ax, key in zip(axes, panels):
        t, n = torch.nonzero(rec[key], as_tuple=True)
        ax.scatter(t.numpy(), n.numpy(), s=2, c="k")
        ax.set_ylim(-0.5, rec[key].shape[1] - 0.5)
        ax.set_ylabel(_panel_name(key, hidden), fontsize=8)
    axes[0].set_title(title)
    axes[-1].set_xlabel("time step")
    return save_png(fig, path)


def _apical(runs: dict[str, dict], hidden: int, path: Path) -> Path:
    """The apical potentials of the four most nudged cells of every hidden layer, without and with the teacher."""
    fig, axes = plt.subplots(1, hidden, figsize=(5 * hidden, 3.2), squeeze=False)
    for l, ax in enumerate(axes[0]):
        free, teach = runs["free"][f"apical{l}"][:, 0], runs["teacher"][f"apical{l}"][:, 0]
        cells = teach.abs().sum(0).argsort(descending=True)[:4]
        for i, c in enumerate(cells.tolist()):
            ax.plot(free[:, c].numpy(), ls="--", color=f"C{i}")
            ax.plot(teach[:, c].numpy(), color=f"C{i}", label=f"cell {c}")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(xlabel="time step", ylabel="apical potential",
               title=f"hidden layer {l + 1}: dashed no teacher, solid teacher")
        ax.legend(fontsize=7)
    return save_png(fig, path)


def _panel_name(key: str, hidden: int) -> str:
    """The label of a raster panel: ``input``, ``pyramidal l``, ``output`` or ``interneurons l``."""
    if key == "input":
        return "input"
    l = int(key[-1])
    if key.startswith("inter"):
        return f"interneurons {l + 1}"
    return "output" if l == hidden else f"pyramidal {l + 1}"
