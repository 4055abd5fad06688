"""Data-parallel throughput on this machine: one process against K ranks under torchrun.

Each repeat trains every rule once as one process and once as K ranks (``--distributed``), both with
the ``fashion-mnist`` preset's settings (for BioLeaF the headline circuit) except for the sizes below,
one thread per process and the same global batch, interleaved (1 process, K ranks, next rule, ...)
so that a change in machine load hits both settings alike. The figure is ``samples_per_second``
from each run's ``summary.json`` (the training loop only: no start-up, no evaluation); the table
reports the median over repeats, the speed-up (K ranks / 1 process) and the scaling efficiency
(speed-up / K). Example (docs/distributed.md)::

    python bench/distributed_throughput.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(flags: list[str], out: Path, ranks: int) -> float:
    """Train once (``ranks`` = 1: a plain process); the run's samples per second."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if ranks == 1:
        cmd = [sys.executable, "-m", "bioleaf", "train", *flags, "--out", str(out)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}", "--master_addr=127.0.0.1",
               f"--master_port={free_port()}", "-m", "bioleaf", "train", *flags, "--distributed", "--out", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"distributed_throughput: {' '.join(cmd)} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    return json.loads((out / "summary.json").read_text())["samples_per_second"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rules", default="bioleaf,stbp,bptt")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--arch", default="784-400-400-10")
    p.add_argument("--limit", type=int, default=2000, help="training samples (default 2000)")
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--epochs", type=int, default=1)
    args = p.parse_args(argv)
    if args.ranks < 2 or args.repeats < 1:
        p.error("--ranks must be >= 2 and --repeats >= 1")
    rules = args.rules.split(",")
    # the Fashion-MNIST preset's settings (BioLeaF: its headline circuit), with this run's sizes
    common = ["--preset", "fashion-mnist", "--dataset", args.dataset, "--arch", args.arch, "--limit", str(args.limit), "--batch-size",
              str(args.batch_size), "--steps", str(args.steps), "--epochs", str(args.epochs), "--threads", "1",
              "--no-progress", "--overwrite"]
    rates: dict[tuple[str, int], list[float]] = {(r, k): [] for r in rules for k in (1, args.ranks)}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for rule in rules:
                for k in (1, args.ranks):
                    rate = train(["--rule", rule, *common], Path(tmp) / f"{rule}-{k}", k)
                    rates[rule, k].append(rate)
                    print(f"repeat {repeat + 1}/{args.repeats} {rule} {k} process(es): {rate:.0f} samples/s", flush=True)
    print(f"\n{args.arch}, {args.dataset} ({args.limit} samples), batch {args.batch_size}, T={args.steps}, "
          f"{args.epochs} epoch(s), one thread per process, median of {args.repeats}")
    print(f"| rule | 1 process | {args.ranks} ranks | speed-up | scaling efficiency |\n|---|---|---|---|---|")
    for rule in rules:
        one, many = statistics.median(rates[rule, 1]), statistics.median(rates[rule, args.ranks])
        print(f"| `{rule}` | {one:.0f} samples/s | {many:.0f} | {many / one:.2f} | {many / one / args.ranks:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
