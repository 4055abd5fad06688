"""Memory probes in fresh processes, and the bench's measurement (b): the training memory of ``bioleaf`` and
``bptt`` as the presentation grows.

A probe process is ``python -m bioleaf.tools.bench --memory-probe SPEC`` (``SPEC``: the JSON of the
arguments of :func:`~bioleaf.tools.bench.memory.memory_probe`); it prints its result as one JSON line.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch

import bioleaf
from bioleaf.errors import BioleafError
from bioleaf.tools.bench.memory import memory_probe
from bioleaf.tools.bench.runtime import release_cached
from bioleaf.tools.bench.settings import BenchSettings

MEMORY_RULES = ("bioleaf", "bptt")
"""The trainers whose memory measurement (b) compares."""
OOM_KILLED = -9
"""The return code of a probe process the kernel's out-of-memory killer ended (SIGKILL)."""


def probe_command(spec: dict) -> list[str]:
    """The command line of a probe process running :func:`memory_probe` with the arguments ``spec``."""
    return [sys.executable, "-m", "bioleaf.tools.bench", "--memory-probe", json.dumps(spec)]


def probe_env(threads: int | None) -> dict:
    """The environment of a probe process: this one's, with ``threads`` OpenMP and MKL threads, and this
    package's source folder first on ``PYTHONPATH`` (so that a checkout runs without being installed)."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    src = str(Path(bioleaf.__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_probes(specs: list[dict], *, parallel: int = 1, timeout_s: float = 900.0, fresh: bool = True) -> list[dict]:
    """:func:`memory_probe` for every spec, in its order: on a CPU each in a fresh process (``parallel`` at a
    time; one the kernel killed for memory counts as ``oom``), on a GPU in this process (CUDA's peak
    statistics are per process and resettable), and with ``fresh=False`` in this process on a CPU too (a
    smoke test: the peaks then depend on what this process has freed before)."""
    if not fresh or (specs and specs[0].get("device", "cpu") != "cpu"):
        return [_probe_here(spec) for spec in specs]
    results, env, step = [], probe_env(specs[0].get("threads") if specs else None), max(1, parallel)
    for start in range(0, len(specs), step):
        group = specs[start:start + step]
        procs = [subprocess.Popen(probe_command(spec), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env) for spec in group]
        results += [probe_result(spec, proc, procs, timeout_s) for spec, proc in zip(group, procs)]
    return results


def _probe_here(spec: dict) -> dict:
    """:func:`memory_probe` in this process, then the memory it freed handed back."""
    result = memory_probe(**spec)
    release_cached(torch.device(spec["device"]))
    return result


def probe_result(spec: dict, proc: subprocess.Popen, group: list[subprocess.Popen], timeout_s: float) -> dict:
    """The JSON a probe process printed (:class:`BioleafError` if it failed or timed out; the whole ``group``
    of processes started with it is killed on a timeout)."""
    what = f"bench: memory probe {spec['rule']} {spec['arch']} T={spec['steps']} batch {spec['batch']}"
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        for p in group:
            p.kill()
        raise BioleafError(f"{what} took more than {timeout_s:.0f} s") from None
    if proc.returncode == OOM_KILLED:
        return {**spec, "oom": True}
    if proc.returncode != 0:
        tail = (err or "").strip().splitlines()[-1:] or ["no output"]
        raise BioleafError(f"{what} failed: {tail[0]}")
    return json.loads(out.strip().splitlines()[-1])


def measure_memory(settings: BenchSettings, seed: int = 0, device: torch.device = torch.device("cpu")) -> dict:
    """(b): ``memory_repeats`` probes per (rule, T); the median peak in MB (where the heap's high-water mark
    lands moves a peak from process to process) and the ratios peak(T_max) / peak(T_min) of the medians."""
    s = settings
    specs = [{"rule": rule, "steps": t, "arch": s.memory_arch, "batch": s.memory_batch, "batches": s.memory_batches,
              "seed": seed, "threads": s.memory_threads, "device": str(device)}
             for rule in MEMORY_RULES for t in s.memory_steps for _ in range(s.memory_repeats)]
    results = run_probes(specs, parallel=s.memory_parallel, timeout_s=s.probe_timeout_s)
    for r in results:
        if r["oom"]:
            raise BioleafError(f"bench: memory probe {r['rule']} T={r['steps']} ran out of memory on {device}")
    out: dict = {}
    for rule in MEMORY_RULES:
        out.update(_memory_figures(rule, [r for r in results if r["rule"] == rule], s.memory_steps))
    out["memory_method"] = results[0]["method"]
    return out


def _memory_figures(rule: str, results: list[dict], steps: tuple[int, ...]) -> dict:
    """The figures of one rule's probes: the median peak at every T, the ratio of the longest presentation's
    to the shortest's, and the seconds per batch of the longest."""
    lo, hi = min(steps), max(steps)
    peaks = {t: statistics.median(r["peak_mb"] for r in results if r["steps"] == t) for t in steps}
    out = {f"{rule}_peak_mb_T{t}": mb for t, mb in sorted(peaks.items())}
    # the key names the default presentations, T = 100 and T = 10, whichever ones were probed
    out[f"{rule}_memory_ratio_T100_T10"] = peaks[hi] / peaks[lo] if peaks[lo] > 0 else math.nan
    out[f"{rule}_seconds_per_batch_T{hi}_memory_probe"] = next(
        r["seconds_per_batch"] for r in results if r["steps"] == hi)
    return out
