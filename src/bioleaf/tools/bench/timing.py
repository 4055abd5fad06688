"""The rotation that times trainers: fixed batches, one task per trainer, and every task run once per round
in a rotating order, so a CPU shared with other jobs slows every trainer alike."""

from __future__ import annotations

import time
from typing import Callable, Protocol

import torch

from bioleaf.config import parse_arch
from bioleaf.data import dataset_available, load_dataset
from bioleaf.errors import is_out_of_memory
from bioleaf.tools.bench.runtime import no_wait, release_cached


class Trainer(Protocol):
    """What the rotation trains: one batch of images and labels, input spikes drawn from ``generator``."""

    def train_batch(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> object:
        ...


def time_interleaved(tasks: dict[str, Callable[[], object]], *, warmup: int, rounds: int,
                     sync: Callable[[], None] = no_wait) -> dict[str, list[float]]:
    """Run every task once per round, in a rotating order; the seconds of each timed call (``sync``
    is called before the clock is read, e.g. :func:`~bioleaf.tools.bench.runtime.synchronizer`)."""
    names = list(tasks)
    for _ in range(warmup):
        for name in names:
            tasks[name]()
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            sync()
            t0 = time.perf_counter()
            tasks[name]()
            sync()
            seconds[name].append(time.perf_counter() - t0)
    return seconds


def fixed_batches(arch: str, batch: int, n: int, generator: torch.Generator, device: torch.device,
                  use_dataset: bool = False) -> tuple[list[torch.Tensor], list[torch.Tensor], str]:
    """``n`` fixed training batches on ``device`` and where they came from: Fashion-MNIST when installed and
    ``use_dataset`` (for a 784-...-10 network), else uniform noise (the speed of dense products does not
    depend on pixel values)."""
    sizes = parse_arch(arch)
    images = labels = None
    source = "uniform-noise"
    if use_dataset and sizes[0] == 784 and sizes[-1] == 10 and dataset_available("fashion-mnist"):
        data = load_dataset("fashion-mnist", val_fraction=0.1)
        chosen = torch.randperm(len(data.train_y), generator=generator)[:n * batch]
        images, labels, source = data.train_x[chosen], data.train_y[chosen], "fashion-mnist"
    if images is None:
        images = torch.rand(n * batch, sizes[0], generator=generator)
        labels = torch.randint(0, sizes[-1], (n * batch,), generator=generator)
    return list(images.to(device).split(batch)), list(labels.to(device).split(batch)), source


class TrainerTurn:
    """One trainer's task in the rotation: train its next fixed batch (cycling through them) with input spikes
    from its own generator. With an ``oom`` set, a trainer that runs out of memory joins it, is dropped from
    ``trainers`` (its memory handed back), and its turns do nothing from then on."""

    def __init__(self, trainers: dict[str, Trainer | None], name: str,
                 batches: list[tuple[torch.Tensor, torch.Tensor]], generator: torch.Generator, device: torch.device,
                 oom: set[str] | None):
        self.trainers, self.name, self.batches = trainers, name, batches
        self.generator, self.device, self.oom = generator, device, oom
        self.position = 0

    def __call__(self) -> None:
        if self.oom is not None and self.name in self.oom:
            return
        images, labels = self.batches[self.position % len(self.batches)]
        self.position += 1
        try:
            self.trainers[self.name].train_batch(images, labels, self.generator)
        except (RuntimeError, MemoryError) as e:
            if self.oom is None or not is_out_of_memory(e):
                raise
            self._drop()

    def _drop(self) -> None:
        """Out of memory: mark the trainer, let go of it and hand its memory back."""
        self.oom.add(self.name)
        self.trainers[self.name] = None
        release_cached(self.device)


def rotation_tasks(trainers: dict[str, Trainer | None], xs: list[torch.Tensor], ys: list[torch.Tensor], seed: int,
                   device: torch.device, oom: set[str] | None = None) -> dict[str, TrainerTurn]:
    """One :class:`TrainerTurn` per trainer for :func:`time_interleaved`, all cycling through the batches
    ``xs``/``ys``, each with input spikes from a generator of its own seeded with ``seed + 2``."""
    batches = list(zip(xs, ys))
    return {name: TrainerTurn(trainers, name, batches, torch.Generator(device=device).manual_seed(seed + 2),
                              device, oom)
            for name in trainers}
