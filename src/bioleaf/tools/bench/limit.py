r"""The work a training batch cannot avoid, recorded off the training code and replayed alone: the limit a
trainer's batch time is measured against.

Three parts, each read off one recorded batch of the trainer itself:

- **products**: every matrix product at its shape, in order (:func:`~bioleaf.tools.bench.flops.matmul_replay`);
- **random**: every random draw of the input encoding at its shape and dtype (``torch.rand``: one ``[batch,
  n_in]`` frame per step for the Bernoulli encoder) and its comparison with the spike probabilities,
  :math:`s = [u < r_{max}\, p]`, written into a float tensor as the encoder writes it;
- **optimizer**: one step of the trainer's own optimiser (its class, settings and parameter groups) on tensors of
  the shapes it updates, with gradients in place.

The replay runs the parts one after the other and keeps the seconds of each (:attr:`LimitReplay.seconds`); the
rotation (:func:`~bioleaf.tools.bench.timing.time_interleaved`) times the whole. What it leaves out is what a
trainer could in principle avoid: its element-wise population steps, running sums, casts and copies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from bioleaf.tools.bench.flops import Matmul, MatmulRecorder, matmul_replay
from bioleaf.tools.bench.runtime import no_wait

PARTS = ("products", "random", "optimizer")
"""The parts of a replay, in the order it runs them."""
LIMIT_TASK = "limit_{}"
"""The name of a trainer's limit replay among the tasks of a timed rotation."""


@dataclass(frozen=True)
class Draw:
    """One call that fills a tensor ``shape`` of ``dtype`` with uniform random numbers."""

    shape: tuple[int, ...]
    dtype: torch.dtype


@dataclass
class RecordedBatch:
    """The matrix products and the random draws of one training batch, in the order torch dispatched them."""

    matmuls: list[Matmul]
    draws: list[Draw]


class BatchRecorder(MatmulRecorder):
    """A dispatch mode that lists every matrix product (``calls``) and every uniform random draw (``draws``:
    ``torch.rand`` and ``Tensor.uniform_``) torch runs under it, and runs them."""

    RANDOM = (torch.ops.aten.rand.default, torch.ops.aten.rand.generator, torch.ops.aten.uniform_.default)

    def __init__(self) -> None:
        super().__init__()
        self.draws: list[Draw] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in self.RANDOM:
            kwargs = kwargs or {}
            if func is torch.ops.aten.uniform_.default:
                self.draws.append(Draw(tuple(args[0].shape), args[0].dtype))
            else:
                self.draws.append(Draw(tuple(args[0]), kwargs.get("dtype") or torch.get_default_dtype()))
        return super().__torch_dispatch__(func, types, args, kwargs)


def recorded_batch(fn: Callable[[], object]) -> RecordedBatch:
    """The products and random draws ``fn()`` (one training batch) executes."""
    with BatchRecorder() as recorder:
        fn()
    return RecordedBatch(recorder.calls, recorder.draws)


def draw_replay(draws: list[Draw], generator: torch.Generator, device: torch.device) -> Callable[[], None]:
    """The draws again, each followed by the Bernoulli encoder's comparison :math:`[u < r]` with fixed spike
    probabilities :math:`r` into a float tensor (``generator`` lives on ``device``)."""
    rates = {d: torch.rand(d.shape, generator=generator, dtype=d.dtype, device=device) / 2 for d in set(draws)}
    spikes = {d: torch.empty(d.shape, dtype=d.dtype, device=device) for d in set(draws)}

    def replay() -> None:
        for d in draws:
            u = torch.rand(d.shape, generator=generator, dtype=d.dtype, device=device)
            torch.lt(u, rates[d], out=spikes[d])

    return replay


def optimizer_replay(optimizer: torch.optim.Optimizer, generator: torch.Generator) -> Callable[[], None]:
    """One step of a fresh optimiser of ``optimizer``'s class, settings and parameter groups, on random tensors
    of its parameters' shapes, dtypes and device, each with a random gradient (drawn from the CPU ``generator``)."""
    def like(p: torch.Tensor) -> torch.Tensor:
        return torch.rand(p.shape, generator=generator, dtype=p.dtype).to(p.device)

    groups = []
    for group in optimizer.param_groups:
        params = [like(p) for p in group["params"]]
        for q in params:
            q.grad = like(q)
        groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": params})
    return type(optimizer)(groups, **optimizer.defaults).step


class LimitReplay:
    """The unavoidable work of one batch (:data:`PARTS`), replayed by each call; ``seconds[part]`` lists the
    seconds of every call's part (``sync`` is called before the clock is read)."""

    def __init__(self, parts: dict[str, Callable[[], object]], sync: Callable[[], None] = no_wait):
        self.parts, self.sync = parts, sync
        self.seconds: dict[str, list[float]] = {name: [] for name in parts}

    def __call__(self) -> None:
        for name, part in self.parts.items():
            self.sync()
            t0 = time.perf_counter()
            part()
            self.sync()
            self.seconds[name].append(time.perf_counter() - t0)


def limit_replay(recorded: RecordedBatch, optimizer: torch.optim.Optimizer, device: torch.device, seed: int,
                 sync: Callable[[], None] = no_wait) -> LimitReplay:
    """The :class:`LimitReplay` of a trainer's recorded batch and its optimiser, its random operands drawn from
    ``seed``."""
    cpu = torch.Generator().manual_seed(seed)
    return LimitReplay({"products": matmul_replay(recorded.matmuls, cpu, device),
                        "random": draw_replay(recorded.draws, torch.Generator(device=device).manual_seed(seed), device),
                        "optimizer": optimizer_replay(optimizer, cpu)}, sync)


def recorded_replays(tasks: dict[str, Callable[[], object]], optimizers: dict[str, torch.optim.Optimizer],
                     device: torch.device, seed: int, sync: Callable[[], None] = no_wait,
                     failed: set[str] | None = None) -> tuple[dict[str, RecordedBatch], dict[str, LimitReplay]]:
    """One extra, untimed call of every task (a trainer's next batch), recorded (:func:`recorded_batch`), and the
    :func:`limit_replay` of what it did with that trainer's optimiser; a task whose name joins ``failed`` during
    its call (it ran out of memory) has neither."""
    recorded, replays = {}, {}
    for name, task in tasks.items():
        batch = recorded_batch(task)
        if failed is None or name not in failed:
            recorded[name] = batch
            replays[name] = limit_replay(batch, optimizers[name], device, seed, sync)
    return recorded, replays
