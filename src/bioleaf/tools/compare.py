"""``bioleaf compare``: every rule on the same network, encoding, T, data order, epochs and seeds.

Each (rule, feedback, seed) run is a separate ``bioleaf train`` subprocess writing its own directory
under ``OUT/runs/`` (so peak memory is measured per run); a finished run is reused only when its
``config.json`` is exactly the configuration this command asks for (any other is trained again, with a
notice naming what changed); ``jobs`` of them run at once, each line they print prefixed with
the run's name when ``jobs > 1``. Runs are independent, so their results do not depend on ``jobs``.
The table is aggregated over seeds: the idealisations the variant's learning uses ("none": local
learning only; "backprop" for the BP twins), test accuracy mean +- std, best epoch (by validation accuracy),
seconds per epoch, samples per second and peak memory.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bioleaf.config import RULE_NAMES, TrainConfig
from bioleaf.errors import DataError, UsageError
from bioleaf.model.circuit import FEEDBACK_MODES
from bioleaf.training.checkpoint import atomic_write_bytes

COLUMNS = ["rule", "feedback", "idealisations", "seeds", "test_accuracy_mean", "test_accuracy_std", "best_epoch",
           "seconds_per_epoch", "samples_per_second", "peak_memory_mb"]


@dataclass(frozen=True)
class Variant:
    """One trained variant of the comparison: a rule, and for ``bioleaf`` its feedback."""

    rule: str
    feedback: str | None  # bioleaf only

    @property
    def label(self) -> str:
        """The variant's name in tables, plots and run directories: ``rule`` or ``rule-feedback``."""
        return self.rule if self.feedback is None else f"{self.rule}-{self.feedback}"


