"""Where the time of a BioLeaF training batch goes (torch.profiler), on 784-400-400-10, T=20, batch 100.

Prints the operators by self CPU time, the matrix products by shape (with their achieved GFLOP/s),
a breakdown into matrix products / element-wise work / everything else (Python, dispatch), and the
number of operator calls and allocations per batch.

    .venv/bin/python bench/profile_bioleaf.py --threads 1
    .venv/bin/python bench/profile_bioleaf.py --threads 1 --circuit local   # the fashion-mnist-local circuit
    .venv/bin/python bench/profile_bioleaf.py --threads 1 --trace /tmp/bioleaf_trace.json   # chrome://tracing
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from bioleaf.config import parse_arch
from bioleaf.rules import make_rule
from bioleaf.tools.bench.flops import recorded_matmuls
from bioleaf.tools.bench.trainers import BIOLEAF_TRAINERS, bench_config

MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::bmm"}  # kernels (aten::matmul is a thin wrapper)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="784-400-400-10")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--batches", type=int, default=5, help="profiled batches (after 2 warm-up batches)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--rows", type=int, default=15)
    p.add_argument("--circuit", choices=tuple(BIOLEAF_TRAINERS.values()), default="idealised",
                   help="the bench's BioLeaF circuit (bioleaf.tools.bench.trainers.circuit_values)")
    p.add_argument("--trace", default=None, help="write a Chrome trace of the profiled batches")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = parse_arch(args.arch)
    rule = make_rule(bench_config("bioleaf", args.arch, args.steps, args.batch, args.circuit), sizes,
                     torch.Generator().manual_seed(0), torch.device("cpu"))
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(args.batch, sizes[0], generator=gen)
    y = torch.randint(0, sizes[-1], (args.batch,), generator=gen)
    for _ in range(2):
        rule.train_batch(x, y, gen)

    t0 = time.perf_counter()
    for _ in range(args.batches):
        rule.train_batch(x, y, gen)
    plain = (time.perf_counter() - t0) / args.batches

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, profile_memory=True) as prof:
        t0 = time.perf_counter()
        for _ in range(args.batches):
            rule.train_batch(x, y, gen)
        profiled = (time.perf_counter() - t0) / args.batches
    if args.trace:
        prof.export_chrome_trace(args.trace)

    n = args.batches
    events = prof.key_averages()
    print(f"threads {torch.get_num_threads()}; {args.arch}, T={args.steps}, batch {args.batch}, "
          f"{rule.has_free_phase + 1} phase(s) per batch")
    print(f"seconds per batch: {plain:.4f} without profiler, {profiled:.4f} with profiler\n")
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))

    # top-level operator totals (self time), grouped
    self_us = {e.key: e.self_cpu_time_total for e in events}
    calls = {e.key: e.count for e in events}
    mm_us = sum(v for k, v in self_us.items() if k in MATMUL_OPS)
    total_ops_us = sum(self_us.values())
    wall_us = profiled * n * 1e6
    ew_keys = [k for k in self_us if k.startswith("aten::") and k not in MATMUL_OPS]  # incl. RNG, copies
    ew_us = sum(self_us[k] for k in ew_keys)
    print("\nmatrix products by shape (per batch):")
    shapes = prof.key_averages(group_by_input_shape=True)
    rows = []
    for e in shapes:
        if e.key in MATMUL_OPS and e.input_shapes:
            (m, k), (_, nn) = e.input_shapes[0], e.input_shapes[1]
            flops = 2 * m * k * nn * e.count
            rows.append((e.self_cpu_time_total / n, e.count // n, f"[{m},{k}]@[{k},{nn}]", flops / (e.self_cpu_time_total * 1e3)))
    for us, c, shape, gflops in sorted(rows, reverse=True):
        print(f"  {shape:<22} {c:>5} calls  {us / 1e3:8.2f} ms  {gflops:6.1f} GFLOP/s")
    recorded = sum(m.flops for m in recorded_matmuls(lambda: rule.train_batch(x, y, gen)))
    print(f"\nmatmul FLOPs per batch: {recorded / 1e9:.3f} GFLOP -> {recorded / plain / 1e9:.1f} GFLOP/s overall,"
          f" {recorded / (mm_us / n) / 1e3:.1f} GFLOP/s inside aten::mm")
    print(f"per batch: {sum(calls.values()) / n:.0f} operator calls, wall {wall_us / n / 1e3:.1f} ms (profiled)")
    print(f"  matrix products   {mm_us / n / 1e3:8.1f} ms  {mm_us / wall_us:6.1%}")
    print(f"  other aten ops    {ew_us / n / 1e3:8.1f} ms  {ew_us / wall_us:6.1%}")
    print(f"  outside operators {(wall_us - total_ops_us) / n / 1e3:8.1f} ms  {(wall_us - total_ops_us) / wall_us:6.1%}"
          "  (Python, dispatch, profiler)")
    allocs = defaultdict(int)
    for e in events:
        if e.cpu_memory_usage > 0:
            allocs[e.key] += e.cpu_memory_usage
    top = sorted(allocs.items(), key=lambda kv: -kv[1])[:8]
    print("bytes allocated per batch by operator: " + ", ".join(f"{k} {v / n / 2**20:.0f} MB" for k, v in top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
