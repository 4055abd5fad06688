"""The bench's measurements (a) and (c): the training speed of every trainer and peer, the arithmetic rate of a
BioLeaF batch against a plain ``torch.matmul`` replay of its products, and each BioLeaF circuit's batch time against
a replay of all the work its batch cannot avoid.

All trainers, peers and replays take turns in one rotation (:func:`~bioleaf.tools.bench.timing.time_interleaved`);
each speed is the batch over the median batch time. The products and random draws of a BioLeaF batch are recorded
during one extra, untimed batch of each circuit (:func:`~bioleaf.tools.bench.limit.recorded_batch`), and replayed
with its optimiser's step (:func:`~bioleaf.tools.bench.limit.limit_replay`).
"""

from __future__ import annotations

import math
import statistics

import torch

from bioleaf.tools.bench.flops import total_flops
from bioleaf.tools.bench.limit import LIMIT_TASK, PARTS, LimitReplay, RecordedBatch, recorded_replays
from bioleaf.tools.bench.peers import OPTIONAL_PEERS, PEERS, SKIPPED, installed, require_snntorch
from bioleaf.tools.bench.runtime import quiet_scalar_warnings, synchronizer
from bioleaf.tools.bench.settings import BenchSettings
from bioleaf.tools.bench.timing import fixed_batches, rotation_tasks, time_interleaved
from bioleaf.tools.bench.trainers import BIOLEAF_TRAINERS, circuit_label, make_trainer

OWN_TRAINERS = ("bioleaf", "bioleaf_local", "bioleaf_one", "bptt", "bptt_float64")
"""Our trainers measurement (a) times, before the peers, in the order of the rotation."""


def speed_trainers() -> tuple[tuple[str, ...], dict[str, str]]:
    """The trainers (a) times (ours, snnTorch and every optional peer whose package imports), and the status of
    each optional peer: ``"measured"`` or :data:`~bioleaf.tools.bench.peers.SKIPPED`."""
    status = {name: "measured" if installed(name) else SKIPPED for name in OPTIONAL_PEERS}
    return (*OWN_TRAINERS, *(n for n in PEERS if status.get(n, "measured") == "measured")), status


def measure_speed(settings: BenchSettings, seed: int = 0, device: torch.device = torch.device("cpu")) -> dict:
    """(a) and (c): samples/s of bioleaf (its three circuits), bptt (both gradient sums) and the peers, and each
    BioLeaF circuit's batch against ``torch.matmul`` on its products and against its unavoidable work."""
    require_snntorch()
    s = settings
    names, status = speed_trainers()
    xs, ys, source = fixed_batches(s.speed_arch, s.speed_batch, s.speed_warmup + s.speed_rounds,
                                   torch.Generator().manual_seed(seed + 1), device, s.use_dataset)
    trainers = {name: make_trainer(name, s.speed_arch, s.speed_steps, s.speed_batch, device, seed) for name in names}
    tasks = rotation_tasks(trainers, xs, ys, seed, device)
    recorded, replays = recorded_replays({name: tasks[name] for name in BIOLEAF_TRAINERS},
                                         {name: trainers[name].optimizer for name in BIOLEAF_TRAINERS},
                                         device, seed + 4, synchronizer(device))
    with quiet_scalar_warnings():
        seconds = time_interleaved({**tasks, **{LIMIT_TASK.format(n): r for n, r in replays.items()}},
                                   warmup=s.speed_warmup, rounds=s.speed_rounds, sync=synchronizer(device))
    median = {name: statistics.median(t) for name, t in seconds.items()}
    speed = {name: s.speed_batch / median[name] for name in names}
    parts = {name: part_medians(replays[name], s.speed_rounds) for name in BIOLEAF_TRAINERS}
    return {**_speeds(speed), **status, **peer_ratios(speed), **_circuits(trainers), **_ratios(speed),
            **_arithmetic(median, recorded, parts), **_limits(median, recorded, parts, trainers), "speed_data": source,
            **{f"seconds_per_batch_{name}": t for name, t in median.items()}}


def part_medians(replay: LimitReplay, rounds: int) -> dict[str, float]:
    """The median seconds of every part of ``replay`` over its last ``rounds`` (timed) calls."""
    return {part: statistics.median(replay.seconds[part][-rounds:]) for part in PARTS}


