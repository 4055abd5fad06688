r"""``bioleaf bench --scaling``: training speed and peak memory of BioLeaF, our ``bptt`` and snnTorch's
BPTT as the network, the presentation and the batch grow.

Three sweeps around the shape of ``bioleaf bench``'s speed measurement (784-400-400-10, ``T = 20``,
batch 100): the hidden width ``W`` (784-W-W-10, 400 to 3,200 cells per hidden layer), the time steps
``T`` (20 to 500) and the batch. On a GPU a fourth point is the community benchmark's shape (the SNN
library benchmarks of Open Neuromorphic): one Linear+LIF layer of 16,384 cells on 16,384 inputs,
``T = 500``, batch 16. Every point trains the four :data:`SCALING_TRAINERS`: BioLeaF with its fully
local and with its idealised circuit (:func:`bioleaf.tools.bench.trainers.circuit_values`), our ``bptt`` and the
snnTorch twin (:class:`bioleaf.tools.bench.peers.SnnTorchTwin`), each from the same initial weights.

At every point, for every trainer:

- **peak memory**: :func:`bioleaf.tools.bench.memory.memory_probe`, one batch after the model is built: on a CPU the
  growth of the peak resident set size, in a fresh process (in this one with ``--quick``), on a GPU the
  growth of torch's peak CUDA allocations. A trainer that runs out of memory is marked ``OOM``: on a CPU
  its probe may add at most ``memory_budget_mb`` of address space (:func:`bioleaf.tools.bench.memory.memory_cap`), on a
  GPU the device's memory is the limit;
- **speed**: the trainers that fitted take turns batch by batch in this process
  (:func:`bioleaf.tools.bench.timing.time_interleaved`: ``warmup`` untimed rounds, then ``rounds`` timed ones);
  samples/s is the batch over the median batch time, and each speed is also given relative to
  snnTorch's in the same rotation. A trainer that runs out of memory here is marked ``OOM`` as well.

The results go to ``out``: ``results.json`` (the settings and one row per point and trainer),
``results.md`` (one table per sweep) and ``scaling.png`` (speed and memory against each swept
variable, one line per trainer, ``OOM`` written where a trainer ran out of memory).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from bioleaf.errors import UsageError, is_out_of_memory
from bioleaf.tools.bench.probes import run_probes
from bioleaf.tools.bench.report import machine
from bioleaf.tools.bench.runtime import (bench_threads, quiet_scalar_warnings, release_cached, synchronizer,
                                         torch_threads)
from bioleaf.tools.bench.timing import fixed_batches, rotation_tasks, time_interleaved
from bioleaf.tools.bench.trainers import make_trainer
from bioleaf.training.checkpoint import atomic_write_bytes, atomic_write_json

SCALING_TRAINERS = ("bioleaf_local", "bioleaf", "bptt", "snntorch")
"""The trainers of every point (:data:`bioleaf.tools.bench.trainers.TRAINERS`: ``bioleaf`` is the idealised circuit)."""
LABELS = {"bioleaf_local": "BioLeaF, fashion-mnist-local", "bioleaf": "BioLeaF, idealised", "bptt": "our bptt",
          "snntorch": "snnTorch BPTT"}
DEFAULT_OUT = Path("runs/bench-scaling")


@dataclass(frozen=True)
class ScalingSettings:
    """The sweeps of one scaling run and how each point is measured."""

    widths: tuple[int, ...] = (400, 800, 1600, 3200)  # cells per hidden layer: 784-W-W-10
    steps: tuple[int, ...] = (20, 100, 500)
    batch_sizes: tuple[int, ...] = (16, 100, 256)
    centre: tuple[int, int, int] = (400, 20, 100)  # width, T and batch held while another one is swept
    inputs: int = 784
    classes: int = 10
    community: tuple[str, int, int] | None = ("16384-16384", 500, 16)  # arch, T, batch; on a GPU only
    warmup: int = 1  # untimed rounds (first-call allocations, Adam state)
    rounds: int = 3  # timed rounds; each trains one batch with every trainer
    memory_batches: int = 1
    memory_budget_mb: float = 4096.0  # CPU: address space one probe may add before it counts as OOM
    memory_parallel: int = 1  # probes run at once (CPU)
    fresh_processes: bool = True  # CPU: every probe in a fresh process (False: in this one, a smoke test)
    probe_timeout_s: float = 900.0
    threads: int | None = 1  # torch threads of the timed rounds and of each probe (CPU)

    def arch(self, width: int) -> str:
        """The swept network with ``width`` cells per hidden layer: ``inputs-width-width-classes``."""
        return f"{self.inputs}-{width}-{width}-{self.classes}"


SCALING = ScalingSettings()
"""The full sweep, on one thread."""
QUICK_SCALING = ScalingSettings(widths=(16, 32), steps=(5, 10), batch_sizes=(4, 8), centre=(16, 5, 4),
                                community=("64-64", 10, 4), rounds=2, fresh_processes=False, probe_timeout_s=120.0)
"""Tiny sizes, every probe in this process (a fresh process would first import torch, once per probe): a smoke
test of the sweep."""


@dataclass(frozen=True)
class Point:
    """One point of a sweep: the swept variable's ``value`` and the shape trained there."""

    sweep: str  # width, T, batch or community
    value: int
    arch: str
    steps: int
    batch: int

    @property
    def shape(self) -> tuple[str, int, int]:
        """What the trainers are measured on: ``(arch, steps, batch)``."""
        return self.arch, self.steps, self.batch


