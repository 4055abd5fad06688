"""The circuit's time step compiled by ``torch.compile`` against the eager step, in one process.

Each copy of the circuit advances one time step in :meth:`bioleaf.model.circuit.presentation.Copy.advance` (the layer step
of every population, the running sums). This script builds each of the bench's BioLeaF trainers twice from
the same seed, one whose copies step eagerly and one whose step is ``torch.compile(Copy.advance, mode=...)``
(TorchDynamo + Inductor: the element-wise work of a step fused into generated kernels, the products left to
the BLAS), and trains the same fixed batch with both in alternation (the order swaps every round, so a
shared machine slows both alike). It prints per trainer the compile time, the median batch time of each, their
ratio (below 1: the compiled step is faster) and how far the two ended apart in their weights (fused kernels
may round differently from the eager operators).

    .venv/bin/python bench/compiled_step.py --threads 1
    python bench/compiled_step.py --device cuda --mode reduce-overhead   # CUDA graphs as well
    .venv/bin/python bench/compiled_step.py --backend aot_eager   # Dynamo's graphs run by eager kernels
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from bioleaf.errors import UsageError
from bioleaf.model.circuit.presentation import Copy
from bioleaf.tools.bench.runtime import bench_device, quiet_scalar_warnings, synchronizer
from bioleaf.tools.bench.timing import fixed_batches, rotation_tasks, time_interleaved
from bioleaf.tools.bench.trainers import BIOLEAF_TRAINERS, make_trainer

EAGER_ADVANCE = Copy.advance


class SteppedBy:
    """A trainer whose circuit copies step with ``advance`` (installed on :class:`Copy` for its batches only)."""

    def __init__(self, trainer, advance):
        self.trainer, self.advance = trainer, advance

    def train_batch(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> None:
        Copy.advance = self.advance
        try:
            self.trainer.train_batch(x, y, generator)
        finally:
            Copy.advance = EAGER_ADVANCE


def max_weight_difference(a, b) -> float:
    """The largest absolute difference between the two trainers' synapses of the same name."""
    wa, wb = a.synapses(), b.synapses()
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa if wa[k].numel())


def compare(name: str, args, device: torch.device) -> dict:
    """Eager against compiled for the trainer ``name``: compile seconds, median batch seconds, weight gap."""
    options = {"mode": args.mode} if args.backend == "inductor" else {}
    compiled = torch.compile(EAGER_ADVANCE, backend=args.backend, dynamic=False, **options)
    runs = {kind: SteppedBy(make_trainer(name, args.arch, args.steps, args.batch, device, args.seed), advance)
            for kind, advance in (("eager", EAGER_ADVANCE), ("compiled", compiled))}
    xs, ys, _ = fixed_batches(args.arch, args.batch, 1, torch.Generator().manual_seed(args.seed + 1), device)
    tasks = rotation_tasks(runs, xs, ys, args.seed, device)
    sync = synchronizer(device)
    t0 = time.perf_counter()
    tasks["compiled"]()  # compiles every variant of the step the trainer's copies need
    sync()
    compile_s = time.perf_counter() - t0
    tasks["eager"]()  # both have trained one batch
    with quiet_scalar_warnings():
        seconds = time_interleaved(tasks, warmup=args.warmup, rounds=args.rounds, sync=sync)
    med = {kind: statistics.median(t) for kind, t in seconds.items()}
    return {"compile_s": compile_s, **med, "gap": max_weight_difference(runs["eager"].trainer, runs["compiled"].trainer)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="784-400-400-10")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--rounds", type=int, default=20, help="timed batches of each (default 20)")
    p.add_argument("--warmup", type=int, default=2, help="untimed batches of each after compiling (default 2)")
    p.add_argument("--trainers", nargs="+", choices=tuple(BIOLEAF_TRAINERS), default=list(BIOLEAF_TRAINERS))
    p.add_argument("--mode", default="default", help="torch.compile mode of inductor (default, reduce-overhead, ...)")
    p.add_argument("--backend", default="inductor", choices=("inductor", "aot_eager", "eager"),
                   help="torch.compile backend (default inductor)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = bench_device(args.device)
    except UsageError as e:
        print(f"compiled_step: {e}", file=sys.stderr)
        return 1
    print(f"torch {torch.__version__} on {device}, {torch.get_num_threads()} thread(s); {args.arch}, T={args.steps}, "
          f"batch {args.batch}; torch.compile backend {args.backend}, mode {args.mode!r}, {args.rounds} rounds")
    for name in args.trainers:
        r = compare(name, args, device)
        print(f"{name:<14} compile {r['compile_s']:6.1f} s   eager {1e3 * r['eager']:7.1f} ms   compiled "
              f"{1e3 * r['compiled']:7.1f} ms   compiled/eager {r['compiled'] / r['eager']:.3f}   "
              f"max weight difference {r['gap']:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
