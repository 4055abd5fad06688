"""Weight matrices: how every rule initialises them, and the batch-summed outer product every update is made of."""

from __future__ import annotations

import math

import torch


def uniform_init(n_out: int, n_in: int, scale: float, generator: torch.Generator) -> torch.Tensor:
    """``U(-a, a)`` with ``a = scale * sqrt(3 / n_in)`` (std ``scale / sqrt(n_in)``): the initial weights
    of every rule."""
    a = scale * math.sqrt(3.0 / n_in)
    return (torch.rand(n_out, n_in, generator=generator) * 2 - 1) * a


def batch_outer_sum(post: torch.Tensor, pre: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``post.T @ pre``: the per-sample outer products ``[n_post, n_pre]`` summed over the batch rows,
    by default in float64, so the sum does not depend on how the batch is split across processes."""
    return post.to(dtype).T @ pre.to(dtype)