def scaling_points(s: ScalingSettings, device: torch.device) -> list[Point]:
    """Every point of the sweeps, in order (the community point on a GPU only)."""
    width, steps, batch = s.centre
    points = [Point("width", w, s.arch(w), steps, batch) for w in s.widths]
    points += [Point("T", t, s.arch(width), t, batch) for t in s.steps]
    points += [Point("batch", b, s.arch(width), steps, b) for b in s.batch_sizes]
    if device.type == "cuda" and s.community is not None:
        community, t, b = s.community
        points.append(Point("community", int(community.split("-")[-1]), community, t, b))
    return points


def measure(shape: tuple[str, int, int], s: ScalingSettings, device: torch.device, seed: int = 0) -> dict[str, dict]:
    """Peak memory and samples/s of every trainer at one shape: ``{trainer: {samples_per_s, peak_mb, oom}}``
    (``None`` where it ran out of memory)."""
    arch, steps, batch = shape
    specs = [{"rule": name, "steps": steps, "arch": arch, "batch": batch, "batches": s.memory_batches, "seed": seed,
              "threads": s.threads, "device": str(device), "budget_mb": s.memory_budget_mb}
             for name in SCALING_TRAINERS]
    probes = {r["rule"]: r for r in run_probes(specs, parallel=s.memory_parallel, timeout_s=s.probe_timeout_s,
                                               fresh=s.fresh_processes)}
    fitted = [name for name in SCALING_TRAINERS if not probes[name]["oom"]]
    speeds = timed_speeds(fitted, shape, s, device, seed)
    return {name: {"samples_per_s": speeds.get(name), "peak_mb": probes[name].get("peak_mb"),
                   "oom": speeds.get(name) is None} for name in SCALING_TRAINERS}


