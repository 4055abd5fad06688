"""Our ``bptt`` rule against snnTorch on the same network, side by side on Fashion-MNIST.

Both train 784-400-400-10, T=20, batch 100, Bernoulli input spikes, Adam, a leaky neuron
(``tau_mem`` ms, snnTorch's ``beta = exp(-1/tau_mem)``), fast-sigmoid surrogate (slope 5), threshold 1,
reset by subtraction and the loss cross-entropy(output counts / ce_temperature). They start from the
same weights and see the same batches and the same input spikes (two generators with one seed).
The snnTorch network is :class:`bioleaf.tools.bench.peers.SnnTorchTwin` (``nn.Linear`` + ``snntorch.Leaky``): with
identical weights and spikes its forward pass gives identical output counts (checked below at full
size, and exactly in ``tests/test_bench.py``). By default snnTorch keeps its own convention of a
detached reset (``--attached-reset`` makes the gradients identical to ours too).

The two trainers alternate batch by batch (A B B A ...), so machine load hits both alike; speed is
reported from the total time and from the median batch time, with the ratio ours / snnTorch.

    .venv/bin/python bench/bptt_vs_snntorch.py               # 50 batches each
    .venv/bin/python bench/bptt_vs_snntorch.py --epoch       # one epoch (54000 samples) + test accuracy
    .venv/bin/python bench/bptt_vs_snntorch.py --grad-sums float64   # our shard-invariant gradient sums
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings

import torch

from bioleaf.config import TrainConfig
from bioleaf.data import load_dataset
from bioleaf.model.network import simulate
from bioleaf.model.neurons import NeuronParams
from bioleaf.rules import make_rule
from bioleaf.tools.bench.peers import SnnTorchTrainer, require_snntorch

EVAL_BATCH = 1000


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, default=50, help="training batches per framework (default 50)")
    p.add_argument("--epoch", action="store_true", help="train one full epoch (54000 samples) and test both")
    p.add_argument("--tau-mem", type=float, default=20.0, help="membrane time constant in ms (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--attached-reset", action="store_true",
                   help="let snnTorch's reset carry the surrogate gradient (as ours does): identical gradients")
    p.add_argument("--grad-sums", default="float32", choices=("float32", "float64"),
                   help="precision of our weight-gradient sums (default float32, as snnTorch)")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST IDX directory (default: the system one)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    return p.parse_args(argv)


@torch.no_grad()
def test_accuracy(infer, x, y, seed: int) -> float:
    """Accuracy with a fresh spike generator: both frameworks see the same test spikes."""
    gen = torch.Generator().manual_seed(seed + 3)
    correct = sum(int((infer(x[i:i + EVAL_BATCH], gen) == y[i:i + EVAL_BATCH]).sum())
                  for i in range(0, len(y), EVAL_BATCH))
    return correct / len(y)


@torch.no_grad()
def forward_agreement(rule, twin: SnnTorchTrainer, images: torch.Tensor, seed: int) -> float:
    """Fraction of output spike counts that are identical in one forward pass with the same spikes."""
    cfg, n = rule.cfg, images.shape[0]
    ours = simulate(rule.weights, cfg.encoder_obj().stream(images, cfg.steps, torch.Generator().manual_seed(seed)),
                    batch=n, steps=cfg.steps, neuron=cfg.neuron).output
    theirs, _ = twin.net(cfg.encoder_obj().stream(images, cfg.steps, torch.Generator().manual_seed(seed)),
                         batch=n, steps=cfg.steps)
    return float((ours == theirs).float().mean())


def main(argv=None) -> int:
    args = parse_args(argv)
    snntorch, _ = require_snntorch()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset("fashion-mnist", args.data_dir, val_fraction=0.1)
    cfg = TrainConfig(rule="bptt", arch="784-400-400-10", steps=20, batch_size=100, encoder="bernoulli",
                      optimizer="adam", seed=args.seed, neuron=NeuronParams(tau_mem=args.tau_mem),
                      grad_sums=args.grad_sums).validate()
    sizes = cfg.sizes(data.input_size, data.num_classes)
    ours = make_rule(cfg, sizes, torch.Generator().manual_seed(cfg.seed), torch.device("cpu"))
    twin = SnnTorchTrainer(cfg, sizes, ours.weights, detach_reset=not args.attached_reset)

    order = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(cfg.seed + 1))
    n_batches = -(-len(order) // cfg.batch_size) if args.epoch else args.batches
    agreement = forward_agreement(ours, twin, data.train_x[order[:cfg.batch_size]], cfg.seed + 7)
    print(f"snnTorch {snntorch.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{len(data.train_y)} training samples, {n_batches} batches of {cfg.batch_size}")
    print(f"forward check (same weights, same spikes): {agreement:.4%} of output counts identical")

    gens = {"ours": torch.Generator().manual_seed(cfg.seed + 2), "snntorch": torch.Generator().manual_seed(cfg.seed + 2)}
    trainers = {"ours": ours, "snntorch": twin}
    seconds = {k: [] for k in trainers}
    loss = {k: 0.0 for k in trainers}
    correct = {k: 0 for k in trainers}
    samples = 0
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True to a scalar")
    for b in range(n_batches):
        idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
        x, y = data.train_x[idx], data.train_y[idx]
        for name in (("ours", "snntorch") if b % 2 == 0 else ("snntorch", "ours")):
            t0 = time.perf_counter()
            stats = trainers[name].train_batch(x, y, gens[name])
            seconds[name].append(time.perf_counter() - t0)
            loss[name] += stats.loss_sum
            correct[name] += stats.correct
        samples += len(idx)
        if (b + 1) % 50 == 0 or b + 1 == n_batches:
            print(f"  batch {b + 1}/{n_batches}: " + "  ".join(
                f"{k} loss {loss[k] / samples:.4f} acc {correct[k] / samples:.3f} "
                f"{samples / sum(seconds[k]):.0f} samples/s" for k in trainers), flush=True)

    result = {"snntorch_version": snntorch.__version__, "torch_version": torch.__version__,
              "threads": torch.get_num_threads(), "batches": n_batches, "samples": samples,
              "tau_mem": args.tau_mem, "attached_reset": args.attached_reset, "grad_sums": args.grad_sums,
              "forward_identical_fraction": agreement}
    for k in trainers:
        result[f"{k}_samples_per_s"] = samples / sum(seconds[k])
        result[f"{k}_samples_per_s_median"] = cfg.batch_size / statistics.median(seconds[k])
        result[f"{k}_train_loss"] = loss[k] / samples
        result[f"{k}_train_accuracy"] = correct[k] / samples
    result["ours_over_snntorch"] = result["ours_samples_per_s"] / result["snntorch_samples_per_s"]
    result["ours_over_snntorch_median"] = result["ours_samples_per_s_median"] / result["snntorch_samples_per_s_median"]
    paired = [s / o for o, s in zip(seconds["ours"], seconds["snntorch"])]
    result["ours_over_snntorch_paired_median"] = statistics.median(paired)
    w_diff = [float((w - fc.weight).norm() / w.norm()) for w, fc in zip(ours.weights, twin.net.fc)]
    result["weight_relative_difference"] = w_diff
    if args.epoch:
        result["ours_test_accuracy"] = test_accuracy(ours.infer, data.test_x, data.test_y, cfg.seed)
        result["snntorch_test_accuracy"] = test_accuracy(twin.infer, data.test_x, data.test_y, cfg.seed)

    print(f"samples/second  ours {result['ours_samples_per_s']:.1f}  snnTorch {result['snntorch_samples_per_s']:.1f}"
          f"  ratio ours/snnTorch {result['ours_over_snntorch']:.3f} (medians: {result['ours_over_snntorch_median']:.3f},"
          f" paired median {result['ours_over_snntorch_paired_median']:.3f})")
    print(f"relative weight difference after training, per layer: {', '.join(f'{d:.3g}' for d in w_diff)}")
    if args.epoch:
        print(f"test accuracy after one epoch  ours {result['ours_test_accuracy']:.4f}  "
              f"snnTorch {result['snntorch_test_accuracy']:.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
