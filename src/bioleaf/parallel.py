"""Data-parallel training with torch.distributed (``torchrun ... -m bioleaf train --distributed``).

Each rank simulates its shard of every global batch; the local weight changes (BioLeaF) or
gradients (twins) are summed across ranks with one all-reduce before every optimiser step, so all
ranks take the same step and keep identical weights. gloo on CPU, NCCL on CUDA.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

from .errors import UsageError
from .train import Parallel

LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def setup_parallel(distributed: bool, device: str, timeout_s: float = 120.0) -> Parallel:
    """A single-process :class:`Parallel`, or join the process group that torchrun set up."""
    if not distributed:
        return Parallel()
    missing = [v for v in LAUNCH_VARS if v not in os.environ]
    if missing:
        raise UsageError(f"--distributed: no launcher environment (missing {', '.join(missing)}); start with "
                         "torchrun --nproc_per_node=K -m bioleaf train ... --distributed")
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))

    def all_reduce(tensors: list[torch.Tensor]) -> None:
        for t in tensors:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)

    return Parallel(rank=dist.get_rank(), world_size=dist.get_world_size(), all_reduce=all_reduce)
