r"""``bioleaf bench``: speed, memory and arithmetic throughput of BioLeaF against its BP twin and snnTorch.

Three measurements, in one run (see ``docs/bench_notes.md`` for numbers and caveats):

(a) **Training speed** (samples/second) of ``bioleaf`` with its two benchmarked circuits (the idealised
    one of the ``fashion-mnist`` preset, and the fully local one of ``fashion-mnist-local``, with learned
    interneurons and feedback: a free phase *and* a teacher phase per batch; :func:`circuit_values`), of
    our ``bptt`` (float32 and float64 gradient sums) and of the same network built from stock snnTorch
    parts (:class:`SnnTorchTwin`), on 784-400-400-10, ``T = 20``, batch 100. The trainers take turns
    batch by batch (A, B, C, ... with a rotating order) and each speed is the batch size over the
    *median* batch time, so a CPU shared with other jobs biases all of them alike. Ratios of speeds:
    ``X_over_snntorch``, and ``bioleaf_local_over_bioleaf``, the fully local circuit's over the idealised one's.
(b) **Training memory** of ``bioleaf`` and ``bptt`` at ``T = 10, 50, 100`` on 784-800-800-10, batch
    256: on a CPU every point runs in its own fresh process (:func:`memory_probe`), which resets the
    peak resident set size (``/proc/self/clear_refs``), records the RSS just before the first batch and
    reports ``VmHWM - RSS_before``: what training needs on top of the model and data. On a GPU the
    probes run in this process and read torch's peak CUDA allocations above those before the first batch.
(c) **GFLOP/s** of the BioLeaF training step: the FLOPs of its matrix products, recorded as torch
    dispatches them during one extra, untimed batch (:func:`recorded_matmuls`: every product of every
    phase, step and update), over the measured batch time, against a plain ``torch.matmul`` replay of
    exactly those products in the same order, timed in the same rotation; and the FLOPs of a fully local
    batch (``bioleaf_local_gflop_per_batch``), which bound its speed against the idealised one's.

The initial self-predicting phase of BioLeaF (``self_predict_batches``, a one-off before the first
teacher phase) is switched off here: the bench measures the steady state of every batch. ``device``
(``bioleaf bench --device cuda``) runs all three on a GPU; :mod:`bioleaf.tools.scaling` sweeps sizes with the
same trainers and probes.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
import resource
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from bioleaf.config import TrainConfig, parse_arch
from bioleaf.model.encoding import SpikeStream
from bioleaf.errors import BioleafError, UsageError, is_out_of_memory
from bioleaf.model.losses import predict
from bioleaf.model.neurons import NeuronParams
from bioleaf.presets import PRESETS

SNNTORCH_MISSING = "bench: snntorch is not installed; pip install 'bioleaf[bench]'"
TWIN_NEURON = NeuronParams(tau_mem=20.0)
"""The leaky neuron of the bptt / snnTorch comparison: snnTorch's ``beta = exp(-1/20)``."""

REQUIRED_KEYS = ("bioleaf_over_snntorch", "bioleaf_local_over_snntorch", "bioleaf_local_over_bioleaf",
                 "bptt_over_snntorch", "bioleaf_memory_ratio_T100_T10", "bptt_memory_ratio_T100_T10", "bioleaf_gflops",
                 "matmul_gflops")


# --------------------------------------------------------------------------- settings
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
"""One thread by default: on a CPU shared with other jobs, two OpenMP threads per op stall whenever
one of them is descheduled, which made a plain matmul replay look slower than BioLeaF itself;
``BIOLEAF_BENCH_THREADS=0`` (all cores) or ``=N`` overrides it for (a) and (c)."""
QUICK = BenchSettings(speed_arch="784-32-32-10", speed_steps=10, speed_batch=16, speed_warmup=1,
                      speed_rounds=3, memory_arch="784-64-64-10", memory_batch=32, memory_steps=(10, 100), memory_batches=1,
                      memory_repeats=1, memory_parallel=2, probe_timeout_s=120.0, use_dataset=False, threads=1)
"""Tiny sizes on one thread (small ops on two OpenMP threads of a CPU shared with other jobs spend
most of their time waiting for each other) and two memory points: each probe is a fresh Python
process that pays ~2.5 s CPU to import torch (with ``torch._dynamo``, pulled in by the optimiser)."""


LOCAL_PRESET = "fashion-mnist-local"