def timed_speeds(names: list[str], shape: tuple[str, int, int], s: ScalingSettings, device: torch.device,
                 seed: int = 0) -> dict[str, float | None]:
    """Samples/s of the trainers ``names`` at one shape, taking turns batch by batch; ``None`` for one that
    ran out of memory (building it or training)."""
    arch, steps, batch = shape
    oom: set[str] = set()
    trainers = {}
    for name in names:
        try:
            trainers[name] = make_trainer(name, arch, steps, batch, device, seed)
        except (RuntimeError, MemoryError) as e:
            if not is_out_of_memory(e):
                raise
            oom.add(name)
    if not trainers:
        return dict.fromkeys(names)
    xs, ys, _ = fixed_batches(arch, batch, s.warmup + s.rounds, torch.Generator().manual_seed(seed + 1), device)
    tasks = rotation_tasks(trainers, xs, ys, seed, device, oom)
    with quiet_scalar_warnings(), torch_threads(s.threads):
        seconds = time_interleaved(tasks, warmup=s.warmup, rounds=s.rounds, sync=synchronizer(device))
    del trainers, tasks
    release_cached(device)
    return {name: None if name in oom else batch / statistics.median(seconds[name]) for name in names}


def scaling_rows(points: list[Point], measured: dict[tuple[str, int, int], dict[str, dict]]) -> list[dict]:
    """One row per point and trainer, with its speed relative to snnTorch's in the same rotation."""
    rows = []
    for p in points:
        at = measured[p.shape]
        twin = at["snntorch"]["samples_per_s"]
        for name in SCALING_TRAINERS:
            sps = at[name]["samples_per_s"]
            rows.append({**dataclasses.asdict(p), "rule": name, **at[name],
                         "over_snntorch": sps / twin if sps is not None and twin else None})
    return rows


def run_scaling(device: torch.device = torch.device("cpu"), *, quick: bool = False, out: Path = DEFAULT_OUT,
                budget_mb: float | None = None, settings: ScalingSettings | None = None, seed: int = 0) -> dict:
    """Measure every point (a shape shared by several sweeps once), write ``results.json``, ``results.md``
    and ``scaling.png`` into ``out`` and return what ``results.json`` holds."""
    s = settings or (QUICK_SCALING if quick else SCALING)
    if budget_mb is not None:
        if not 0 < budget_mb < float("inf"):
            raise UsageError(f"--memory-budget: expected a number of MB > 0, got {budget_mb}")
        s = dataclasses.replace(s, memory_budget_mb=budget_mb)
    s = dataclasses.replace(s, threads=bench_threads(s.threads))
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot create directory ({e.strerror})") from None
    where = machine(device)
    t0 = time.perf_counter()
    points = scaling_points(s, device)
    measured: dict[tuple[str, int, int], dict[str, dict]] = {}
    for p in points:
        if p.shape not in measured:
            measured[p.shape] = measure(p.shape, s, device, seed)
    result = {**where, "quick": quick, "settings": dataclasses.asdict(s), "rows": scaling_rows(points, measured),
              "seconds": time.perf_counter() - t0}
    write_scaling(result, out)
    return result


def write_scaling(result: dict, out: Path) -> list[Path]:
    """``results.json``, ``results.md`` and ``scaling.png`` of a scaling run into ``out``."""
    paths = [out / "results.json", out / "results.md", out / "scaling.png"]
    atomic_write_json(paths[0], result)
    atomic_write_bytes(paths[1], scaling_markdown(result).encode())
    scaling_plot(result, paths[2])
    return paths


def _sweeps(rows: list[dict]) -> dict[str, list[dict]]:
    """The rows of each sweep, in their order."""
    sweeps: dict[str, list[dict]] = {}
    for r in rows:
        sweeps.setdefault(r["sweep"], []).append(r)
    return sweeps


def _title(sweep: str, rows: list[dict]) -> str:
    """The heading of a sweep's table and axis: what is swept, and the shape held while it is."""
    r = rows[0]
    sizes = r["arch"].split("-")
    held = {"width": f"{sizes[0]}-W-W-{sizes[-1]}, T={r['steps']}, batch {r['batch']}",
            "T": f"{r['arch']}, batch {r['batch']}", "batch": f"{r['arch']}, T={r['steps']}",
            "community": f"one Linear+LIF layer, {r['arch']}, T={r['steps']}, batch {r['batch']}"}[sweep]
    return {"width": "Hidden width W", "T": "Time steps T", "batch": "Batch size",
            "community": "Community benchmark shape"}[sweep] + f" ({held})"


