"""The bench's measurements (a) and (c): the training speed of every trainer and peer, and the arithmetic rate of a
BioLeaF batch against a plain ``torch.matmul`` replay of its products.

All trainers, peers and the replay take turns in one rotation (:func:`~bioleaf.tools.bench.timing.time_interleaved`);
each speed is the batch over the median batch time. The products of a BioLeaF batch are recorded during one extra,
untimed batch of each circuit (:func:`~bioleaf.tools.bench.flops.recorded_matmuls`).
"""

from __future__ import annotations

import statistics

import torch

from bioleaf.tools.bench.flops import Matmul, matmul_replay, recorded_matmuls, total_flops
from bioleaf.tools.bench.peers import OPTIONAL_PEERS, PEERS, SKIPPED, installed, require_snntorch
from bioleaf.tools.bench.runtime import quiet_scalar_warnings, synchronizer
from bioleaf.tools.bench.settings import BenchSettings
from bioleaf.tools.bench.timing import fixed_batches, rotation_tasks, time_interleaved
from bioleaf.tools.bench.trainers import BIOLEAF_TRAINERS, circuit_label, make_trainer

OWN_TRAINERS = ("bioleaf", "bioleaf_local", "bptt", "bptt_float64")
"""Our trainers measurement (a) times, before the peers, in the order of the rotation."""
REPLAY = "matmul"
"""The name of the ``torch.matmul`` replay among the timed tasks."""


def speed_trainers() -> tuple[tuple[str, ...], dict[str, str]]:
    """The trainers (a) times (ours, snnTorch and every optional peer whose package imports), and the status of
    each optional peer: ``"measured"`` or :data:`~bioleaf.tools.bench.peers.SKIPPED`."""
    status = {name: "measured" if installed(name) else SKIPPED for name in OPTIONAL_PEERS}
    return (*OWN_TRAINERS, *(n for n in PEERS if status.get(n, "measured") == "measured")), status


def measure_speed(settings: BenchSettings, seed: int = 0, device: torch.device = torch.device("cpu")) -> dict:
    """(a) and (c): samples/s of bioleaf (both circuits), bptt (both gradient sums) and the peers, and the
    GFLOP/s of a BioLeaF batch against ``torch.matmul`` on the same products."""
    require_snntorch()
    s = settings
    names, status = speed_trainers()
    xs, ys, source = fixed_batches(s.speed_arch, s.speed_batch, s.speed_warmup + s.speed_rounds,
                                   torch.Generator().manual_seed(seed + 1), device, s.use_dataset)
    trainers = {name: make_trainer(name, s.speed_arch, s.speed_steps, s.speed_batch, device, seed) for name in names}
    tasks = rotation_tasks(trainers, xs, ys, seed, device)
    matmuls = recorded_matmuls(tasks["bioleaf"])  # an extra, untimed warm-up batch
    local_flops = total_flops(recorded_matmuls(tasks["bioleaf_local"]))  # the same for the local circuit
    tasks[REPLAY] = matmul_replay(matmuls, torch.Generator().manual_seed(seed + 4), device)
    with quiet_scalar_warnings():
        seconds = time_interleaved(tasks, warmup=s.speed_warmup, rounds=s.speed_rounds, sync=synchronizer(device))
    median = {name: statistics.median(t) for name, t in seconds.items()}
    speed = {name: s.speed_batch / median[name] for name in names}
    return {**_speeds(speed), **status, **peer_ratios(speed), **_circuits(trainers), **_ratios(speed),
            **_arithmetic(median, matmuls, local_flops), "speed_data": source,
            **{f"seconds_per_batch_{name}": t for name, t in median.items()}}


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
    """The circuit of each BioLeaF trainer in words, and its presentations per batch."""
    return {**{f"{name}_circuit": circuit_label(trainers[name].cfg) for name in BIOLEAF_TRAINERS},
            **{f"{name}_phases": 2 if trainers[name].has_free_phase else 1 for name in BIOLEAF_TRAINERS}}


def _ratios(speed: dict[str, float]) -> dict[str, float]:
    """BioLeaF's speed over bptt's, and the circuit without copied weights's over the idealised one's."""
    return {"bioleaf_over_bptt": speed["bioleaf"] / speed["bptt"],
            "bioleaf_local_over_bioleaf": speed["bioleaf_local"] / speed["bioleaf"]}


def _arithmetic(median: dict[str, float], matmuls: list[Matmul], local_flops: int) -> dict[str, float]:
    """(c): the products of a batch of each circuit, and the rate of BioLeaF and of the replay on them."""
    flops = total_flops(matmuls)
    return {"bioleaf_gflop_per_batch": flops / 1e9, "bioleaf_local_gflop_per_batch": local_flops / 1e9,
            "bioleaf_matmuls_per_batch": len(matmuls), "bioleaf_gflops": flops / median["bioleaf"] / 1e9,
            "matmul_gflops": flops / median[REPLAY] / 1e9,
            "bioleaf_matmul_efficiency": median[REPLAY] / median["bioleaf"]}
