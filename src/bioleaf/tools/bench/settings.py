"""The sizes and repetitions of one bench run: the full bench, and the quick one that tests the bench itself."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchSettings:
    """Sizes and repetitions of one bench run."""

    speed_arch: str = "784-400-400-10"
    speed_steps: int = 20
    speed_batch: int = 100
    speed_warmup: int = 2  # rounds not timed (first-call allocations, Adam state)
    speed_rounds: int = 15  # timed rounds; each trains one batch with every trainer
    memory_arch: str = "784-800-800-10"
    memory_batch: int = 256
    memory_steps: tuple[int, ...] = (10, 50, 100)
    memory_batches: int = 2
    memory_repeats: int = 3  # fresh processes per (rule, T); the median peak is reported
    memory_parallel: int = 1  # probes run at once (1: no probe slows another down)
    probe_timeout_s: float = 900.0
    use_dataset: bool = True  # Fashion-MNIST images for (a) when installed, else uniform noise
    threads: int | None = 1  # torch intra-op threads of (a) and (c); None: torch's default (all cores)
    memory_threads: int = 1  # threads of each memory probe: memory, not speed, is measured there, and one
    # thread cannot stall waiting for a sibling that another job's process has pushed off the CPU


FULL = BenchSettings()
"""The full bench, on one thread: on a CPU shared with other jobs, two OpenMP threads per operation stall
whenever one of them is descheduled. ``BIOLEAF_BENCH_THREADS=0`` (all cores) or ``=N`` overrides it for
(a) and (c)."""
QUICK = BenchSettings(speed_arch="784-32-32-10", speed_steps=10, speed_batch=16, speed_warmup=1,
                      speed_rounds=3, memory_arch="784-64-64-10", memory_batch=32, memory_steps=(10, 100),
                      memory_batches=1, memory_repeats=1, memory_parallel=2, probe_timeout_s=120.0,
                      use_dataset=False, threads=1)
"""Tiny sizes on one thread (small operations on two OpenMP threads of a shared CPU spend most of their time
waiting for each other) and two memory points, since each probe is a fresh Python process that first imports
torch: a smoke test of the bench."""