def circuit_values(circuit: str) -> dict[str, object]:
    """The microcircuit settings of the two BioLeaF configurations the bench times (config field names),
    named here and nowhere else. ``"idealised"``: the circuit of the ``fashion-mnist`` preset (copied
    feedback, copied interneurons and the teacher-free copy: the equivalence configuration of the
    configuration). ``"local"``: the fully local circuit of the ``fashion-mnist-local`` preset (learned
    interneurons and feedback, errors against the circuit's own free phase: no idealisation)."""
    if circuit not in ("idealised", "local"):
        raise UsageError(f"bench: circuit must be idealised or local, got {circuit!r}")
    name = "fashion-mnist" if circuit == "idealised" else LOCAL_PRESET
    return {k: v for k, v in PRESETS[name].items() if k.startswith("circuit.")}


def bench_config(rule: str, arch: str, steps: int, batch: int, circuit: str = "idealised") -> TrainConfig:
    """The configuration each rule is benchmarked with: defaults, except the sizes, no initial
    self-predicting phase, for ``bptt`` the leaky :data:`TWIN_NEURON`, and for ``bioleaf`` the
    microcircuit ``circuit`` of :func:`circuit_values`."""
    neuron = TWIN_NEURON if rule == "bptt" else NeuronParams()
    cfg = TrainConfig(rule=rule, arch=arch, steps=steps, batch_size=batch, encoder="bernoulli",
                      optimizer="adam", self_predict_batches=0, neuron=neuron)
    values = circuit_values(circuit)
    if len(parse_arch(arch)) == 2:  # a network without hidden layers has no apical coupling to set
        values.pop("circuit.g_apical_layers", None)
    cfg = cfg.with_values(values)
    if cfg.targets.high > steps:  # a target count above T spikes cannot be reached
        cfg = cfg.with_values({"targets.high": float(steps)})
    return cfg.validate()


BIOLEAF_TRAINERS = {"bioleaf": "idealised", "bioleaf_local": "local"}
"""The BioLeaF trainers of the bench and the circuit (:func:`circuit_values`) each one runs."""
TRAINERS = (*BIOLEAF_TRAINERS, "bptt", "bptt_float64", "snntorch")


def make_trainer(name: str, arch: str, steps: int, batch: int, device: torch.device, seed: int = 0):
    """The trainer ``name`` (one of :data:`TRAINERS`) on ``device``, its weights drawn from ``seed``: a
    :class:`bioleaf.rules.Rule` with the :func:`bench_config` of its rule, or for ``snntorch`` a
    :class:`SnnTorchTrainer` starting from the initial weights of ``bptt``. Each has
    ``train_batch(images, labels, generator)``."""
    from bioleaf.rules import make_rule

    if name not in TRAINERS:
        raise UsageError(f"bench: unknown trainer {name!r} (expected one of {', '.join(TRAINERS)})")
    sizes = parse_arch(arch)
    cfg = bench_config("bioleaf" if name in BIOLEAF_TRAINERS else "bptt", arch, steps, batch,
                       BIOLEAF_TRAINERS.get(name, "idealised"))
    if name == "bptt_float64":
        cfg = replace(cfg, grad_sums="float64")
    rule = make_rule(cfg, sizes, torch.Generator().manual_seed(seed), device)
    return SnnTorchTrainer(cfg, sizes, rule.weights) if name == "snntorch" else rule


def bench_device(name: str) -> torch.device:
    """``--device``: a device name as ``bioleaf train`` takes it (:class:`UsageError` naming the flag
    otherwise), present on this machine."""
    from bioleaf.training.trainer import resolve_device

    return resolve_device(replace(TrainConfig(), device=name).validate().device)


