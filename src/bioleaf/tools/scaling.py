r"""``bioleaf bench --scaling``: training speed and peak memory of BioLeaF, our ``bptt`` and snnTorch's
BPTT as the network, the presentation and the batch grow.

Three sweeps around the shape of ``bioleaf bench``'s speed measurement (784-400-400-10, ``T = 20``,
batch 100): the hidden width ``W`` (784-W-W-10, 400 to 3,200 cells per hidden layer), the time steps
``T`` (20 to 500) and the batch. On a GPU a fourth point is the community benchmark's shape (the SNN
library benchmarks of Open Neuromorphic): one Linear+LIF layer of 16,384 cells on 16,384 inputs,
``T = 500``, batch 16. Every point trains the five :data:`SCALING_TRAINERS`: BioLeaF with three circuits
(:func:`bioleaf.tools.bench.trainers.circuit_values`: one presentation per sample, local learning only; free and
teacher phase side by side; idealised), our ``bptt`` and the snnTorch twin
(:class:`bioleaf.tools.bench.peers.SnnTorchTwin`), each from the same initial weights.

At every point, for every trainer:

- **peak memory**: :func:`bioleaf.tools.bench.memory.memory_probe`, one batch after the model is built: on a CPU the
  growth of the peak resident set size, in a fresh process (in this one with ``--quick``), on a GPU the
  growth of torch's peak CUDA allocations. A trainer that runs out of memory is marked ``OOM``: on a CPU
  its probe may add at most ``memory_budget_mb`` of address space (:func:`bioleaf.tools.bench.memory.memory_cap`), on a
  GPU the device's memory is the limit;
- **speed**: the trainers that fitted take turns batch by batch in this process
  (:func:`bioleaf.tools.bench.timing.time_interleaved`: ``warmup`` untimed rounds, then ``rounds`` timed ones);
  samples/s is the batch over the median batch time, and each speed is also given relative to
  snnTorch's in the same rotation. A trainer that runs out of memory here is marked ``OOM`` as well;
- **the limit**: each BioLeaF circuit's unavoidable work (:mod:`bioleaf.tools.bench.limit`: its products, its input
  encoding's random draws and its optimiser's step, recorded off one extra, untimed batch) is replayed in the same
  rotation; ``limit_efficiency`` is the replay's median time over the circuit's median batch time, and
  ``memory_over_idealised`` a circuit's peak memory over the idealised circuit's at the same point.

Across a sweep, :func:`bioleaf.tools.scaling_report.scaling_slopes` fits every trainer's cost growth as a log-log
slope: seconds per batch and peak memory against the swept size.

The results go to ``out``: ``results.json`` (the settings, one row per point and trainer, and the slopes),
``results.md`` (tables per sweep and of the slopes) and ``scaling.png`` (speed and memory against each swept
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
from bioleaf.tools.bench.limit import LIMIT_TASK, recorded_replays
from bioleaf.tools.bench.probes import run_probes
from bioleaf.tools.bench.report import machine
from bioleaf.tools.bench.runtime import (bench_threads, quiet_scalar_warnings, release_cached, synchronizer,
                                         torch_threads)
from bioleaf.tools.bench.timing import fixed_batches, rotation_tasks, time_interleaved
from bioleaf.tools.bench.trainers import BIOLEAF_TRAINERS, make_trainer
from bioleaf.tools.scaling_report import IDEALISED, SCALING_TRAINERS, scaling_slopes, write_scaling

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
    """Peak memory, samples/s and (BioLeaF's circuits) limit efficiency of every trainer at one shape:
    ``{trainer: {samples_per_s, limit_efficiency, peak_mb, oom}}`` (``None`` where absent or out of memory)."""
    arch, steps, batch = shape
    specs = [{"rule": name, "steps": steps, "arch": arch, "batch": batch, "batches": s.memory_batches, "seed": seed,
              "threads": s.threads, "device": str(device), "budget_mb": s.memory_budget_mb}
             for name in SCALING_TRAINERS]
    probes = {r["rule"]: r for r in run_probes(specs, parallel=s.memory_parallel, timeout_s=s.probe_timeout_s,
                                               fresh=s.fresh_processes)}
    fitted = [name for name in SCALING_TRAINERS if not probes[name]["oom"]]
    timed = timed_speeds(fitted, shape, s, device, seed)
    return {name: {**timed.get(name, {"samples_per_s": None, "limit_efficiency": None}),
                   "peak_mb": probes[name].get("peak_mb"), "oom": timed.get(name, {}).get("samples_per_s") is None}
            for name in SCALING_TRAINERS}


def timed_speeds(names: list[str], shape: tuple[str, int, int], s: ScalingSettings, device: torch.device,
                 seed: int = 0) -> dict[str, dict[str, float | None]]:
    """Samples/s of the trainers ``names`` at one shape, taking turns batch by batch with the limit replays of the
    BioLeaF circuits among them, and each circuit's ``limit_efficiency``: ``{name: {samples_per_s,
    limit_efficiency}}``, ``None`` for a trainer that ran out of memory (building it, recording or training)."""
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
        return {name: {"samples_per_s": None, "limit_efficiency": None} for name in names}
    xs, ys, _ = fixed_batches(arch, batch, s.warmup + s.rounds, torch.Generator().manual_seed(seed + 1), device)
    tasks = rotation_tasks(trainers, xs, ys, seed, device, oom)
    with quiet_scalar_warnings(), torch_threads(s.threads):
        circuits = [name for name in trainers if name in BIOLEAF_TRAINERS]
        _, replays = recorded_replays({name: tasks[name] for name in circuits},
                                      {name: trainers[name].optimizer for name in circuits}, device, seed + 4,
                                      synchronizer(device), oom)
        replays = {LIMIT_TASK.format(name): replay for name, replay in replays.items()}
        seconds = time_interleaved({**tasks, **replays}, warmup=s.warmup, rounds=s.rounds, sync=synchronizer(device))
    del trainers, tasks, replays
    release_cached(device)
    median = {name: statistics.median(t) for name, t in seconds.items()}
    return {name: {"samples_per_s": None if name in oom else batch / median[name],
                   "limit_efficiency": (median[LIMIT_TASK.format(name)] / median[name]
                                        if LIMIT_TASK.format(name) in median and name not in oom else None)}
            for name in names}


def scaling_rows(points: list[Point], measured: dict[tuple[str, int, int], dict[str, dict]]) -> list[dict]:
    """One row per point and trainer, with its speed relative to snnTorch's in the same rotation and (BioLeaF's
    circuits) its peak memory relative to the idealised circuit's."""
    rows = []
    for p in points:
        at = measured[p.shape]
        twin, idealised = at["snntorch"]["samples_per_s"], at[IDEALISED]["peak_mb"]
        for name in SCALING_TRAINERS:
            sps, mb = at[name]["samples_per_s"], at[name]["peak_mb"]
            rows.append({**dataclasses.asdict(p), "rule": name, **at[name],
                         "over_snntorch": sps / twin if sps is not None and twin else None,
                         "memory_over_idealised": (mb / idealised if name in BIOLEAF_TRAINERS and mb is not None
                                                   and idealised else None)})
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
    rows = scaling_rows(points, measured)
    result = {**where, "quick": quick, "settings": dataclasses.asdict(s), "rows": rows,
              "slopes": scaling_slopes(rows), "seconds": time.perf_counter() - t0}
    write_scaling(result, out)
    return result


