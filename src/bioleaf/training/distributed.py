"""Data-parallel training with torch.distributed (``torchrun ... -m bioleaf train --distributed``).

Each rank simulates its shard of every global batch (:meth:`Parallel.assign_shard`); the local weight
changes (BioLeaF) or gradients (twins) are summed across ranks with one all-reduce before every
optimiser step (:meth:`Parallel.attach`), so all ranks take the same step and keep identical weights.
After every batch one more float64 all-reduce sums the batch's figures (:class:`BatchFigures`): the
loss, the counts and whether any rank asks to stop or diverged, so every rank stops after the same
batch. gloo on CPU, NCCL on CUDA.

A collective that cannot complete (a rank died, hangs or was stopped) fails after the
process-group timeout (``--dist-timeout``, or the environment variable ``BIOLEAF_DIST_TIMEOUT``,
in seconds; default :data:`DEFAULT_TIMEOUT_S`) with :class:`PeerError`: one line, exit code 1.
"""

from __future__ import annotations

import datetime
import math
import os
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Callable, Iterator

import torch
import torch.distributed as dist

from bioleaf.errors import BioleafError, DivergenceError, UsageError
from bioleaf.rules.base import Reducer, Rule, no_reduce
from bioleaf.training.stops import Interrupted

LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
TIMEOUT_ENV = "BIOLEAF_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0
AGREED_STOPS = (Interrupted, DivergenceError, UsageError)
"""Errors every rank raises at the same point (a stop or a divergence after the same batch, a refusal
agreed on, or the same bad flag on each), so the ranks can still leave the group together."""


class PeerError(BioleafError):
    """A collective failed or timed out: another rank died, hangs or cannot be reached (exit code 1).

    The process cannot shut down cleanly after that (the backend's native threads may still wait on
    the lost peer and abort the interpreter's exit), so the CLI leaves at once after the message."""

    exit_code = 1
    abandon_process = True


@dataclass
class BatchFigures:
    """One batch's figures, summed over the ranks after the batch: the summed training loss, the
    correct predictions and the samples simulated, and how many ranks ask to ``stop`` (a signal) or
    ``diverged`` (non-finite values). The ranks add them up in one float64 all-reduce."""

    loss_sum: float
    correct: int
    samples: int
    stop: int = 0
    diverged: int = 0

    def tensor(self) -> torch.Tensor:
        """The figures as a float64 vector, one element per field in field order (what is all-reduced)."""
        return torch.tensor(list(asdict(self).values()), dtype=torch.float64)

    @classmethod
    def from_tensor(cls, summed: torch.Tensor) -> "BatchFigures":
        """The figures of a vector made by :meth:`tensor` (after it was summed over the ranks)."""
        values = dict(zip((f.name for f in fields(cls)), summed.tolist()))
        return cls(loss_sum=values.pop("loss_sum"), **{name: int(value) for name, value in values.items()})