@contextmanager
def quiet_scalar_warnings() -> Iterator[None]:
    """Hide torch's warning about a scalar read off a tensor that requires grad (the loss statistics)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True to a scalar")
        yield


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


# --------------------------------------------------------------------------- snnTorch twin
def require_snntorch():
    """``(snntorch, snntorch.surrogate)``, or :class:`UsageError` when snnTorch is missing."""
    try:
        import snntorch
        from snntorch import surrogate
    except ImportError:
        raise UsageError(SNNTORCH_MISSING) from None
    return snntorch, surrogate


class SnnTorchTwin(torch.nn.Module):
    r"""Our ``bptt`` network built from stock snnTorch parts (``nn.Linear`` + ``snntorch.Leaky``).

    Layer ``l`` receives the presynaptic trace of the layer below as its input current,
    :math:`I_l(t) = W_l x_{l-1}(t)`, :math:`x(t) = \lambda x(t-1) + s(t)` (exactly as
    :func:`bioleaf.model.network.simulate`), and ``snntorch.Leaky(beta=alpha, threshold, fast_sigmoid(slope),
    reset_mechanism="subtract")`` integrates it. One convention differs and is compensated:
    snnTorch subtracts the reset *after* the leak, :math:`m(t) = \beta m(t-1) + I(t) - \vartheta s(t-1)`,
    while our soma leaks the already-reset potential, :math:`v(t) = \alpha (v(t-1) - \vartheta s(t-1)) + I(t)`.
    Adding :math:`(1-\beta)\vartheta s(t-1)` to the current makes the two identical (it is 0 without
    leak). With identical weights and input spikes the output counts are then identical, up to
    floating-point rounding and snnTorch's strict ``mem > threshold`` (ours fires at ``>=``).

    snnTorch detaches the reset from the graph; ours differentiates through it. ``detach_reset=False``
    lets the reset carry the surrogate gradient too, which makes the gradients identical as well
    (the tests check both); the benchmark keeps snnTorch's default.
    """

    def __init__(self, sizes: list[int], neuron: NeuronParams = TWIN_NEURON, slope: float = 5.0,
                 *, detach_reset: bool = True, dtype: torch.dtype = torch.float32):
        super().__init__()
        snn, surrogate = require_snntorch()
        if neuron.refractory:
            raise UsageError("bench: the snnTorch twin has no refractory period (use --refractory 0)")
        self.threshold, self.lam = neuron.threshold, neuron.lam
        self.leak_fix = (1.0 - neuron.alpha) * neuron.threshold
        self.detach_reset = detach_reset
        self.fc = torch.nn.ModuleList(torch.nn.Linear(i, o, bias=False, dtype=dtype)
                                      for i, o in zip(sizes[:-1], sizes[1:]))
        # beta and threshold as tensors of the working dtype (a Python float would be stored as float32)
        self.lif = torch.nn.ModuleList(
            snn.Leaky(beta=torch.tensor(neuron.alpha, dtype=dtype), threshold=torch.tensor(neuron.threshold, dtype=dtype),
                      spike_grad=surrogate.fast_sigmoid(slope=slope), reset_mechanism="subtract")
            for _ in sizes[1:])
        if not detach_reset:
            for lif in self.lif:
                lif.mem_reset = _attached_reset(lif)

    def load_weights(self, weights: list[torch.Tensor]) -> "SnnTorchTwin":
        """Copy our ``W[l]`` (``[n_out, n_in]``, the same layout as ``nn.Linear.weight``)."""
        with torch.no_grad():
            for fc, w in zip(self.fc, weights):
                fc.weight.copy_(w.detach())
        return self

    def forward(self, spikes: SpikeStream, *, batch: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Output spike counts and the output cells' final (post-reset) potentials."""
        w0 = self.fc[0].weight
        new = lambda n: torch.zeros(batch, n, device=w0.device, dtype=w0.dtype)  # noqa: E731
        x_in = new(w0.shape[1])
        mem = [new(fc.weight.shape[0]) for fc in self.fc]
        spk = [new(fc.weight.shape[0]) for fc in self.fc]
        traces = [new(fc.weight.shape[0]) for fc in self.fc]
        count = new(self.fc[-1].weight.shape[0])
        for t in range(steps):
            x_in = self.lam * x_in + spikes(t)
            pre = x_in
            for l, (fc, lif) in enumerate(zip(self.fc, self.lif)):
                cur = fc(pre)
                if self.leak_fix:
                    cur = cur + self.leak_fix * (spk[l].detach() if self.detach_reset else spk[l])
                s, mem[l] = lif(cur, mem[l])
                spk[l] = s.to(cur.dtype)  # snnTorch's spike is float32 whatever the dtype
                traces[l] = self.lam * traces[l] + spk[l]
                pre = traces[l]
            count = count + spk[-1]
        return count, mem[-1] - self.threshold * spk[-1]


def _attached_reset(lif):
    """snnTorch's reset signal without its ``detach()``: the reset carries the surrogate gradient."""
    return lambda mem: lif.spike_grad(mem - lif.threshold)


