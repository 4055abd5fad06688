"""The bench's trainers on the working tree against the same trainers of an earlier git revision, in one process.

The package of ``--rev`` is extracted (``git archive``) into a temporary directory and imported under
another name beside the working tree's ``bioleaf``; each trainer of both versions, built from the same
seed, trains the same fixed batch in alternation (the order swaps every round), so a shared CPU slows both
alike. Prints per trainer the median batch time of each version, their ratio (below 1: the working tree is
faster) and whether the two ended with bit-identical weights.

    .venv/bin/python bench/against_revision.py --rev HEAD~1 --threads 1
    .venv/bin/python bench/against_revision.py --rev v0.1.0 --trainers bioleaf --rounds 30
"""

from __future__ import annotations

import argparse
import importlib
import io
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

import bioleaf.tools.bench.trainers as current_trainers
from bioleaf.config import parse_arch

REPO = Path(__file__).resolve().parents[1]
TRAINER_MODULES = {"tools/bench/trainers.py": "tools.bench.trainers", "tools/bench.py": "tools.bench",
                   "bench.py": "bench"}
"""Where the bench's ``make_trainer`` lived, by the package layout: file in the package, module name."""


def import_revision(rev: str, into: Path):
    """The module with the bench's ``make_trainer`` (:data:`TRAINER_MODULES`) of git revision ``rev``, extracted
    under ``into`` as the package ``bioleaf_rev``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "src/bioleaf"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    package = into / "bioleaf_rev"
    (into / "src" / "bioleaf").rename(package)
    for module in package.rglob("*.py"):  # absolute imports of the package name the extracted copy
        text = module.read_text()
        module.write_text(re.sub(r"^(\s*)(from|import) bioleaf\b", r"\1\2 bioleaf_rev", text, flags=re.M))
    sys.path.insert(0, str(into))
    module = next(name for path, name in TRAINER_MODULES.items() if (package / path).exists())
    return importlib.import_module(f"bioleaf_rev.{module}")


def final_weights(trainer) -> list[torch.Tensor]:
    """The synapses a bench trainer ends with: a circuit's, the snnTorch twin's, or a rule's weights."""
    if hasattr(trainer, "circuit"):
        return list(trainer.circuit.tensors().values())
    if hasattr(trainer, "net"):
        return [p.detach() for p in trainer.net.parameters()]
    return list(trainer.weights)


def compare(name: str, benches: dict, arch: str, steps: int, batch: int, rounds: int) -> str:
    sizes, data = parse_arch(arch), torch.Generator().manual_seed(1)
    images = torch.rand(batch, sizes[0], generator=data)
    labels = torch.randint(0, sizes[-1], (batch,), generator=data)
    trainers = {v: b.make_trainer(name, arch, steps, batch, torch.device("cpu")) for v, b in benches.items()}
    spikes = {v: torch.Generator().manual_seed(0) for v in benches}
    seconds = {v: [] for v in benches}
    for r in range(rounds + 2):  # two untimed rounds first
        for v in (list(benches) if r % 2 else list(benches)[::-1]):
            t0 = time.perf_counter()
            trainers[v].train_batch(images, labels, spikes[v])
            if r >= 2:
                seconds[v].append(time.perf_counter() - t0)
    old, new = (statistics.median(seconds[v]) for v in benches)
    same = all(torch.equal(a, b) for a, b in zip(*(final_weights(t) for t in trainers.values())))
    return (f"{name}: {list(benches)[0]} {old * 1e3:.1f} ms, working tree {new * 1e3:.1f} ms per batch, "
            f"ratio {new / old:.3f}, bit-identical weights: {same}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rev", required=True, help="git revision to compare against")
    p.add_argument("--trainers", default="bioleaf,bioleaf_local,bptt", help="comma-separated bench trainers")
    p.add_argument("--arch", default="784-400-400-10")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            old = import_revision(args.rev, Path(tmp))
        except subprocess.CalledProcessError as e:
            print(f"against_revision: --rev {args.rev}: not a revision of this repository "
                  f"({e.stderr.decode().strip().splitlines()[-1]})", file=sys.stderr)
            return 1
        for name in args.trainers.split(","):
            print(compare(name, {args.rev: old, "working tree": current_trainers}, args.arch, args.steps,
                          args.batch, args.rounds), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