def _speeds(speed: dict[str, float]) -> dict[str, float]:
    """Samples/s of every trainer, and each one's over snnTorch's."""
    return {**{f"{name}_samples_per_s": v for name, v in speed.items()},
            **{f"{name}_over_snntorch": v / speed["snntorch"] for name, v in speed.items() if name != "snntorch"}}


def peer_ratios(speed: dict[str, float]) -> dict[str, object]:
    """Each BioLeaF circuit's samples/s over each measured peer's (``bioleaf_over_norse``, ...) and over the
    fastest peer's (``fastest_peer`` names it)."""
    peers = [name for name in PEERS if name in speed]
    fastest = max(peers, key=speed.__getitem__)
    return {**{f"{b}_over_{p}": speed[b] / speed[p] for b in BIOLEAF_TRAINERS for p in peers if p != "snntorch"},
            "fastest_peer": fastest, **{f"{b}_over_fastest_peer": speed[b] / speed[fastest] for b in BIOLEAF_TRAINERS}}


def _circuits(trainers: dict) -> dict[str, object]:
    """The circuit of each BioLeaF trainer in words, its copies of the circuit per batch (``_phases``: 2 where a free
    and a teacher phase run side by side) and the steps each sample is presented for."""
    return {**{f"{name}_circuit": circuit_label(trainers[name].cfg) for name in BIOLEAF_TRAINERS},
            **{f"{name}_phases": 2 if trainers[name].has_free_phase and not trainers[name].one_presentation else 1
               for name in BIOLEAF_TRAINERS},
            **{f"{name}_steps_per_sample": trainers[name].presentation_steps for name in BIOLEAF_TRAINERS}}


def _ratios(speed: dict[str, float]) -> dict[str, float]:
    """BioLeaF's speed over bptt's, the circuit without copied weights's over the idealised one's, and that circuit's
    in one presentation over its two copies'."""
    return {"bioleaf_over_bptt": speed["bioleaf"] / speed["bptt"],
            "bioleaf_local_over_bioleaf": speed["bioleaf_local"] / speed["bioleaf"],
            "bioleaf_one_over_bioleaf_local": speed["bioleaf_one"] / speed["bioleaf_local"]}


def _arithmetic(median: dict[str, float], recorded: dict[str, RecordedBatch],
                parts: dict[str, dict[str, float]]) -> dict[str, float]:
    """(c): the products of a batch of each circuit (``_float64_gflop_per_batch``: those the circuit runs in
    float64, which the replay runs in float32), and the rate of BioLeaF and of the replay of its products (the
    products part of its limit replay) on them; ``matmul_gflops`` is the idealised circuit's replay."""
    out: dict[str, float] = {}
    for name in BIOLEAF_TRAINERS:
        flops, products = total_flops(recorded[name].matmuls), parts[name]["products"]
        out.update({f"{name}_gflop_per_batch": flops / 1e9, f"{name}_matmuls_per_batch": len(recorded[name].matmuls),
                    f"{name}_float64_gflop_per_batch": total_flops(recorded[name].matmuls, "float64") / 1e9,
                    f"{name}_gflops": flops / median[name] / 1e9, f"{name}_matmul_replay_gflops": flops / products / 1e9,
                    f"{name}_matmul_efficiency": products / median[name]})
    out["matmul_gflops"] = out["bioleaf_matmul_replay_gflops"]
    out["seconds_per_batch_matmul"] = parts["bioleaf"]["products"]
    return out


def _limits(median: dict[str, float], recorded: dict[str, RecordedBatch], parts: dict[str, dict[str, float]],
            trainers: dict) -> dict[str, float]:
    """Each circuit's limit replay: its seconds (the whole, timed in the rotation, and each part's median), what it
    replays, and ``X_limit_efficiency``, the replay's time over the circuit's batch time."""
    out: dict[str, float] = {}
    for name in BIOLEAF_TRAINERS:
        replay = median[LIMIT_TASK.format(name)]
        stepped = [p for group in trainers[name].optimizer.param_groups for p in group["params"]]
        out.update({f"{name}_limit_efficiency": replay / median[name], f"{name}_limit_seconds": replay,
                    **{f"{name}_limit_seconds_{part}": parts[name][part] for part in PARTS},
                    f"{name}_random_draws_per_batch": len(recorded[name].draws),
                    f"{name}_random_numbers_per_batch": sum(math.prod(d.shape) for d in recorded[name].draws),
                    f"{name}_optimizer_tensors": len(stepped),
                    f"{name}_optimizer_parameters": sum(p.numel() for p in stepped)})
    return out
