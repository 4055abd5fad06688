"""The memory training needs, measured in this process: one memory probe.

On a CPU the probe reads the kernel's peak resident set size (``VmHWM``) after resetting it through
``/proc/self/clear_refs``, and reports the growth above the resident set size just before the first batch;
run it in a fresh process (:mod:`bioleaf.tools.bench.probes`), so that nothing freed earlier hides new
allocations. On a GPU it reads torch's peak CUDA allocations above those before the first batch.
"""

from __future__ import annotations

import resource
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import torch

from bioleaf.config import parse_arch
from bioleaf.errors import is_out_of_memory
from bioleaf.tools.bench.runtime import quiet_scalar_warnings, release_free_heap, synchronizer, torch_threads
from bioleaf.tools.bench.trainers import make_trainer


def status_kb(field: str) -> int:
    """A field of ``/proc/self/status`` in kB (``VmRSS``, ``VmHWM``, ``RssFile``, ``VmSize``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


class PeakRss:
    """Peak resident set size from now on: the kernel's ``VmHWM`` after resetting it through
    ``/proc/self/clear_refs`` (Linux >= 4.0), else a sampling thread polling ``VmRSS``."""

    def __init__(self) -> None:
        self.method = "clear_refs"
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            self.method = "sampling"
        self._peak = status_kb("VmRSS")
        self._stop = threading.Event()
        self._thread = None
        if self.method == "sampling":
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self._peak = max(self._peak, status_kb("VmRSS"))

    def peak_kb(self) -> int:
        """The peak since this object was made, in kB (stops the sampling thread)."""
        if self._thread is None:
            return status_kb("VmHWM")
        self._stop.set()
        self._thread.join()
        return max(self._peak, status_kb("VmRSS"))


class PeakMemory:
    """What this process's memory grows by from now on: on a CPU the peak resident set size above the
    current one (:class:`PeakRss`, after giving freed heap pages back), on a GPU the peak of torch's CUDA
    allocations above the current ones."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.rss = device, None
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            self.before = torch.cuda.memory_allocated(device) / 2**20
            return
        release_free_heap()
        self.before, self.file_before = status_kb("VmRSS") / 1024, status_kb("RssFile") / 1024
        self.rss = PeakRss()

    def report(self) -> dict:
        """``peak_mb`` (the growth), the baseline and how it was measured."""
        if self.rss is None:
            torch.cuda.synchronize(self.device)
            return {"peak_mb": torch.cuda.max_memory_allocated(self.device) / 2**20 - self.before,
                    "allocated_before_mb": self.before, "method": "cuda_max_memory_allocated"}
        return {"peak_mb": self.rss.peak_kb() / 1024 - self.before, "rss_before_mb": self.before,
                "file_rss_growth_mb": status_kb("RssFile") / 1024 - self.file_before, "method": self.rss.method}


@contextmanager
def memory_cap(device: torch.device, budget_mb: float | None) -> Iterator[None]:
    """On a CPU, allocations beyond ``budget_mb`` more address space than now fail (``RLIMIT_AS``; a
    training step then raises an out-of-memory error) until the block ends; nothing on a GPU, whose own
    memory is the cap, or without a budget."""
    if budget_mb is None or device.type != "cpu":
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = status_kb("VmSize") * 1024 + int(budget_mb * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def memory_probe(rule: str, steps: int, arch: str, batch: int, batches: int, seed: int = 0,
                 threads: int | None = None, device: str = "cpu", budget_mb: float | None = None) -> dict:
    """Train ``batches`` batches of the trainer ``rule`` (:data:`~bioleaf.tools.bench.trainers.TRAINERS`) in
    *this* process; the peak memory they add (MB, :class:`PeakMemory`) and their seconds per batch. Model
    and data are created first, then the peak is reset, so the figure is the memory training itself needs
    (activations, autograd graph, update accumulators, optimiser state). ``oom`` is true when the step ran
    out of memory (a GPU's, or ``budget_mb`` on a CPU: :func:`memory_cap`); the figures are then absent."""
    dev = torch.device(device)
    out = {"rule": rule, "steps": steps, "arch": arch, "batch": batch, "batches": batches, "device": str(dev)}
    try:
        with torch_threads(threads), quiet_scalar_warnings():
            figures = _measured_training(rule, steps, arch, batch, batches, seed, dev, budget_mb)
    except (RuntimeError, MemoryError) as e:
        if not is_out_of_memory(e):
            raise
        return {**out, "oom": True}
    return {**out, "oom": False, **figures}


def _measured_training(rule: str, steps: int, arch: str, batch: int, batches: int, seed: int, device: torch.device,
                       budget_mb: float | None) -> dict:
    """The figures of :func:`memory_probe`: random images and labels, a throw-away two-sample batch first, so
    that the library code the step runs is paged in (on a GPU: its kernels loaded) before the baseline, then
    ``batches`` batches of a fresh trainer under :func:`memory_cap`."""
    sizes = parse_arch(arch)
    data = torch.Generator().manual_seed(seed + 1)
    images = torch.rand(batch, sizes[0], generator=data).to(device)
    labels = torch.randint(0, sizes[-1], (batch,), generator=data).to(device)
    spikes = torch.Generator(device=device).manual_seed(seed + 2)
    make_trainer(rule, arch, steps, batch, device, seed).train_batch(
        images[:2], labels[:2], torch.Generator(device=device).manual_seed(seed + 3))
    trainer = make_trainer(rule, arch, steps, batch, device, seed)
    peak = PeakMemory(device)
    t0 = time.perf_counter()
    with memory_cap(device, budget_mb):
        for _ in range(batches):
            trainer.train_batch(images, labels, spikes)
    synchronizer(device)()
    seconds = time.perf_counter() - t0
    return {**peak.report(), "seconds_per_batch": seconds / batches}
