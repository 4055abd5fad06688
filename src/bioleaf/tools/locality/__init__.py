r"""The locality contract, measured: what each population's input and each synapse's change depend on.

:func:`check_locality` runs one training step of the configured circuit (every phase, the update, the copies
the idealisations impose) and records every soma's current and spikes through the circuit's recording
interface. It then replays the step with **every spike train held fixed** (each soma is handed its recorded
spikes; a population that never fired gets random spikes, so that what flows through it is measured too),
perturbing one thing at a time, and notes which population inputs and which synapse changes moved:

- every registered synapse, and every other tensor the rule holds (a tensor that is not a synapse);
- every population's spikes and somatic current, each half of stacked copies (the free and the teacher phase
  side by side) on its own, so that what a change reads of another population's spikes, counts or potentials
  shows;
- the labels;
- the other samples of the batch: with a deterministic input code, a batch's changes must be the sum of its
  samples' changes, each presented alone;
- what a step leaves behind for the next (each synapse's optimiser state, any other tensor), perturbed before
  a second step.

:mod:`~bioleaf.tools.locality.contract` says what the contract allows. Every dependency outside it is a breach;
a declared idealisation excuses exactly the dependencies it causes (:func:`~bioleaf.tools.locality.contract.explanations`),
and a configuration passes when every breach is excused by an idealisation it declares.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from bioleaf.config import TrainConfig
from bioleaf.data import Dataset
from bioleaf.errors import UsageError
from bioleaf.tools.locality.contract import Wiring, allowed, explanations
from bioleaf.tools.locality.probes import (Measured, Step, carried_state, other_samples, populations_and_labels,
                                           record, weights_and_tensors)
from bioleaf.training.trainer import Trainer

__all__ = ["LocalityReport", "check_locality"]


@dataclass
class LocalityReport:
    """Measured dependencies (item -> what it depends on) and the verdict."""

    idealisations: list[str]
    inputs: dict[str, list[str]]  # population -> what its input depends on
    changes: dict[str, list[str]]  # synapse -> what its change depends on
    silent: list[str]  # populations that never fired in the recorded step (replayed with random spikes)
    breaches: dict[str, list[str]] = field(default_factory=dict)  # item -> dependencies outside the contract
    explained_by: dict[str, dict[str, str | None]] = field(default_factory=dict)  # item -> dep -> idealisation

    @property
    def unexplained(self) -> list[tuple[str, str]]:
        return [(item, dep) for item, deps in self.explained_by.items() for dep, why in deps.items()
                if why not in self.idealisations]

    @property
    def used(self) -> list[str]:
        """The declared idealisations some measured dependency shows."""
        shown = {why for deps in self.explained_by.values() for why in deps.values()}
        return [i for i in self.idealisations if i in shown]

    @property
    def ok(self) -> bool:
        return not self.unexplained

    def reason(self) -> str:
        if self.ok:
            return ("local learning only: no dependency outside the locality contract" if not self.breaches else
                    f"every dependency outside the locality contract is explained by {', '.join(self.used)}")
        item, dep = self.unexplained[0]
        why = self.explained_by[item][dep]
        cause = f" (the {why} idealisation, not declared)" if why else ""
        return f"{item.replace('change:', 'the change of ')} depends on {dep}, outside the locality contract{cause}"

    def to_json(self) -> dict:
        return {"ok": self.ok, "idealisations": self.idealisations, "used": self.used, "silent": self.silent,
                "inputs": self.inputs, "changes": self.changes, "breaches": self.breaches,
                "explained_by": self.explained_by, "reason": self.reason()}


def check_locality(cfg: TrainConfig, data: Dataset, samples: int = 32) -> LocalityReport:
    """Measure the dependencies of one training step of ``cfg``'s circuit on ``samples`` training images of
    ``data`` (module docstring), after the initial self-predicting phase training runs (a circuit whose
    interneurons never fire would hide what flows through them)."""
    if cfg.rule != "bioleaf":
        raise UsageError(f"--rule {cfg.rule}: learns by backprop; only --rule bioleaf has a circuit to check")
    cfg.require_cpu("check-locality")
    trainer = Trainer(cfg, data)
    trainer.self_predicting_phase()
    rule, seed = trainer.rule, cfg.seed
    first = Step(data.train_x[:samples], data.train_y[:samples], seed + 2)
    step, silent = record(rule, first, seed + 6)
    following = Step(data.train_x[samples:2 * samples], data.train_y[samples:2 * samples], seed + 3)
    measured, generator = Measured(), torch.Generator().manual_seed(seed + 7)
    weights_and_tensors(rule, step, measured, generator)
    populations_and_labels(rule, step, measured, len(step.labels))
    carried_state(rule, first, following, measured, generator, seed + 8)
    other_samples(rule, first, measured, seed + 9)
    return judged(cfg, rule, measured, silent)


def judged(cfg: TrainConfig, rule, measured: Measured, silent: list[str]) -> LocalityReport:
    """The report: every measured dependency against the contract, breaches against the declared idealisations."""
    wiring = Wiring.of(cfg.circuit, len(rule.sizes) - 1)
    changes = {name: sorted(measured.changes.get(name, ())) for name in rule.synapses()}
    inputs = {label: sorted(deps) for label, deps in sorted(measured.inputs.items())}
    report = LocalityReport(cfg.idealisations, inputs, changes, silent)
    items = [(label, deps) for label, deps in inputs.items()] + [(f"change:{s}", d) for s, d in changes.items()]
    for item, deps in items:
        outside = [dep for dep in deps if not allowed(item, dep, wiring)]
        if outside:
            report.breaches[item] = outside
            report.explained_by[item] = {dep: excuse(explanations(item, dep, changes, wiring),
                                                     cfg.idealisations)
                                         for dep in outside}
    return report


def excuse(candidates: list[str], declared: list[str]) -> str | None:
    """The declared idealisation among ``candidates`` that excuses a dependency; else the first candidate (named in
    the failure as not declared), or ``None``."""
    return next((c for c in candidates if c in declared), candidates[0] if candidates else None)
