r"""The Python API: configure, train, inspect and reload a network in a few lines.

.. code-block:: python

    import bioleaf
    cfg = bioleaf.preset("digits", epochs=2)        # a validated configuration; overrides as keywords
    run = bioleaf.fit(cfg)                           # trains in memory, writes nothing
    run.test_accuracy, run.history                   # history: one dict per epoch, as metrics.jsonl
    run.model.predict(images)                        # class per image; images [batch, n_inputs] in [0, 1]
    run.model.simulate(images, record=True)          # spikes and potentials per step, for plots
    model = bioleaf.load("runs/x")                   # a run written by ``bioleaf train --out runs/x``

Nothing here changes process-wide state: no signal handlers, no thread count, no global seed (the
command line owns those). Every bad argument raises :class:`bioleaf.BioleafError` with the one-line
message the command line prints.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from bioleaf.config import TrainConfig
from bioleaf.data import FASHION_MNIST_DIR, Dataset, dataset_available, load_dataset
from bioleaf.errors import UsageError
from bioleaf.model.circuit import Plasticity, Recorder, present
from bioleaf.model.network import simulate as simulate_network
from bioleaf.presets import preset_values
from bioleaf.rules import Rule
from bioleaf.tools.diagnostics import circuit_diagnostics
from bioleaf.training.metrics import infer_all
from bioleaf.training.resume import prepare_out
from bioleaf.training.trainer import Trainer, resolve_device


def _setting_names() -> dict[str, str]:
    """Keyword -> config field: top-level fields by name, ``neuron``/``circuit`` fields by their own name, the
    target counts as ``target_high``/``target_low``."""
    nested = ("neuron", "circuit", "targets")
    names = {f.name: f.name for f in dataclasses.fields(TrainConfig) if f.name not in nested}
    for group, cls in (("neuron", type(TrainConfig().neuron)), ("circuit", type(TrainConfig().circuit))):
        fields = cls._fields if hasattr(cls, "_fields") else [f.name for f in dataclasses.fields(cls)]
        names.update({name: f"{group}.{name}" for name in fields})
    names.update({"target_high": "targets.high", "target_low": "targets.low"})
    return names


SETTINGS = _setting_names()
"""Every keyword :func:`preset` accepts, and the config field it sets (``feedback`` -> ``circuit.feedback``)."""


def print_notice(text: str) -> None:
    """Print a one-line notice to stderr."""
    print(text, file=sys.stderr)


def configure(preset_name: str | None, values: dict[str, object],
              notice: Callable[[str], None] = print_notice) -> TrainConfig:
    """Defaults < preset < ``values``, validated.

    Unless ``values`` names the dataset or its directory, a missing Fashion-MNIST falls back to the bundled
    digits, with a ``notice`` (a preset's architecture then gets the digits' 64 inputs).

    :param preset_name: a preset of :data:`bioleaf.presets.PRESETS`, or ``None`` for the defaults.
    :param values: config field names to values (``circuit.x``, ``neuron.x``, ``targets.x`` for nested ones).
    :param notice: called with the one-line notice of the fallback (default: printed to stderr).
    :returns: the validated :class:`~bioleaf.config.TrainConfig`.
    :raises UsageError: naming the flag of the first impossible value."""
    merged: dict[str, object] = dict(preset_values(preset_name)) if preset_name else {}
    merged.update(values)
    if "dataset" not in values and "data_dir" not in values and merged.get("dataset", "fashion-mnist") == "fashion-mnist":
        data_dir = merged.get("data_dir")
        if not dataset_available("fashion-mnist", data_dir):
            notice(f"notice: Fashion-MNIST not found in {data_dir or FASHION_MNIST_DIR} (apt-get install "
                   "dataset-fashion-mnist); falling back to the bundled scikit-learn digits")
            merged["dataset"] = "digits"
            if "arch" not in values and "arch" in merged:
                merged["arch"] = "-".join(["64"] + str(merged["arch"]).split("-")[1:])
    return TrainConfig().with_values(merged).validate()


def preset(name: str | None = None, **settings: object) -> TrainConfig:
    """The configuration of a preset with ``settings`` overriding it, validated:
    ``bioleaf.preset("digits", epochs=2, feedback="random", tau_syn=1.0)``.

    :param name: one of :data:`bioleaf.presets.PRESETS` (``digits``, ``fashion-mnist``, ``fashion-mnist-local``,
        ``fashion-mnist-local-direct``), or ``None`` for the defaults.
    :param settings: config field names (:data:`SETTINGS`), nested ones by their own name (``feedback``,
        ``tau_syn``; the target counts as ``target_high``, ``target_low``).
    :returns: the validated :class:`~bioleaf.config.TrainConfig`.
    :raises UsageError: for an unknown keyword or an impossible value."""
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise UsageError(f"preset: unknown setting {unknown[0]!r} (expected config field names such as "
                         "epochs, lr, arch, feedback, interneurons, tau_syn)")
    return configure(name, {SETTINGS[k]: v for k, v in settings.items()})


def _images(images, model: "Model") -> torch.Tensor:
    x = torch.as_tensor(images, dtype=torch.float32)
    n_in = model.sizes[0]
    if x.dim() != 2 or x.shape[1] != n_in:
        raise UsageError(f"images: expected a [batch, {n_in}] array of intensities in [0, 1], got shape {tuple(x.shape)}")
    if x.numel() and not (bool(torch.isfinite(x).all()) and 0 <= float(x.min()) and float(x.max()) <= 1):
        raise UsageError("images: expected intensities in [0, 1] (scale pixels by 1/255)")
    return x.to(model.rule.device)


@dataclass
class Simulation:
    """One simulated presentation: output counts and final potentials ``[batch, n_out]``, hidden counts,
    and with ``record=True`` every step's spikes and potentials, ``record[key]`` of shape ``[T, batch, n]``
    (keys ``input``, ``pyr0`` ... the output ``pyr{L-1}``, and in the microcircuit ``inter{l}`` and ``apical{l}``)."""

    counts: torch.Tensor
    potentials: torch.Tensor
    hidden_counts: list[torch.Tensor]
    record: dict[str, torch.Tensor] | None


class Model:
    """A trained network: the rule holding its synapses and its configuration."""

    def __init__(self, config: TrainConfig, rule: Rule):
        self.config, self.rule = config, rule

    @property
    def sizes(self) -> list[int]:
        return self.rule.sizes

    @property
    def weights(self) -> list[torch.Tensor]:
        """Bottom-up weights ``W[l]`` ``[n_l, n_{l-1}]``, the inference network."""
        return self.rule.weights

    def _generator(self, seed: int | None) -> torch.Generator:
        """Input spikes from ``seed``; default the generator evaluation uses (``seed + 3``)."""
        return torch.Generator(device=self.rule.device).manual_seed(self.config.seed + 3 if seed is None else seed)

    def _stream(self, x: torch.Tensor, seed: int | None):
        return self.config.encoder_obj().stream(x, self.config.steps, self._generator(seed))

    @torch.no_grad()
    def predict(self, images, seed: int | None = None) -> torch.Tensor:
        """The class of every image, by the inference network (teacher off, apical compartments decoupled).

        :param images: ``[batch, n_inputs]`` intensities in [0, 1].
        :param seed: seed of the input spikes (default: the one evaluation uses, so the run's test accuracy is
            reproduced).
        :returns: ``[batch]`` class indices."""
        return infer_all(self.rule, _images(images, self), self._generator(seed))

    @torch.no_grad()
    def simulate(self, images, *, record: bool = False, labels=None, seed: int | None = None) -> Simulation:
        """One presentation of ``images``. A BioLeaF model runs its whole microcircuit (interneurons and
        apical compartments; with ``labels`` the teacher nudges the output cells, so the apical potentials
        carry the errors); a BP twin runs its feed-forward network. Nothing learns.

        :param images: ``[batch, n_inputs]`` intensities in [0, 1].
        :param record: keep every step's spikes (and, in the microcircuit, apical potentials) in ``record``.
        :param labels: ``[batch]`` classes for the teacher (BioLeaF only; ``None``: no teacher).
        :param seed: seed of the input spikes (default: the one evaluation uses).
        :returns: a :class:`Simulation`."""
        x = _images(images, self)
        c, n = self.config, len(x)
        if c.rule == "bioleaf":
            targets = None if labels is None else c.targets.of(torch.as_tensor(labels).to(x.device), self.sizes[-1])
            res = present(self.rule.circuit, self._stream(x, seed), targets, c.context, batch=n,
                          learn=Plasticity(W=False), record=record)
            return Simulation(res.counts, res.potentials, res.hidden_counts, res.record)
        recorder = Recorder() if record else None
        fwd = simulate_network(self.weights, self._stream(x, seed), batch=n, steps=c.steps, neuron=c.neuron,
                               g_basal=self.rule.g_basal, observer=recorder)
        return Simulation(fwd.output, fwd.potentials, fwd.counts[:-1], recorder.stacked() if recorder else None)

    def accuracy(self, images, labels) -> float:
        """Fraction of ``images`` whose predicted class (:meth:`predict`) is ``labels``.

        :param images: ``[batch, n_inputs]`` intensities in [0, 1].
        :param labels: ``[batch]`` classes.
        :returns: a number in [0, 1] (NaN for an empty batch)."""
        y = torch.as_tensor(labels)
        return float((self.predict(images).cpu() == y.cpu()).float().mean()) if len(y) else float("nan")


@dataclass
class Run:
    """A finished training run: its model, one dict per epoch (``history``) and the summary."""

    model: Model
    history: list[dict]
    summary: dict

    @property
    def config(self) -> TrainConfig:
        return self.model.config

    @property
    def test_accuracy(self) -> float:
        return self.summary["test_accuracy"]


def fit(config: TrainConfig, data: Dataset | None = None, out: str | Path | None = None, *,
        progress: bool = False) -> Run:
    """Train a configuration, in memory or into a run directory.

    :param config: a configuration from :func:`preset` (validated again here).
    :param data: the dataset (``None``: the configuration's, loaded from disk; see :func:`bioleaf.data.load_dataset`).
    :param out: ``None`` writes nothing; a directory gets the files of ``bioleaf train --out`` (refused if it
        already holds a run).
    :param progress: show a progress bar and the per-epoch lines.
    :returns: a :class:`Run` (model, per-epoch history, summary).
    :raises BioleafError: for bad input, with the one-line message the command line prints."""
    if not isinstance(config, TrainConfig):
        raise UsageError(f"fit: expected a configuration from bioleaf.preset(), got {type(config).__name__}")
    config = dataclasses.replace(config).validate()
    resolve_device(config.device)
    if data is None:
        data = load_dataset(config.dataset, config.data_dir, limit=config.limit, val_fraction=config.val_fraction)
    if out is not None:
        prepare_out(Path(out), resume=False, overwrite=False)
    trainer = Trainer(config, data, None if out is None else Path(out), progress=progress, echo=progress,
                      diagnostics=circuit_diagnostics)
    summary = trainer.run()
    return Run(Model(config, trainer.rule), list(trainer.state.history), summary)


def load(run_dir: str | Path) -> Model:
    """The trained network of a run directory.

    :param run_dir: a directory written by ``bioleaf train --out DIR`` or ``fit(..., out=DIR)``.
    :returns: its :class:`Model` (only safetensors and JSON are read).
    :raises DataError: naming the file that is missing or not what it should be."""
    from bioleaf.training.evaluate import load_model

    return Model(*load_model(Path(run_dir)))
