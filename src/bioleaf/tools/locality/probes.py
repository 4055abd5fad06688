"""One training step of a copy of the rule, perturbed one way at a time, every spike train held: what moved."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from bioleaf.model.encoding import Encoder
from bioleaf.tools.locality.contract import LABELS, OTHER_SAMPLES, ACTIVITY, STATE, TENSOR
from bioleaf.tools.locality.tap import Tap, Target, half_rows, held_spikes, rows_of


@dataclass
class Step:
    """One training batch a probe replays: the images, labels and spike seed, and the spikes to hold."""

    images: torch.Tensor
    labels: torch.Tensor
    seed: int
    fixed: list[torch.Tensor] = field(default_factory=list)


@dataclass
class Measured:
    """What each population's input and each synapse's change were measured to depend on."""

    inputs: dict[str, set[str]] = field(default_factory=dict)
    changes: dict[str, set[str]] = field(default_factory=dict)


def run_step(rule, step: Step, tap: Tap, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """``rule`` trains on ``step`` through ``tap``; every synapse's change (``rule`` is changed: pass a copy)."""
    before = {k: t.detach().clone() for k, t in rule.synapses().items()}
    rule.observer = tap
    try:
        rule.train_batch(step.images, step.labels if labels is None else labels,
                         torch.Generator().manual_seed(step.seed))
    finally:
        rule.observer = None
    return {k: t.detach() - before[k] for k, t in rule.synapses().items()}


def record(rule, step: Step, seed: int) -> tuple[Step, list[str]]:
    """``step`` with the spikes of a natural run to hold (random ones for silent populations); the silent ones."""
    tap = Tap()
    run_step(copy.deepcopy(rule), step, tap)
    fixed, silent = held_spikes(tap, torch.Generator().manual_seed(seed))
    return Step(step.images, step.labels, step.seed, fixed), silent


def note(measured: Measured, dep: str, tap: Tap, reference: Tap, changes: dict, base: dict) -> None:
    """Add ``dep`` to every input and change that moved against the unperturbed run."""
    for label, a, b in zip(tap.labels, tap.currents, reference.currents):
        if not torch.equal(a, b):
            measured.inputs.setdefault(label, set()).add(dep)
    for synapse, change in changes.items():
        if not torch.equal(change, base[synapse]):
            measured.changes.setdefault(synapse, set()).add(dep)


def perturb_(t: torch.Tensor, generator: torch.Generator, relative_only: bool = False) -> None:
    """A small change of ``t`` in place: relative (which keeps every sign: optimiser moments stay positive), and
    unless ``relative_only`` also additive (which moves entries at zero too)."""
    t.mul_(1.0 + 0.05 * torch.rand(t.shape, generator=generator, dtype=t.dtype))
    if not relative_only:
        t.add_(0.05 * (float(t.abs().mean()) + 0.01) * torch.randn(t.shape, generator=generator, dtype=t.dtype))


def held_tensors(rule) -> dict[str, torch.Tensor]:
    """Every floating-point tensor the rule keeps between steps that is not a registered synapse: each synapse's
    optimiser state (``state:W0.exp_avg``) and any other tensor among its attributes (``tensor:NAME``)."""
    synapses = rule.synapses()
    registered = {id(t) for t in synapses.values()}
    found = {f"{STATE}{name}.{key}": v for name, p in synapses.items()
             for key, v in rule.optimizer.state.get(p, {}).items() if torch.is_tensor(v) and v.is_floating_point()}
    owned = registered | {id(v) for v in found.values()}
    for path, value in _attribute_tensors(rule.__dict__, ""):
        if value.is_floating_point() and value.numel() and id(value) not in owned:
            found[f"{TENSOR}{path}"] = value
    return found


def _attribute_tensors(value, path: str):
    """``(path, tensor)`` of every tensor reachable through attributes, lists and dicts (the optimiser excluded)."""
    if torch.is_tensor(value):
        yield path, value
    elif isinstance(value, dict):
        for key, v in value.items():
            yield from _attribute_tensors(v, f"{path}.{key}".lstrip("."))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _attribute_tensors(v, f"{path}[{i}]")
    elif hasattr(value, "__dict__") and type(value).__module__.startswith("bioleaf"):
        yield from _attribute_tensors(vars(value), path)