@dataclass
class Parallel:
    """How this process takes part in data-parallel training (one process: rank 0 of 1).

    ``all_reduce`` sums a list of tensors over the ranks in place (a collective)."""

    rank: int = 0
    world_size: int = 1
    all_reduce: Reducer = no_reduce

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one that writes the run's files and talks to the user."""
        return self.rank == 0

    def shard(self, batch: int) -> slice:
        """This rank's contiguous rows of a global batch of ``batch`` rows."""
        per, extra = divmod(batch, self.world_size)
        start = self.rank * per + min(self.rank, extra)
        return slice(start, start + per + (self.rank < extra))

    def attach(self, rule: Rule) -> None:
        """Make ``rule`` sum its changes over the ranks before every optimiser step."""
        if self.world_size > 1:
            rule.reduce = self.all_reduce

    def assign_shard(self, rule: Rule, batch: int) -> None:
        """Make ``rule`` simulate this rank's rows of the next global batch of ``batch`` rows (all rows in one process)."""
        rule.shard = self.shard(batch) if self.world_size > 1 else None

    def sum_batch(self, figures: BatchFigures) -> BatchFigures:
        """``figures`` summed over the ranks in one float64 all-reduce (a collective: every rank calls it
        after every batch)."""
        summed = figures.tensor()
        if self.world_size > 1:
            self.all_reduce([summed])
        return BatchFigures.from_tensor(summed)

    def gather(self, values: list[float]) -> torch.Tensor:
        """Every rank's ``values`` as a ``[world_size, len(values)]`` float64 tensor (one all-reduce)."""
        table = torch.zeros(self.world_size, len(values), dtype=torch.float64)
        table[self.rank] = torch.tensor(values, dtype=torch.float64)
        if self.world_size > 1:
            self.all_reduce([table])
        return table

    def agree(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any rank (a collective: every rank must call it)."""
        return bool(self.gather([float(flag)]).any())

    def barrier(self) -> None:
        """Wait until every rank got here."""
        self.gather([0.0])


def on_rank_0(parallel: Parallel, step: Callable[[], None], refusal: str) -> None:
    """Run ``step`` on rank 0 alone and let every rank learn whether it refused (raised
    :class:`UsageError`): then rank 0 raises its error and every other rank ``UsageError(refusal)``.
    A collective: every rank must call it."""
    refused = None
    if parallel.is_main:
        try:
            step()
        except UsageError as e:
            refused = e
    if parallel.agree(refused is not None):
        raise refused or UsageError(refusal)


def dist_timeout(timeout_s: float | None = None) -> float:
    """The collective timeout in seconds: ``timeout_s`` if given, else ``$BIOLEAF_DIST_TIMEOUT``, else the default."""
    source = "--dist-timeout"
    if timeout_s is None:
        text = os.environ.get(TIMEOUT_ENV)
        if text is None:
            return DEFAULT_TIMEOUT_S
        source = TIMEOUT_ENV
        try:
            timeout_s = float(text)
        except ValueError:
            raise UsageError(f"{source}: expected a number of seconds, got {text!r}") from None
    if not (0 < timeout_s and math.isfinite(timeout_s)):
        raise UsageError(f"{source}: expected a finite number of seconds > 0, got {timeout_s}")
    return float(timeout_s)


@dataclass
class GroupSum:
    """The process group's all-reduce as a :data:`~bioleaf.rules.base.Reducer`: sums tensors over the
    ranks in place, one flat all-reduce per dtype on the ``comm`` device; a lost peer is a :class:`PeerError`."""

    comm: str
    rank: int
    world_size: int
    timeout_s: float

    def __call__(self, tensors: list[torch.Tensor]) -> None:
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for t in tensors:
            by_dtype.setdefault(t.dtype, []).append(t)
        for group in by_dtype.values():
            flat = torch.cat([t.reshape(-1) for t in group]).to(self.comm)
            self._sum(flat)
            offset = 0
            for t in group:
                n = t.numel()
                t.copy_(flat[offset:offset + n].view_as(t))
                offset += n

    def _sum(self, flat: torch.Tensor) -> None:
        try:
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        except RuntimeError as e:
            raise PeerError(f"distributed: rank {self.rank} of {self.world_size} lost contact with the other ranks "
                            f"({_first_line(e)}): a rank died, hangs or was stopped (collective timeout "
                            f"{self.timeout_s:g}s, set by --dist-timeout or {TIMEOUT_ENV})") from None


def setup_parallel(distributed: bool, device: str, timeout_s: float | None = None) -> Parallel:
    """A single-process :class:`Parallel`, or join the process group that torchrun set up."""
    if not distributed:
        return Parallel()
    timeout_s = dist_timeout(timeout_s)
    missing = [v for v in LAUNCH_VARS if v not in os.environ]
    if missing:
        raise UsageError(f"--distributed: no launcher environment (missing {', '.join(missing)}); start with "
                         "torchrun --nproc_per_node=K -m bioleaf train ... --distributed")
    backend = "nccl" if device.startswith("cuda") else "gloo"
    rank = int(os.environ["RANK"])
    if backend == "nccl" and device != "cuda" and int(os.environ.get("LOCAL_WORLD_SIZE", "1")) > 1:
        raise UsageError(f"--device {device}: with several ranks per machine use --device cuda "
                         "(each rank then takes the GPU cuda:LOCAL_RANK)")
    if not dist.is_initialized():
        _join_group(backend, device, rank, timeout_s)
    comm = "cpu" if backend == "gloo" else f"cuda:{torch.cuda.current_device()}"
    rank, world = dist.get_rank(), dist.get_world_size()
    return Parallel(rank=rank, world_size=world, all_reduce=GroupSum(comm, rank, world, timeout_s))


def _join_group(backend: str, device: str, rank: int, timeout_s: float) -> None:
    """Join the process group of the launcher's environment (on NCCL, first pick this rank's GPU)."""
    if backend == "nccl":
        torch.cuda.set_device(torch.device(device).index if device != "cuda" else int(os.environ["LOCAL_RANK"]))
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as e:
        raise PeerError(f"--distributed: rank {rank} could not join the process group at "
                        f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} within {timeout_s:g}s "
                        f"({_first_line(e)})") from None


def teardown_parallel(parallel: Parallel, together: bool) -> None:
    """Leave the process group. ``together``: every rank gets here at the same point (training ended,
    or all ranks agreed to stop), so each first waits for the others: no rank, least of all rank 0,
    which hosts the rendezvous store, goes away while another still talks to it.

    The backend is not destroyed: its native teardown can abort the interpreter ("terminate called
    without an active exception", exit -6) when a peer has already gone, so the CLI ends a process
    that joined a group with ``os._exit`` after flushing its output (see :func:`joined`)."""
    if parallel.world_size > 1 and together:
        try:
            parallel.barrier()
        except PeerError:
            pass  # a peer is gone: nothing left to wait for


@contextmanager
def process_group(distributed: bool, device: str, timeout_s: float | None = None) -> Iterator[Parallel]:
    """:func:`setup_parallel` for the body, then :func:`teardown_parallel`: together when the body ended
    normally or with one of :data:`AGREED_STOPS`, alone after any other error."""
    parallel = setup_parallel(distributed, device, timeout_s)
    together = False
    try:
        yield parallel
        together = True
    except AGREED_STOPS:
        together = True
        raise
    finally:
        teardown_parallel(parallel, together)


def joined() -> bool:
    """Whether this process joined a process group (it must then leave with ``os._exit``)."""
    return dist.is_available() and dist.is_initialized()


def _first_line(e: BaseException) -> str:
    """The gist of a backend error: its first line without the source location and the advice."""
    text = str(e).strip()
    if not text:
        return type(e).__name__
    text = re.sub(r"^\[[^\]]*\]\s*", "", text.splitlines()[0])  # "[.../gloo/.../pair.cc:537] Read error ..."
    return text.split(". This is typically")[0].rstrip(".")[:300]
