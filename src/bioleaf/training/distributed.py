"""Data-parallel training with torch.distributed (``torchrun ... -m bioleaf train --distributed``).

Each rank simulates its shard of every global batch; the local weight changes (BioLeaF) or
gradients (twins) are summed across ranks with one all-reduce before every optimiser step, so all
ranks take the same step and keep identical weights. gloo on CPU, NCCL on CUDA.

A collective that cannot complete (a rank died, hangs or was stopped) fails after the
process-group timeout (``--dist-timeout``, or the environment variable ``BIOLEAF_DIST_TIMEOUT``,
in seconds; default :data:`DEFAULT_TIMEOUT_S`) with :class:`PeerError`: one line, exit code 1.
"""

from __future__ import annotations

import datetime
import math
import os
import re

import torch
import torch.distributed as dist

from bioleaf.errors import BioleafError, UsageError
from bioleaf.training.trainer import Parallel

LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
TIMEOUT_ENV = "BIOLEAF_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0


class PeerError(BioleafError):
    """A collective failed or timed out: another rank died, hangs or cannot be reached (exit code 1).

    The process cannot shut down cleanly after that (the backend's native threads may still wait on
    the lost peer and abort the interpreter's exit), so the CLI leaves at once after the message."""

    exit_code = 1
    abandon_process = True


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
        if backend == "nccl":
            torch.cuda.set_device(torch.device(device).index if device != "cuda" else int(os.environ["LOCAL_RANK"]))
        try:
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
        except (RuntimeError, ValueError) as e:
            raise PeerError(f"--distributed: rank {rank} could not join the process group at "
                            f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} within {timeout_s:g}s "
                            f"({_first_line(e)})") from None
    rank, world = dist.get_rank(), dist.get_world_size()
    comm = "cpu" if backend == "gloo" else f"cuda:{torch.cuda.current_device()}"

    def all_reduce(tensors: list[torch.Tensor]) -> None:
        """Sum ``tensors`` over ranks in place: one flat all-reduce per dtype."""
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for t in tensors:
            by_dtype.setdefault(t.dtype, []).append(t)
        for group in by_dtype.values():
            flat = torch.cat([t.reshape(-1) for t in group]).to(comm)
            try:
                dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            except RuntimeError as e:
                raise PeerError(f"distributed: rank {rank} of {world} lost contact with the other ranks "
                                f"({_first_line(e)}): a rank died, hangs or was stopped (collective timeout "
                                f"{timeout_s:g}s, set by --dist-timeout or {TIMEOUT_ENV})") from None
            offset = 0
            for t in group:
                n = t.numel()
                t.copy_(flat[offset:offset + n].view_as(t))
                offset += n

    return Parallel(rank=rank, world_size=world, all_reduce=all_reduce)


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
