"""The arithmetic of a training batch: its matrix products, recorded as torch dispatches them, and a replay of
exactly those products with plain ``torch.matmul``, the rate the BLAS reaches on them alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode


@dataclass(frozen=True)
class Matmul:
    """``count`` products ``[m, k] @ [k, n]`` (one torch operator call)."""

    op: str  # the aten operator: mm, addmm, bmm
    m: int
    k: int
    n: int
    count: int
    dtype: str = "float32"  # of the factors, as the training code runs it (the replay runs every product in float32)

    @property
    def flops(self) -> int:
        """Multiplications and additions of the call: ``2 m k n`` per product."""
        return 2 * self.m * self.k * self.n * self.count


def total_flops(matmuls: list[Matmul], dtype: str | None = None) -> int:
    """The FLOPs of all the products ``matmuls`` (of those in ``dtype`` only, where given)."""
    return sum(m.flops for m in matmuls if dtype is None or m.dtype == dtype)


class MatmulRecorder(TorchDispatchMode):
    """A dispatch mode that lists every matrix product (``mm``, ``addmm``, ``bmm``) torch runs under it, in
    ``calls``, and runs it."""

    OPERANDS = {torch.ops.aten.mm.default: (0, 1), torch.ops.aten.addmm.default: (1, 2),
                torch.ops.aten.bmm.default: (0, 1)}
    """The positions of the two factors among each product operator's arguments."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Matmul] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in self.OPERANDS:
            a, b = (args[i] for i in self.OPERANDS[func])
            batches = a.shape[0] if a.dim() == 3 else 1
            self.calls.append(Matmul(func.__name__, a.shape[-2], a.shape[-1], b.shape[-1], batches,
                                     str(a.dtype).removeprefix("torch.")))
        return func(*args, **(kwargs or {}))


def recorded_matmuls(fn: Callable[[], object]) -> list[Matmul]:
    """Every matrix product ``fn()`` executes, in the order torch dispatches them: the products of a training
    batch read off the training code itself, not a hand-kept list. A product of a float64 sum is listed like
    any other (the replay runs it in float32)."""
    with MatmulRecorder() as recorder:
        fn()
    return recorder.calls


def matmul_replay(matmuls: list[Matmul], generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> Callable[[], None]:
    """A function doing the same products, in the same order, with plain ``torch.matmul`` on random
    float32 operands (one pair per shape, reused, drawn on the CPU and moved to ``device``)."""
    operands: dict[tuple[int, int, int], tuple[torch.Tensor, torch.Tensor]] = {}
    for m in matmuls:
        if (m.m, m.k, m.n) not in operands:
            operands[m.m, m.k, m.n] = (torch.rand(m.m, m.k, generator=generator).to(device),
                                       torch.rand(m.k, m.n, generator=generator).to(device))
    products = [(*operands[m.m, m.k, m.n], m.count) for m in matmuls]

    def replay() -> None:
        for a, b, count in products:
            for _ in range(count):
                torch.matmul(a, b)

    return replay
