"""Training configuration: one validated dataclass, shared by every rule and saved as JSON."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .encoding import Encoder
from .errors import UsageError
from .microcircuit import CircuitParams
from .neurons import NeuronParams

RULE_NAMES = ("bioleaf", "stbp", "bptt")
DATASETS = ("fashion-mnist", "mnist", "digits")
OPTIMIZERS = ("adam", "sgd")
SURROGATES = ("fast-sigmoid", "arctan")
DEFAULT_LR = {"bioleaf": 1e-3, "stbp": 1e-3, "bptt": 1e-3}


def parse_arch(arch: str) -> list[int]:
    """``"784-400-10"`` -> ``[784, 400, 10]`` (at least input and output, every size >= 1)."""
    try:
        sizes = [int(p) for p in arch.split("-")]
    except ValueError:
        raise UsageError(f"--arch: expected layer sizes joined by '-', like 784-400-400-10, got {arch!r}") from None
    if len(sizes) < 2 or min(sizes) < 1 or max(sizes) > 100_000:
        raise UsageError(f"--arch: expected at least two sizes, each in 1..100000, got {arch!r}")
    return sizes


@dataclass
class TrainConfig:
    """Everything that defines a training run (``config.json``)."""

    rule: str = "bioleaf"
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    arch: str = ""  # "" -> "<input>-400-400-10"
    steps: int = 20
    epochs: int = 5
    batch_size: int = 32
    lr: float | None = None  # None -> DEFAULT_LR[rule]
    lr_layers: str = ""  # optional per-layer multipliers for W, e.g. "1,0.5,0.2"
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0
    limit: int | None = None
    val_fraction: float = 0.1
    device: str = "cpu"
    encoder: str = "bernoulli"
    max_rate: float = 0.5
    init_scale: float = 0.15
    neuron: NeuronParams = field(default_factory=NeuronParams)
    circuit: CircuitParams = field(default_factory=CircuitParams)
    # bioleaf: interneuron / feedback plasticity and the self-predicting phase
    lr_interneuron: float = 1e-2
    lr_feedback: float = 1e-3
    feedback_decay: float = 1e-3
    self_predict_batches: int = 50
    # bptt
    surrogate: str = "fast-sigmoid"
    surrogate_slope: float = 5.0
    ce_temperature: float = 2.0

    @property
    def learning_rate(self) -> float:
        return DEFAULT_LR[self.rule] if self.lr is None else self.lr

    def sizes(self, input_size: int, num_classes: int) -> list[int]:
        """Layer sizes, checked against the dataset."""
        sizes = parse_arch(self.arch or f"{input_size}-400-400-{num_classes}")
        if sizes[0] != input_size or sizes[-1] != num_classes:
            raise UsageError(f"--arch: {self.dataset} needs {input_size} inputs and {num_classes} outputs "
                             f"(e.g. {input_size}-400-{num_classes}), got {'-'.join(map(str, sizes))}")
        return sizes

    def layer_lrs(self, n_layers: int) -> list[float]:
        """Learning rate of each ``W`` layer (``--lr`` times the ``--lr-layers`` multiplier)."""
        if not self.lr_layers:
            return [self.learning_rate] * n_layers
        try:
            mult = [float(m) for m in self.lr_layers.split(",")]
        except ValueError:
            mult = []
        if len(mult) != n_layers or not all(0 < m < math.inf for m in mult):
            raise UsageError(f"--lr-layers: expected {n_layers} positive numbers joined by ',', got {self.lr_layers!r}")
        return [self.learning_rate * m for m in mult]

    def encoder_obj(self) -> Encoder:
        return Encoder(self.encoder, self.max_rate)

    def validate(self) -> "TrainConfig":
        """Raise :class:`UsageError` naming the flag for any impossible value."""
        choices = [("rule", RULE_NAMES), ("dataset", DATASETS), ("optimizer", OPTIMIZERS),
                   ("surrogate", SURROGATES), ("device", ("cpu", "cuda"))]
        for name, allowed in choices:
            value = getattr(self, name)
            if value not in allowed and not (name == "device" and str(value).startswith("cuda:")):
                raise UsageError(f"--{name}: expected one of {', '.join(allowed)}, got {value!r}")
        positive_int = [("steps", 1, 100_000), ("epochs", 1, 100_000), ("batch_size", 1, 1_000_000),
                        ("self_predict_batches", 0, 10_000_000)]
        for name, lo, hi in positive_int:
            value = getattr(self, name)
            if not isinstance(value, int) or not lo <= value <= hi:
                raise UsageError(f"--{name.replace('_', '-')}: expected an integer in {lo}..{hi}, got {value!r}")
        positive = [("learning_rate", "lr"), ("init_scale", "init-scale"), ("ce_temperature", "ce-temperature"),
                    ("surrogate_slope", "surrogate-slope")]
        for attr, flag in positive:
            value = getattr(self, attr)
            if not (isinstance(value, (int, float)) and 0 < value < math.inf):
                raise UsageError(f"--{flag}: expected a finite number > 0, got {value!r}")
        nonneg = [("momentum", 1.0), ("weight_decay", 1.0), ("lr_interneuron", 1.0), ("lr_feedback", 1.0),
                  ("feedback_decay", 1.0)]
        for name, hi in nonneg:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value < hi):
                raise UsageError(f"--{name.replace('_', '-')}: expected a number in [0, {hi}), got {value!r}")
        if self.limit is not None and self.limit < 10:
            raise UsageError(f"--limit: expected at least 10 training samples, got {self.limit}")
        self.encoder_obj()
        self.neuron.validate()
        self.circuit.validate(self.steps)
        if self.arch:
            parse_arch(self.arch)
        return self

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["neuron"] = self.neuron._asdict()
        d["neuron"]["tau_mem"] = _inf_to_json(self.neuron.tau_mem)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise UsageError(f"config: unknown keys {sorted(unknown)}")
        neuron = dict(d.pop("neuron", {}))
        circuit = dict(d.pop("circuit", {}))
        if "tau_mem" in neuron:
            neuron["tau_mem"] = _inf_from_json(neuron["tau_mem"])
        try:
            return cls(**d, neuron=NeuronParams(**neuron), circuit=CircuitParams(**circuit))
        except TypeError as e:
            raise UsageError(f"config: {e}") from None


def _inf_to_json(x: float) -> float | str:
    return "inf" if math.isinf(x) else x


def _inf_from_json(x: float | str) -> float:
    return math.inf if x == "inf" else float(x)
