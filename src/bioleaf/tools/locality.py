r"""The locality contract, measured: what each population's input and each synapse's change depend on.

:func:`check_locality` runs one training step of the configured circuit (every phase, the update, the
copies the idealisations impose) and records every population's somatic current and spikes. It then
replays the step once per weight matrix, that matrix perturbed and **every spike train held fixed** (each
soma is handed its recorded spikes; a population that never fired gets random spikes instead, so that what
flows through it is measured too), and notes which currents and which synapse changes moved. With the
spikes fixed, a dependency can only run through the synapses themselves, so the contract reads:

- a population's input depends only on the synapses onto it: pyramidal cells of hidden layer ``l`` on
  ``W_l`` (basal), ``B_l`` and ``Q_l`` (apical); the output cells on ``W_{L-1}``; interneurons of layer
  ``l`` on ``P_l``. The teacher-free copy's populations (``shadow``) have no synapses of their own;
- a synapse's change depends only on the synapses on its own postsynaptic cell: ``W_l``, ``B_l`` and
  ``Q_l`` on those of pyramidal layer ``l``, ``P_l`` on ``P_l``.

Every dependency outside these sets is attributed to the idealisation that causes it (interneurons driven
by ``W_{l+1}`` and ``P``, ``Q`` changes that copy ``W`` or ``B``: copied-interneurons; ``B`` changes
that copy ``W^T``: copied-feedback; any dependency of the shadow's populations: teacher-free-copy). A
configuration passes when every dependency outside the contract is explained by an idealisation it
declares; a fully local circuit declares none, so it passes only with none.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

import torch

from bioleaf.config import TrainConfig
from bioleaf.data import Dataset
from bioleaf.errors import UsageError
from bioleaf.model.circuit import Observer, Population
from bioleaf.model.neurons import SpikeFn
from bioleaf.training.trainer import Trainer

_SEQUENTIAL_PHASES = ("free", "teacher", "reversed")  # phases of the one circuit, run one after another


def population_label(population: Population) -> str:
    """``copy:kind{layer}`` of a soma: ``circuit`` for the circuit's own phases, else the copy's name (``shadow``)."""
    copy_name = "circuit" if population.copy in _SEQUENTIAL_PHASES else population.copy
    return f"{copy_name}:{population.kind}{population.layer}"


class HeldSpikes:
    """A spike function that ignores the potential and returns the spikes it holds."""

    def __init__(self, spikes: torch.Tensor):
        self.spikes = spikes

    def __call__(self, v: torch.Tensor, threshold: float) -> torch.Tensor:
        return self.spikes


class Tap(Observer):
    """Records every soma's current and spikes in the order they fire and, given the ``fixed`` spikes of an
    earlier run, hands each soma its recorded spikes (the circuit's recording interface,
    :mod:`bioleaf.model.circuit.recording`)."""

    def __init__(self, fixed: list[torch.Tensor] | None = None):
        self.fixed, self.labels, self.currents, self.spikes = fixed, [], [], []

    def spike_fn(self, population: Population, default: SpikeFn) -> SpikeFn:
        return default if self.fixed is None else HeldSpikes(self.fixed[len(self.currents)])

    def soma(self, population: Population, current: torch.Tensor, spikes: torch.Tensor) -> None:
        self.labels.append(population_label(population))
        self.currents.append(current.clone())
        self.spikes.append(spikes)


def _step(rule, images, labels, seed: int, fixed=None) -> tuple[Tap, dict[str, torch.Tensor]]:
    """One training step of a copy of ``rule``, every soma tapped; the tap and every synapse's change."""
    rule = copy.deepcopy(rule)
    before = {k: t.detach().clone() for k, t in rule.synapses().items()}
    rule.observer = tap = Tap(fixed)
    rule.train_batch(images, labels, torch.Generator().manual_seed(seed))
    return tap, {k: t.detach() - before[k] for k, t in rule.synapses().items()}


def allowed_inputs(population: str, n_layers: int) -> set[str]:
    """The synapses onto ``population`` (``circuit:pyr1``, ``shadow:inter0``, ...)."""
    copy_name, name = population.split(":")
    if copy_name != "circuit":
        return set()
    kind, l = re.fullmatch(r"(pyr|inter)(\d+)", name).groups()
    l = int(l)
    if kind == "inter":
        return {f"P{l}"}
    return {f"W{l}"} if l == n_layers - 1 else {f"W{l}", f"B{l}", f"Q{l}"}


def allowed_changes(synapse: str, n_layers: int) -> set[str]:
    """The synapses on the postsynaptic cell of ``synapse`` (``W1``, ``B0``, ``P0``, ...)."""
    kind, l = synapse[0], int(synapse[1:])
    if kind == "P":
        return {synapse}
    return {f"W{l}"} if l == n_layers - 1 else {f"W{l}", f"B{l}", f"Q{l}"}