def _number(x: float) -> str:
    """Three significant digits, or a whole number from 100 on."""
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def _cell(row: dict, key: str) -> str:
    """A table cell: the figure ``key`` of a row (a speed with its ratio to snnTorch's), ``OOM`` or ``-``."""
    if row[key] is None:
        return "OOM" if row["oom"] else "-"
    ratio = row["over_snntorch"] if key == "samples_per_s" and row["rule"] != "snntorch" else None
    return _number(row[key]) + ("" if ratio is None else f" ({ratio:.2f}x)")


def scaling_markdown(result: dict) -> str:
    """One table per sweep: samples/s (x snnTorch's, same rotation) and peak training memory of every trainer."""
    where = f"{result['device']}" + (f" ({result['gpu']})" if result.get("gpu") else "")
    lines = [f"Training speed (samples/s, in brackets relative to snnTorch's in the same rotation) and peak "
             f"training memory (MB above the model and data) on {where}, torch {result['torch_version']}, "
             f"snnTorch {result['snntorch_version']}; OOM: out of memory.", ""]
    header = " | ".join(f"{LABELS[n]} samples/s | {LABELS[n]} MB" for n in SCALING_TRAINERS)
    for sweep, rows in _sweeps(result["rows"]).items():
        lines += [f"**{_title(sweep, rows)}**", "", f"| {sweep} | {header} |",
                  "|---" * (1 + 2 * len(SCALING_TRAINERS)) + "|"]
        for value in dict.fromkeys(r["value"] for r in rows):
            at = {r["rule"]: r for r in rows if r["value"] == value}
            cells = " | ".join(f"{_cell(at[n], 'samples_per_s')} | {_cell(at[n], 'peak_mb')}" for n in SCALING_TRAINERS)
            lines.append(f"| {value} | {cells} |")
        lines.append("")
    return "\n".join(lines)


def scaling_plot(result: dict, path: Path) -> Path:
    """Speed and memory against each swept variable (log-log), one line per trainer; ``OOM`` marks a trainer
    that ran out of memory at a value."""
    from bioleaf.tools.plots import plt, save_png

    sweeps = {k: v for k, v in _sweeps(result["rows"]).items() if len({r["value"] for r in v}) > 1}
    fig, axes = plt.subplots(len(sweeps), 2, figsize=(10, 3.2 * len(sweeps)), squeeze=False)
    for row_axes, (sweep, rows) in zip(axes, sweeps.items()):
        for ax, key, unit in zip(row_axes, ("samples_per_s", "peak_mb"), ("samples/s", "peak training MB")):
            for i, name in enumerate(SCALING_TRAINERS):
                mine = [r for r in rows if r["rule"] == name]
                ax.plot([r["value"] for r in mine], [float("nan") if r[key] is None else r[key] for r in mine],
                        marker="o", color=f"C{i}", label=LABELS[name])
                for r in mine:
                    if r["oom"]:
                        ax.annotate("OOM", (r["value"], 0.92 - 0.07 * i), xycoords=("data", "axes fraction"),
                                    color=f"C{i}", ha="center", fontsize=8)
            ax.set(xscale="log", yscale="log", xlabel=_title(sweep, rows), ylabel=unit)
            values = sorted({r["value"] for r in rows})
            ax.set_xticks(values, [str(v) for v in values])
            ax.tick_params(axis="x", which="minor", bottom=False, labelbottom=False)
            ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"bioleaf bench --scaling on {result['device']}", fontsize=10)
    return save_png(fig, path)


def scaling_summary(result: dict, out: Path) -> str:
    """What ``bioleaf bench --scaling`` prints without ``--json``: the tables and where the files went."""
    return scaling_markdown(result) + f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'scaling.png'}"