def weights_and_tensors(rule, step: Step, measured: Measured, generator: torch.Generator) -> None:
    """Each registered synapse and each other tensor the rule holds, perturbed in turn."""
    reference = Tap(step.fixed)
    base = run_step(copy.deepcopy(rule), step, reference)
    names = [*rule.synapses(), *held_tensors(rule)]
    for name in names:
        perturbed = copy.deepcopy(rule)
        tensor = {**perturbed.synapses(), **held_tensors(perturbed)}[name]
        with torch.no_grad():
            perturb_(tensor, generator, relative_only=name.startswith(STATE))
        tap = Tap(step.fixed)
        note(measured, name, tap, reference, run_step(perturbed, step, tap), base)


def populations_and_labels(rule, step: Step, measured: Measured, batch: int) -> None:
    """Each population's spikes and current (each half of stacked copies on its own), then the labels."""
    reference = Tap(step.fixed)
    base = run_step(copy.deepcopy(rule), step, reference)
    targets = []
    for label, spikes in dict(zip(reference.labels, step.fixed)).items():
        halves = ("free", "teacher") if spikes.shape[0] == 2 * batch else ("circuit",)
        targets += [(f"{half}:{label.split(':')[1]}" if label.startswith("circuit") else label,
                     Target(label, half_rows(half, spikes.shape[0], batch))) for half in halves]
    for i, (name, target) in enumerate(targets):
        tap = Tap(step.fixed, target, seed=i)
        note(measured, ACTIVITY + name, tap, reference, run_step(copy.deepcopy(rule), step, tap), base)
    tap, classes = Tap(step.fixed), rule.sizes[-1]
    note(measured, LABELS, tap, reference, run_step(copy.deepcopy(rule), step, tap, (step.labels + 1) % classes), base)


def carried_state(rule, step: Step, following: Step, measured: Measured, generator: torch.Generator,
                  seed: int) -> None:
    """What one step leaves behind (optimiser state and any other tensor), perturbed before the next step."""
    after = copy.deepcopy(rule)
    run_step(after, step, Tap())
    following, _ = record(after, following, seed)
    reference = Tap(following.fixed)
    base = run_step(copy.deepcopy(after), following, reference)
    for name in held_tensors(after):
        perturbed = copy.deepcopy(after)
        with torch.no_grad():
            perturb_(held_tensors(perturbed)[name], generator, relative_only=name.startswith(STATE))
        tap = Tap(following.fixed)
        note(measured, name, tap, reference, run_step(perturbed, following, tap), base)


class ChangeLog:
    """Keeps the changes a rule applies (its ``change_observer``)."""

    def __init__(self) -> None:
        self.log: list[dict[str, torch.Tensor]] = []

    def __call__(self, changes: dict[str, torch.Tensor], scale: float) -> None:
        self.log.append({k: v.detach().clone() for k, v in changes.items()})


def summed_changes(rule, step: Step, fixed: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """The changes of one batch summed over its samples, before the optimiser (``rule`` is changed)."""
    rule.change_observer = log = ChangeLog()
    try:
        run_step(rule, step, Tap(fixed))
    finally:
        rule.change_observer = None
    total: dict[str, torch.Tensor] = {}
    for changes in log.log:
        for k, v in changes.items():
            total[k] = total[k] + v if k in total else v
    return total


def other_samples(rule, step: Step, measured: Measured, seed: int, samples: int = 4) -> None:
    """A sample's change must not depend on the others: with a deterministic input code and every spike held, the
    changes of a batch equal the sum of its samples' changes, each presented alone."""
    rule = copy.deepcopy(rule)
    rule.encoder = Encoder("regular", rule.encoder.max_rate)
    small, _ = record(rule, Step(step.images[:samples], step.labels[:samples], step.seed), seed)
    n = len(small.labels)
    if n < 2:  # one sample has no other to depend on
        return
    together = summed_changes(copy.deepcopy(rule), small, small.fixed)
    alone = [summed_changes(copy.deepcopy(rule), Step(small.images[i:i + 1], small.labels[i:i + 1], small.seed),
                            rows_of(small.fixed, i, n)) for i in range(n)]
    for synapse, total in together.items():
        parts = sum(a[synapse] for a in alone)
        if not torch.allclose(total, parts, rtol=1e-4, atol=1e-6 * (float(total.abs().max()) + 1e-3)):
            measured.changes.setdefault(synapse, set()).add(OTHER_SAMPLES)
