"""Our ``bptt`` against snnTorch, batch by batch in one process, and where the time goes (torch.profiler).

Both train 784-400-400-10, T=20, batch 100 from the same weights on one fixed batch (random
images), taking turns (A B B A ...); prints the median milliseconds per batch of each and the speed
ratio ours / snnTorch, then, with ``--profile``, the operators of three batches of each by self CPU
time (``--shapes``: split by input shape).

    .venv/bin/python bench/profile_bptt.py --threads 1
    .venv/bin/python bench/profile_bptt.py --threads 1 --grad-sums float64 --profile --shapes
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.profiler import profile

from bioleaf.config import TrainConfig
from bioleaf.rules import make_rule
from bioleaf.tools.bench.peers import TWIN_NEURON, SnnTorchTrainer


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=20, help="batches per trainer (the first 2 are not timed)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--grad-sums", default=None, choices=("float32", "float64"), help="ours (default: its default)")
    p.add_argument("--profile", action="store_true", help="also profile 3 batches of each")
    p.add_argument("--shapes", action="store_true", help="group the profile by input shapes")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    extra = {} if args.grad_sums is None else {"grad_sums": args.grad_sums}
    cfg = TrainConfig(rule="bptt", arch="784-400-400-10", steps=20, batch_size=100, encoder="bernoulli",
                      optimizer="adam", seed=0, neuron=TWIN_NEURON, **extra).validate()
    sizes = [784, 400, 400, 10]
    ours = make_rule(cfg, sizes, torch.Generator().manual_seed(0), torch.device("cpu"))
    trainers = {"ours": ours, "snntorch": SnnTorchTrainer(cfg, sizes, ours.weights)}
    g = torch.Generator().manual_seed(1)
    x = torch.rand(100, 784, generator=g) * (torch.rand(100, 784, generator=g) < 0.5)
    y = torch.randint(0, 10, (100,), generator=g)
    gens = {k: torch.Generator().manual_seed(2) for k in trainers}
    times: dict[str, list[float]] = {k: [] for k in trainers}
    for r in range(args.rounds):
        for k in (("ours", "snntorch") if r % 2 else ("snntorch", "ours")):
            t0 = time.perf_counter()
            trainers[k].train_batch(x, y, gens[k])
            times[k].append(time.perf_counter() - t0)
    ms = {k: 1000 * statistics.median(v[2:]) for k, v in times.items()}
    print(f"median ms per batch: ours {ms['ours']:.1f}, snnTorch {ms['snntorch']:.1f}; "
          f"speed ours / snnTorch {ms['snntorch'] / ms['ours']:.3f} ({torch.get_num_threads()} threads)")
    if args.profile:
        for k, trainer in trainers.items():
            with profile(record_shapes=args.shapes) as prof:
                for _ in range(3):
                    trainer.train_batch(x, y, gens[k])
            print(f"\n{k} (3 batches)")
            print(prof.key_averages(group_by_input_shape=args.shapes).table(
                sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=28))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