def explain(item: str) -> str | None:
    """The idealisation behind a dependency outside the contract (``item``: a population or
    ``change:NAME``), or ``None``."""
    if item.startswith("shadow:"):
        return "teacher-free-copy"
    if item.startswith("circuit:inter") or item[:8] in ("change:P", "change:Q"):
        return "copied-interneurons"
    if item.startswith("change:B"):
        return "copied-feedback"
    return None


@dataclass
class LocalityReport:
    """Measured dependencies and the verdict."""

    idealisations: list[str]
    inputs: dict[str, list[str]]  # population -> weight matrices its input depends on
    changes: dict[str, list[str]]  # synapse -> weight matrices its change depends on
    silent: list[str]  # populations that never fired in the recorded step (replayed with random spikes)
    breaches: dict[str, list[str]] = field(default_factory=dict)  # item -> matrices outside the contract
    explained_by: dict[str, str | None] = field(default_factory=dict)

    @property
    def unexplained(self) -> list[str]:
        return [item for item, why in self.explained_by.items() if why not in self.idealisations]

    @property
    def used(self) -> list[str]:
        """The declared idealisations some measured dependency shows."""
        return [i for i in self.idealisations if i in self.explained_by.values()]

    @property
    def ok(self) -> bool:
        return not self.unexplained

    def reason(self) -> str:
        if self.ok:
            return ("local learning only: no dependency outside the locality contract" if not self.breaches else
                    f"every dependency outside the locality contract is explained by {', '.join(self.used)}")
        item = self.unexplained[0]
        why = self.explained_by[item]
        cause = f" (the {why} idealisation, not declared)" if why else ""
        return (f"{item.replace('change:', 'the change of ')} depends on {', '.join(self.breaches[item])}, "
                f"outside the locality contract{cause}")

    def to_json(self) -> dict:
        return {"ok": self.ok, "idealisations": self.idealisations, "used": self.used, "silent": self.silent,
                "inputs": self.inputs,
                "changes": self.changes, "breaches": self.breaches, "explained_by": self.explained_by,
                "reason": self.reason()}


def check_locality(cfg: TrainConfig, data: Dataset, samples: int = 32) -> LocalityReport:
    """Measure the dependencies of one training step of ``cfg``'s circuit on ``samples`` training images of
    ``data`` (module docstring), after the initial self-predicting phase training runs (a circuit whose
    interneurons never fire would hide what flows through them)."""
    if cfg.rule != "bioleaf":
        raise UsageError(f"--rule {cfg.rule}: learns by backprop; only --rule bioleaf has a circuit to check")
    cfg.require_cpu("check-locality")
    trainer = Trainer(cfg, data)
    trainer.self_predicting_phase()
    rule, images, labels = trainer.rule, data.train_x[:samples], data.train_y[:samples]
    seed, L = cfg.seed + 2, len(rule.sizes) - 1
    record, _ = _step(rule, images, labels, seed)
    fixed, silent = _held_spikes(record, torch.Generator().manual_seed(cfg.seed + 6))
    reference, base = _step(rule, images, labels, seed, fixed=fixed)
    inputs: dict[str, set[str]] = {label: set() for label in record.labels}
    changes: dict[str, set[str]] = {name: set() for name in base}
    generator = torch.Generator().manual_seed(cfg.seed + 7)
    for name in base:
        perturbed = copy.deepcopy(rule)
        with torch.no_grad():
            t = perturbed.synapses()[name]
            t += (0.05 * (float(t.abs().mean()) + 0.01)) * torch.randn(t.shape, generator=generator)
        tap, moved = _step(perturbed, images, labels, seed, fixed=fixed)
        for label, a, b in zip(tap.labels, tap.currents, reference.currents):
            if not torch.equal(a, b):
                inputs[label].add(name)
        for synapse, change in moved.items():
            if not torch.equal(change, base[synapse]):
                changes[synapse].add(name)
    report = LocalityReport(cfg.idealisations, {k: sorted(v) for k, v in inputs.items()},
                            {k: sorted(v) for k, v in changes.items()}, silent)
    for population, deps in inputs.items():
        _judge(report, population, deps - allowed_inputs(population, L))
    for synapse, deps in changes.items():
        _judge(report, f"change:{synapse}", deps - allowed_changes(synapse, L))
    return report


def _held_spikes(record: Tap, generator: torch.Generator) -> tuple[list[torch.Tensor], list[str]]:
    """The spike trains the replays hold fixed: each population's recorded ones, or, for a population that
    never fired (whose downstream synapses would otherwise see no activity), random spikes at rate 0.2."""
    fired: dict[str, bool] = {}
    for label, spikes in zip(record.labels, record.spikes):
        fired[label] = fired.get(label, False) or bool(spikes.any())
    fixed = [s if fired[label] else (torch.rand(s.shape, generator=generator) < 0.2).to(s.dtype)
             for label, s in zip(record.labels, record.spikes)]
    return fixed, [label for label, on in fired.items() if not on]


def _judge(report: LocalityReport, item: str, extra: set[str]) -> None:
    if extra:
        report.breaches[item] = sorted(extra)
        report.explained_by[item] = explain(item)
