"""How the bench runs torch on this machine: the device, torch's threads, waiting for a GPU before a clock is
read, handing freed memory back, and the warnings a measurement hides."""

from __future__ import annotations

import ctypes
import functools
import os
import warnings
from contextlib import contextmanager
from dataclasses import replace
from typing import Callable, Iterator

import torch

from bioleaf.config import TrainConfig
from bioleaf.errors import UsageError
from bioleaf.training.trainer import resolve_device

THREADS_VARIABLE = "BIOLEAF_BENCH_THREADS"
"""The environment variable that sets torch's threads for the timed parts of the bench (0: all cores)."""


def bench_device(name: str) -> torch.device:
    """``--device``: a device name as ``bioleaf train`` takes it (:class:`UsageError` naming the flag
    otherwise), present on this machine."""
    return resolve_device(replace(TrainConfig(), device=name).validate().device)


def bench_threads(default: int | None) -> int | None:
    """torch's intra-op threads for the timed parts: ``default``, or ``BIOLEAF_BENCH_THREADS`` (0: all cores,
    returned as ``None``)."""
    env_threads = os.environ.get(THREADS_VARIABLE, "")
    if not env_threads:
        return default
    if not env_threads.isdigit():
        raise UsageError(f"{THREADS_VARIABLE}: expected a number of threads (0: all cores), got {env_threads!r}")
    return int(env_threads) or None


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` (``None``: left alone) until the block ends."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def quiet_scalar_warnings() -> Iterator[None]:
    """Hide torch's warning about a scalar read off a tensor that requires grad (the loss statistics)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True to a scalar")
        yield


def no_wait() -> None:
    """What a timer on a CPU waits for before reading the clock: nothing, the work is done."""


def synchronizer(device: torch.device) -> Callable[[], None]:
    """What a timer calls before reading the clock: wait for the GPU's queued work (nothing on a CPU)."""
    if device.type == "cuda":
        return functools.partial(torch.cuda.synchronize, device)
    return no_wait


def release_free_heap() -> None:
    """Give freed heap pages back to the OS (glibc), so they do not hide new allocations."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def release_cached(device: torch.device) -> None:
    """Give memory freed by training back: the CUDA allocator's cached blocks, or glibc's free heap."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    else:
        release_free_heap()
