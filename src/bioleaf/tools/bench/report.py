"""The whole bench as one flat dict (what ``bioleaf bench`` prints, and its ``--json``), and the command
``python -m bioleaf.tools.bench [--quick] [--speed-only] [--json]`` or ``--memory-probe SPEC`` (one probe, JSON
out)."""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace

import torch

from bioleaf.tools.bench.memory import memory_probe
from bioleaf.tools.bench.probes import measure_memory
from bioleaf.tools.bench.runtime import bench_threads, torch_threads
from bioleaf.tools.bench.settings import FULL, QUICK, BenchSettings
from bioleaf.tools.bench.speed import measure_speed
from bioleaf.tools.bench.peers import OPTIONAL_PEERS, TWIN_NEURON, installed, package_version, require_snntorch


def machine(device: torch.device) -> dict:
    """Where a bench ran: the device (and the GPU's name), the versions of torch, snnTorch and every installed
    optional peer."""
    snntorch, _ = require_snntorch()
    gpu = {"gpu": torch.cuda.get_device_name(device)} if device.type == "cuda" else {}
    peers = {f"{name}_version": package_version(name) for name in OPTIONAL_PEERS if installed(name)}
    return {"device": str(device), **gpu, "torch_version": torch.__version__, "snntorch_version": snntorch.__version__,
            **peers}


def run_bench(quick: bool = False, *, settings: BenchSettings | None = None,
              device: torch.device = torch.device("cpu"), speed_only: bool = False) -> dict:
    """The whole bench (a, b, c) on ``device`` as one flat dict; ``quick``: tiny sizes, a smoke test of the bench;
    ``speed_only``: (a) and (c) without the memory probes of (b)."""
    where = machine(device)
    s = settings or (QUICK if quick else FULL)
    s = replace(s, threads=bench_threads(s.threads))
    t0 = time.perf_counter()
    load_before = os.getloadavg()[0]
    result: dict = {}
    with torch_threads(s.threads):
        result.update(measure_speed(s, device=device))
        result["torch_threads"] = torch.get_num_threads()
    result["speed_seconds"] = time.perf_counter() - t0
    if not speed_only:
        result.update(measure_memory(s, device=device))
        result["memory_seconds"] = time.perf_counter() - t0 - result["speed_seconds"]
    result.update({"quick": quick, "speed_only": speed_only, **run_sizes(s), "twin_tau_mem_ms": TWIN_NEURON.tau_mem, **where,
                   "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                   "bench_seconds": time.perf_counter() - t0})
    return result


def run_sizes(s: BenchSettings) -> dict:
    """The sizes and repetitions of a run, as the report lists them."""
    return {"speed_arch": s.speed_arch, "speed_steps": s.speed_steps, "speed_batch": s.speed_batch,
            "speed_rounds": s.speed_rounds, "memory_arch": s.memory_arch, "memory_batch": s.memory_batch,
            "memory_steps": list(s.memory_steps), "memory_batches": s.memory_batches,
            "memory_repeats": s.memory_repeats, "memory_threads": s.memory_threads}


def text_report(result: dict) -> str:
    """What the bench prints without ``--json``: one ``key: value`` line per figure."""
    return "\n".join(f"{k}: {v}" for k, v in result.items())


def main(argv: list[str] | None = None) -> int:
    """``python -m bioleaf.tools.bench [--quick] [--speed-only] [--json]`` or ``--memory-probe SPEC`` (one probe,
    JSON out)."""
    p = argparse.ArgumentParser(prog="python -m bioleaf.tools.bench")
    p.add_argument("--memory-probe", metavar="JSON", help="run one memory probe: {rule, steps, arch, batch, batches}")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--speed-only", action="store_true", help="(a) and (c) only, without the memory probes")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.memory_probe:
        print(json.dumps(memory_probe(**json.loads(args.memory_probe))), flush=True)
        return 0
    result = run_bench(quick=args.quick, speed_only=args.speed_only)
    print(json.dumps(result) if args.json else text_report(result))
    return 0