@dataclass
class TwinStats:
    loss_sum: float
    correct: int
    samples: int


class SnnTorchTrainer:
    """BPTT training of :class:`SnnTorchTwin` in the usual snnTorch loop: same encoder, loss
    (cross-entropy of counts / ``ce_temperature``), optimiser (Adam) and learning rate as ``bptt``; the
    network lives on the device of ``weights``."""

    def __init__(self, cfg: TrainConfig, sizes: list[int], weights: list[torch.Tensor], *,
                 detach_reset: bool = True):
        self.cfg, self.encoder = cfg, cfg.encoder_obj()
        if cfg.surrogate != "fast-sigmoid":
            raise UsageError(f"bench: the snnTorch twin uses fast-sigmoid, got --surrogate {cfg.surrogate}")
        self.net = SnnTorchTwin(sizes, cfg.neuron, cfg.surrogate_slope, detach_reset=detach_reset)
        self.net.to(weights[0].device).load_weights(weights)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.learning_rate)

    def train_batch(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> TwinStats:
        n = images.shape[0]
        counts, potentials = self.net(self.encoder.stream(images, self.cfg.steps, generator), batch=n,
                                      steps=self.cfg.steps)
        loss = F.cross_entropy(counts / self.cfg.ce_temperature, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        correct = int((predict(counts.detach(), potentials.detach()) == labels).sum())
        return TwinStats(n * float(loss.detach()), correct, n)

    @torch.no_grad()
    def infer(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        counts, potentials = self.net(self.encoder.stream(images, self.cfg.steps, generator),
                                      batch=images.shape[0], steps=self.cfg.steps)
        return predict(counts, potentials)


# --------------------------------------------------------------------------- FLOP count
@dataclass(frozen=True)
class Matmul:
    """``count`` products ``[m, k] @ [k, n]`` (one torch operator call)."""

    op: str  # the aten operator: mm, addmm, bmm
    m: int
    k: int
    n: int
    count: int

    @property
    def flops(self) -> int:
        return 2 * self.m * self.k * self.n * self.count


def recorded_matmuls(fn: Callable[[], object]) -> list[Matmul]:
    """Every matrix product ``fn()`` executes, in the order torch dispatches them (``mm``, ``addmm``,
    ``bmm``): the products of a training batch read off the training code itself, not a hand-kept list.
    A product of a float64 sum is listed like any other (the replay runs it in float32)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten
    operands = {aten.mm.default: (0, 1), aten.addmm.default: (1, 2), aten.bmm.default: (0, 1)}
    calls: list[Matmul] = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in operands:
                a, b = (args[i] for i in operands[func])
                batches = a.shape[0] if a.dim() == 3 else 1
                calls.append(Matmul(func.__name__, a.shape[-2], a.shape[-1], b.shape[-1], batches))
            return func(*args, **(kwargs or {}))

    with Record():
        fn()
    return calls


def matmul_replay(matmuls: list[Matmul], generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> Callable[[], None]:
    """A function doing the same products, in the same order, with plain ``torch.matmul`` on random
    float32 operands (one pair per shape, reused, drawn on the CPU and moved to ``device``)."""
    operands: dict[tuple[int, int, int], tuple[torch.Tensor, torch.Tensor]] = {}
    for m in matmuls:
        if (m.m, m.k, m.n) not in operands:
            operands[m.m, m.k, m.n] = (torch.rand(m.m, m.k, generator=generator).to(device),
                                       torch.rand(m.k, m.n, generator=generator).to(device))
    ops = [(*operands[m.m, m.k, m.n], m.count) for m in matmuls]

    def run() -> None:
        for a, b, count in ops:
            for _ in range(count):
                torch.matmul(a, b)
    return run


def counted_flops(fn: Callable[[], object]) -> int:
    """The matrix-product FLOPs torch actually executes in ``fn()`` (``torch.utils.flop_counter``)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


# --------------------------------------------------------------------------- timing
def synchronizer(device: torch.device) -> Callable[[], None]:
    """What a timer calls before reading the clock: wait for the GPU's queued work (nothing on a CPU)."""
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def time_interleaved(tasks: dict[str, Callable[[], object]], *, warmup: int, rounds: int,
                     sync: Callable[[], None] = lambda: None) -> dict[str, list[float]]:
    """Run every task once per round, in a rotating order; the seconds of each timed call (``sync``
    is called before the clock is read, e.g. :func:`synchronizer`)."""
    names = list(tasks)
    for _ in range(warmup):
        for name in names:
            tasks[name]()
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            sync()
            t0 = time.perf_counter()
            tasks[name]()
            sync()
            seconds[name].append(time.perf_counter() - t0)
    return seconds


def fixed_batches(arch: str, batch: int, n: int, generator: torch.Generator, device: torch.device,
                  use_dataset: bool = False) -> tuple[list[torch.Tensor], list[torch.Tensor], str]:
    """``n`` fixed training batches on ``device``: Fashion-MNIST when installed and ``use_dataset`` (for a
    784-...-10 network), else uniform noise (the speed of dense products does not depend on pixel values)."""
    sizes = parse_arch(arch)
    x = y = None
    source = "uniform-noise"
    if use_dataset and sizes[0] == 784 and sizes[-1] == 10:
        from bioleaf.data import dataset_available, load_dataset
        if dataset_available("fashion-mnist"):
            data = load_dataset("fashion-mnist", val_fraction=0.1)
            idx = torch.randperm(len(data.train_y), generator=generator)[:n * batch]
            x, y, source = data.train_x[idx], data.train_y[idx], "fashion-mnist"
    if x is None:
        x = torch.rand(n * batch, sizes[0], generator=generator)
        y = torch.randint(0, sizes[-1], (n * batch,), generator=generator)
    return list(x.to(device).split(batch)), list(y.to(device).split(batch)), source


def rotation_tasks(trainers: dict[str, object], xs: list[torch.Tensor], ys: list[torch.Tensor], seed: int,
                   device: torch.device, oom: set[str] | None = None) -> dict[str, Callable[[], None]]:
    """One task per trainer for :func:`time_interleaved`: train the trainer's next batch (each cycles
    through ``xs``/``ys`` with input spikes from a generator of its own). With an ``oom`` set, a trainer that
    runs out of memory joins it, is dropped, and its task does nothing from then on."""
    gens = {name: torch.Generator(device=device).manual_seed(seed + 2) for name in trainers}
    position = dict.fromkeys(trainers, 0)

    def task(name: str) -> Callable[[], None]:
        def run() -> None:
            if oom is not None and name in oom:
                return
            i = position[name] % len(xs)
            position[name] += 1
            try:
                trainers[name].train_batch(xs[i], ys[i], gens[name])
            except (RuntimeError, MemoryError) as e:
                if oom is None or not is_out_of_memory(e):
                    raise
                oom.add(name)
            if oom is not None and name in oom:
                trainers[name] = None
                release_cached(device)
        return run
    return {name: task(name) for name in trainers}


def release_cached(device: torch.device) -> None:
    """Give memory freed by training back: the CUDA allocator's cached blocks, or glibc's free heap."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    else:
        _release_free_heap()


SPEED_TRAINERS = ("bioleaf", "bioleaf_local", "bptt", "bptt_float64", "snntorch")


def speed(settings: BenchSettings, seed: int = 0, device: torch.device = torch.device("cpu")) -> dict:
    """(a) and (c): samples/second of bioleaf (both circuits), bptt, snnTorch and GFLOP/s of BioLeaF vs
    torch.matmul."""
    require_snntorch()
    s = settings
    xs, ys, source = fixed_batches(s.speed_arch, s.speed_batch, s.speed_warmup + s.speed_rounds,
                                   torch.Generator().manual_seed(seed + 1), device, s.use_dataset)
    trainers = {name: make_trainer(name, s.speed_arch, s.speed_steps, s.speed_batch, device, seed)
                for name in SPEED_TRAINERS}
    tasks = rotation_tasks(trainers, xs, ys, seed, device)
    matmuls = recorded_matmuls(tasks["bioleaf"])  # an extra, untimed warm-up batch
    local_flops = sum(m.flops for m in recorded_matmuls(tasks["bioleaf_local"]))  # the same for the local circuit
    tasks["matmul"] = matmul_replay(matmuls, torch.Generator().manual_seed(seed + 4), device)
    with quiet_scalar_warnings():
        seconds = time_interleaved(tasks, warmup=s.speed_warmup, rounds=s.speed_rounds, sync=synchronizer(device))
    med = {name: statistics.median(t) for name, t in seconds.items()}
    sps = {name: s.speed_batch / med[name] for name in trainers}
    flops = sum(m.flops for m in matmuls)
    return {
        **{f"{name}_samples_per_s": sps[name] for name in SPEED_TRAINERS},
        **{f"{name}_over_snntorch": sps[name] / sps["snntorch"] for name in SPEED_TRAINERS if name != "snntorch"},
        **{f"{name}_circuit": circuit_label(trainers[name].cfg) for name in BIOLEAF_TRAINERS},
        **{f"{name}_phases": 2 if trainers[name].has_free_phase else 1 for name in BIOLEAF_TRAINERS},
        "bioleaf_over_bptt": sps["bioleaf"] / sps["bptt"],
        "bioleaf_local_over_bioleaf": sps["bioleaf_local"] / sps["bioleaf"],
        "bioleaf_gflop_per_batch": flops / 1e9,
        "bioleaf_local_gflop_per_batch": local_flops / 1e9,
        "bioleaf_matmuls_per_batch": len(matmuls),
        "bioleaf_gflops": flops / med["bioleaf"] / 1e9,
        "matmul_gflops": flops / med["matmul"] / 1e9,
        "bioleaf_matmul_efficiency": med["matmul"] / med["bioleaf"],
        "speed_data": source,
        **{f"seconds_per_batch_{k}": v for k, v in med.items()},
    }


def circuit_label(cfg: TrainConfig) -> str:
    """The circuit of a BioLeaF configuration in words, with the idealisations it uses."""
    c = cfg.circuit
    return (f"{c.feedback} feedback, {c.interneurons} interneurons, {c.error_reference} error reference; "
            f"idealisations: {', '.join(cfg.idealisations) or 'none'}")


# --------------------------------------------------------------------------- memory
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def _release_free_heap() -> None:
    """Give freed heap pages back to the OS (glibc), so they do not hide new allocations."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class _PeakRss:
    """Peak resident set size from now on: the kernel's ``VmHWM`` after resetting it through
    ``/proc/self/clear_refs`` (Linux >= 4.0), else a sampling thread polling ``VmRSS``."""

    def __init__(self) -> None:
        self.method = "clear_refs"
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            self.method = "sampling"
        self._peak = _status_kb("VmRSS")
        self._stop = threading.Event()
        self._thread = None
        if self.method == "sampling":
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self._peak = max(self._peak, _status_kb("VmRSS"))

    def peak_kb(self) -> int:
        if self._thread is None:
            return _status_kb("VmHWM")
        self._stop.set()
        self._thread.join()
        return max(self._peak, _status_kb("VmRSS"))


class PeakMemory:
    """What this process's memory grows by from now on: on a CPU the peak resident set size above the
    current one (:class:`_PeakRss`, after giving freed heap pages back), on a GPU the peak of torch's CUDA
    allocations above the current ones."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.rss = device, None
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            self.before = torch.cuda.memory_allocated(device) / 2**20
            return
        _release_free_heap()
        self.before, self.file_before = _status_kb("VmRSS") / 1024, _status_kb("RssFile") / 1024
        self.rss = _PeakRss()

    def report(self) -> dict:
        """``peak_mb`` (the growth), the baseline and how it was measured."""
        if self.rss is None:
            torch.cuda.synchronize(self.device)
            return {"peak_mb": torch.cuda.max_memory_allocated(self.device) / 2**20 - self.before,
                    "allocated_before_mb": self.before, "method": "cuda_max_memory_allocated"}
        return {"peak_mb": self.rss.peak_kb() / 1024 - self.before, "rss_before_mb": self.before,
                "file_rss_growth_mb": _status_kb("RssFile") / 1024 - self.file_before, "method": self.rss.method}


@contextmanager
def memory_cap(device: torch.device, budget_mb: float | None) -> Iterator[None]:
    """On a CPU, allocations beyond ``budget_mb`` more address space than now fail (``RLIMIT_AS``; a
    training step then raises an out-of-memory error) until the block ends; nothing on a GPU, whose own
    memory is the cap, or without a budget."""
    if budget_mb is None or device.type != "cpu":
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _status_kb("VmSize") * 1024 + int(budget_mb * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def memory_probe(rule: str, steps: int, arch: str, batch: int, batches: int, seed: int = 0,
                 threads: int | None = None, device: str = "cpu", budget_mb: float | None = None) -> dict:
    """Train ``batches`` batches of the trainer ``rule`` (:data:`TRAINERS`) in *this* process; the peak
    memory they add (MB, :class:`PeakMemory`). On a CPU run it in a fresh process (``python -m
    bioleaf.tools.bench --memory-probe``): model and data are created first, then the peak is reset, so the
    figure is the memory training itself needs (activations, autograd graph, update accumulators,
    optimiser state). ``oom`` is true when the step ran out of memory (a GPU's, or ``budget_mb`` on a
    CPU: :func:`memory_cap`); the figures are then absent."""
    dev = torch.device(device)
    sizes = parse_arch(arch)
    gen = torch.Generator().manual_seed(seed + 1)
    images = torch.rand(batch, sizes[0], generator=gen).to(dev)
    labels = torch.randint(0, sizes[-1], (batch,), generator=gen).to(dev)
    spikes = torch.Generator(device=dev).manual_seed(seed + 2)
    out = {"rule": rule, "steps": steps, "arch": arch, "batch": batch, "batches": batches, "device": str(dev)}
    try:
        with torch_threads(threads), quiet_scalar_warnings():
            # A throw-away two-sample batch first, so that the library code the step runs is paged in
            # (~10 MB of file-backed RSS; on a GPU: its kernels loaded) before the baseline.
            make_trainer(rule, arch, steps, batch, dev, seed).train_batch(
                images[:2], labels[:2], torch.Generator(device=dev).manual_seed(seed + 3))
            trainer = make_trainer(rule, arch, steps, batch, dev, seed)
            peak = PeakMemory(dev)
            t0 = time.perf_counter()
            with memory_cap(dev, budget_mb):
                for _ in range(batches):
                    trainer.train_batch(images, labels, spikes)
            synchronizer(dev)()
            seconds = time.perf_counter() - t0
            figures = peak.report()
    except (RuntimeError, MemoryError) as e:
        if not is_out_of_memory(e):
            raise
        return {**out, "oom": True}
    return {**out, "oom": False, **figures, "seconds_per_batch": seconds / batches}


def _probe_command(spec: dict) -> list[str]:
    return [sys.executable, "-m", "bioleaf.tools.bench", "--memory-probe", json.dumps(spec)]


def _probe_env(threads: int | None) -> dict:
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    src = str(Path(__file__).resolve().parents[1])  # works from a checkout without installing
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_probes(specs: list[dict], *, parallel: int = 1, timeout_s: float = 900.0, fresh: bool = True) -> list[dict]:
    """:func:`memory_probe` for every spec, in its order: on a CPU each in a fresh process (``parallel`` at a
    time; one the kernel killed for memory counts as ``oom``), on a GPU in this process (CUDA's peak
    statistics are per process and resettable), and with ``fresh=False`` in this process on a CPU too (a
    smoke test: the peaks then depend on what this process has freed before)."""
    if not fresh or (specs and specs[0].get("device", "cpu") != "cpu"):
        results = []
        for spec in specs:
            results.append(memory_probe(**spec))
            release_cached(torch.device(spec["device"]))
        return results
    results, env, step = [], _probe_env(specs[0].get("threads") if specs else None), max(1, parallel)
    for start in range(0, len(specs), step):
        group = specs[start:start + step]
        procs = [subprocess.Popen(_probe_command(spec), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env) for spec in group]
        results += [_probe_result(spec, proc, procs, timeout_s) for spec, proc in zip(group, procs)]
    return results


def _probe_result(spec: dict, proc: subprocess.Popen, group: list[subprocess.Popen], timeout_s: float) -> dict:
    """The JSON a probe process printed (:class:`BioleafError` if it failed or timed out)."""
    what = f"bench: memory probe {spec['rule']} {spec['arch']} T={spec['steps']} batch {spec['batch']}"
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        for p in group:
            p.kill()
        raise BioleafError(f"{what} took more than {timeout_s:.0f} s") from None
    if proc.returncode == -9:  # SIGKILL: the kernel's out-of-memory killer
        return {**spec, "oom": True}
    if proc.returncode != 0:
        tail = (err or "").strip().splitlines()[-1:] or ["no output"]
        raise BioleafError(f"{what} failed: {tail[0]}")
    return json.loads(out.strip().splitlines()[-1])


def memory(settings: BenchSettings, seed: int = 0, device: torch.device = torch.device("cpu")) -> dict:
    """(b): ``memory_repeats`` probes per (rule, T); the median peak in MB (where the heap's high-water
    mark lands moves a ~90 MB peak by +-10 MB from process to process) and the ratios
    peak(T_max) / peak(T_min) of the medians."""
    s = settings
    specs = [{"rule": rule, "steps": t, "arch": s.memory_arch, "batch": s.memory_batch, "batches": s.memory_batches,
              "seed": seed, "threads": s.memory_threads, "device": str(device)}
             for rule in ("bioleaf", "bptt") for t in s.memory_steps for _ in range(s.memory_repeats)]
    results = run_probes(specs, parallel=s.memory_parallel, timeout_s=s.probe_timeout_s)
    for r in results:
        if r["oom"]:
            raise BioleafError(f"bench: memory probe {r['rule']} T={r['steps']} ran out of memory on {device}")
    out: dict = {}
    lo, hi = min(s.memory_steps), max(s.memory_steps)
    for rule in ("bioleaf", "bptt"):
        peaks = {t: statistics.median(r["peak_mb"] for r in results if r["rule"] == rule and r["steps"] == t)
                 for t in s.memory_steps}
        for t, mb in sorted(peaks.items()):
            out[f"{rule}_peak_mb_T{t}"] = mb
        out[f"{rule}_memory_ratio_T100_T10"] = peaks[hi] / peaks[lo] if peaks[lo] > 0 else math.nan
        out[f"{rule}_seconds_per_batch_T{hi}_memory_probe"] = next(
            r["seconds_per_batch"] for r in results if r["rule"] == rule and r["steps"] == hi)
    out["memory_method"] = results[0]["method"]
    return out


# --------------------------------------------------------------------------- entry points
def bench_threads(default: int | None) -> int | None:
    """torch's intra-op threads for the timed parts: ``default``, or ``BIOLEAF_BENCH_THREADS`` (0: all cores)."""
    env_threads = os.environ.get("BIOLEAF_BENCH_THREADS", "")
    if not env_threads:
        return default
    if not env_threads.isdigit():
        raise UsageError(f"BIOLEAF_BENCH_THREADS: expected a number of threads (0: all cores), got {env_threads!r}")
    return int(env_threads) or None


def machine(device: torch.device) -> dict:
    """Where a bench ran: the device (and the GPU's name), torch's and snnTorch's versions."""
    snntorch, _ = require_snntorch()
    gpu = {"gpu": torch.cuda.get_device_name(device)} if device.type == "cuda" else {}
    return {"device": str(device), **gpu, "torch_version": torch.__version__, "snntorch_version": snntorch.__version__}


def run_bench(quick: bool = False, *, settings: BenchSettings | None = None,
              device: torch.device = torch.device("cpu")) -> dict:
    """The whole bench (a, b, c) on ``device`` as one flat dict; ``quick``: tiny sizes, a smoke test of the bench."""
    where = machine(device)
    s = settings or (QUICK if quick else FULL)
    s = replace(s, threads=bench_threads(s.threads))
    t0 = time.perf_counter()
    load_before = os.getloadavg()[0]
    result: dict = {}
    with torch_threads(s.threads):
        result.update(speed(s, device=device))
        result["torch_threads"] = torch.get_num_threads()
    result["speed_seconds"] = time.perf_counter() - t0
    result.update(memory(s, device=device))
    result["memory_seconds"] = time.perf_counter() - t0 - result["speed_seconds"]
    result.update({
        "quick": quick, "speed_arch": s.speed_arch, "speed_steps": s.speed_steps, "speed_batch": s.speed_batch,
        "speed_rounds": s.speed_rounds, "memory_arch": s.memory_arch, "memory_batch": s.memory_batch,
        "memory_steps": list(s.memory_steps), "memory_batches": s.memory_batches, "memory_repeats": s.memory_repeats,
        "memory_threads": s.memory_threads,
        "twin_tau_mem_ms": TWIN_NEURON.tau_mem, **where,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "bench_seconds": time.perf_counter() - t0,
    })
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m bioleaf.tools.bench [--quick] [--json]`` or ``--memory-probe SPEC`` (one probe, JSON out)."""
    p = argparse.ArgumentParser(prog="python -m bioleaf.tools.bench")
    p.add_argument("--memory-probe", metavar="JSON", help="run one memory probe: {rule, steps, arch, batch, batches}")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.memory_probe:
        print(json.dumps(memory_probe(**json.loads(args.memory_probe))), flush=True)
        return 0
    result = run_bench(quick=args.quick)
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