def parse_list(text: str, flag: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    """The items of the comma-separated ``text`` given to ``flag``, each one of ``allowed`` when given
    (:class:`UsageError` otherwise, or for an empty list)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if allowed is not None and t not in allowed]
    if not items or bad:
        expected = f"a comma-separated subset of {', '.join(allowed)}" if allowed else "a comma-separated list"
        raise UsageError(f"{flag}: expected {expected}, got {text!r}")
    return items


def parse_seeds(text: str) -> list[int]:
    """``--seeds``: distinct integers >= 0, comma-separated."""
    try:
        seeds = [int(s) for s in parse_list(text, "--seeds")]
    except ValueError:
        raise UsageError(f"--seeds: expected comma-separated integers, got {text!r}") from None
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise UsageError(f"--seeds: expected distinct integers >= 0, got {text!r}")
    return seeds


def variants(rules: list[str], feedbacks: list[str]) -> list[Variant]:
    """Every rule, ``bioleaf`` once per feedback."""
    out = []
    for rule in rules:
        out += [Variant(rule, fb) for fb in feedbacks] if rule == "bioleaf" else [Variant(rule, None)]
    return out


def run_compare(train_args: list[str], cfg: TrainConfig, rules: list[str], feedbacks: list[str],
                seeds: list[int], out: Path, *, quiet: bool = False, jobs: int = 1) -> list[dict]:
    """Train every variant and seed (``train_args``: the shared ``bioleaf train`` flags), ``jobs`` runs
    at once; write ``results.csv``, ``results.md`` and ``learning_curves.png`` into ``out``; return the rows."""
    out.mkdir(parents=True, exist_ok=True)
    todo = [(v, seed, out / "runs" / f"{v.label}-seed{seed}") for v in variants(rules, feedbacks) for seed in seeds]
    missing = [job for job in todo if not _reusable(job[2], run_config(cfg, job[0], job[1]), quiet)]
    prefix = jobs > 1
    with ThreadPoolExecutor(max_workers=jobs) as pool:  # threads only wait on their child processes
        for done in [pool.submit(_train, train_args, v, seed, run_dir, quiet, prefix) for v, seed, run_dir in missing]:
            done.result()
    runs: dict[Variant, list[tuple[dict, list[dict]]]] = {}
    for v, _, run_dir in todo:
        runs.setdefault(v, []).append(_read_run(run_dir))
    rows = [_row(v, results, run_config(cfg, v, seeds[0])["idealisations"]) for v, results in runs.items()]
    _write_tables(rows, cfg, seeds, out)
    _plot(runs, out / "learning_curves.png")
    return rows


def run_config(cfg: TrainConfig, v: Variant, seed: int) -> dict:
    """The ``config.json`` that the run of variant ``v`` and ``seed`` writes (the shared ``cfg`` with the
    variant's rule, feedback and seed)."""
    run = dataclasses.replace(cfg, rule=v.rule, seed=seed)
    if v.feedback is not None:
        run = dataclasses.replace(run, circuit=dataclasses.replace(run.circuit, feedback=v.feedback))
    return run.to_json()


def _reusable(run_dir: Path, expected: dict, quiet: bool) -> bool:
    """Whether ``run_dir`` holds a finished run of exactly the ``expected`` configuration."""
    if not (run_dir / "summary.json").is_file():
        return False
    try:  # read as a configuration: a field added after the run was made counts as its default
        found = TrainConfig.from_json(json.loads((run_dir / "config.json").read_text())).to_json()
    except (OSError, ValueError, TypeError, UsageError):  # unreadable, not JSON, not a configuration
        found = {}
    changed = _differences(found, expected)
    if changed and not quiet:
        print(f"compare: {run_dir} was trained with other settings ({', '.join(changed[:4])}"
              f"{', ...' if len(changed) > 4 else ''}); training it again", file=sys.stderr, flush=True)
    return not changed


def _differences(found: dict, expected: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every (nested) key whose value differs."""
    out = []
    for key in sorted(set(found) | set(expected)):
        old, new = found.get(key, "(missing)"), expected.get(key, "(missing)")
        if isinstance(old, dict) and isinstance(new, dict):
            out += _differences(old, new, f"{prefix}{key}.")
        elif old != new:
            out.append(f"{prefix}{key}: {old} -> {new}")
    return out


def _train(train_args: list[str], v: Variant, seed: int, run_dir: Path, quiet: bool, prefix: bool = False) -> None:
    """Train variant ``v`` with ``seed`` into ``run_dir`` in a ``bioleaf train`` subprocess, relaying its lines
    (prefixed with the run's name when ``prefix``); :class:`DataError` with its last line if it fails."""
    cmd = [sys.executable, "-m", "bioleaf", "train", *train_args, "--rule", v.rule, "--seed", str(seed),
           "--out", str(run_dir), "--overwrite", "--no-progress"]
    if v.feedback is not None:
        cmd += ["--feedback", v.feedback]
    if not quiet:
        # one write, so that the lines of runs at once do not interleave
        print(f"compare: training {v.label} seed {seed} -> {run_dir}\n", end="", file=sys.stderr, flush=True)
    last = "(no message)"
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as child:
        for line in child.stdout:  # the run's epoch lines, relayed as they come
            last = line.strip() or last
            if not quiet:
                print(f"[{v.label} seed {seed}] {line}" if prefix else line, end="", file=sys.stderr, flush=True)
    if child.returncode != 0:
        raise DataError(f"compare: run {v.label} seed {seed} failed (exit {child.returncode}): {last}")


def _read_run(run_dir: Path) -> tuple[dict, list[dict]]:
    """A finished run's ``summary.json`` and its ``metrics.jsonl`` rows."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
        metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{run_dir}: unreadable run ({e})") from None
    return summary, metrics


def _row(v: Variant, results: list[tuple[dict, list[dict]]], idealisations: list[str]) -> dict:
    """The table row of a variant (:data:`COLUMNS`), aggregated over the runs of its seeds."""
    accs = [s["test_accuracy"] for s, _ in results]
    return {"rule": v.rule, "feedback": v.feedback or "", "idealisations": " + ".join(idealisations) or "none",
            "seeds": len(results),
            "test_accuracy_mean": statistics.fmean(accs),
            "test_accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "best_epoch": statistics.median(s["best_epoch"] for s, _ in results),
            "seconds_per_epoch": statistics.fmean(s["train_seconds"] / s["epochs"] for s, _ in results),
            "samples_per_second": statistics.fmean(s["samples_per_second"] for s, _ in results),
            "peak_memory_mb": max(s["peak_memory_mb"] for s, _ in results)}


def _write_tables(rows: list[dict], cfg: TrainConfig, seeds: list[int], out: Path) -> None:
    """``results.csv`` and ``results.md`` (the shared settings, then one line per variant) into ``out``."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out / "results.csv", buf.getvalue().encode())
    lines = [f"{cfg.dataset}, {cfg.arch}, T={cfg.steps}, {cfg.epochs} epochs, batch {cfg.batch_size}, "
             f"{cfg.encoder} encoder, seeds {','.join(map(str, seeds))}", "",
             "| rule | feedback | idealisations | test accuracy (mean ± std) | best epoch | s/epoch | samples/s "
             "| peak MB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['rule']} | {r['feedback'] or '-'} | {r['idealisations']} | "
                     f"{100 * r['test_accuracy_mean']:.2f} ± "
                     f"{100 * r['test_accuracy_std']:.2f} % | {r['best_epoch']:g} | {r['seconds_per_epoch']:.1f} | "
                     f"{r['samples_per_second']:.0f} | {r['peak_memory_mb']:.0f} |")
    atomic_write_bytes(out / "results.md", ("\n".join(lines) + "\n").encode())


def _plot(runs: dict[Variant, list[tuple[dict, list[dict]]]], path: Path) -> None:
    """Test accuracy per epoch of every variant: the mean over seeds, and a band from their min to max."""
    from bioleaf.tools.plots import plt, save_png

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (v, results) in enumerate(runs.items()):
        curves = [[m["test_accuracy"] for m in metrics] for _, metrics in results]
        n = min(len(c) for c in curves)
        epochs = list(range(1, n + 1))
        mean = [statistics.fmean(c[e] for c in curves) for e in range(n)]
        lo = [min(c[e] for c in curves) for e in range(n)]
        hi = [max(c[e] for c in curves) for e in range(n)]
        ax.plot(epochs, mean, marker="o", color=f"C{i}", label=v.label)
        ax.fill_between(epochs, lo, hi, color=f"C{i}", alpha=0.2)
    ax.set(xlabel="epoch", ylabel="test accuracy", title="test accuracy per epoch (band: min-max over seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    save_png(fig, path)


def rules_and_feedbacks(rules: str, feedbacks: str) -> tuple[list[str], list[str]]:
    """``--rules`` and ``--feedbacks``, parsed and checked against the known names."""
    return parse_list(rules, "--rules", RULE_NAMES), parse_list(feedbacks, "--feedbacks", FEEDBACK_MODES)
