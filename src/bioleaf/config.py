"""Training configuration: one validated dataclass, shared by every rule and saved as JSON."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

from bioleaf.errors import UsageError
from bioleaf.model.circuit.params import (ERROR_REFERENCES, FEEDBACK_MODES, INTERNEURON_MODES, NUDGES, CircuitParams,
                                          Context)
from bioleaf.model.encoding import ENCODERS, Encoder
from bioleaf.model.losses import CountTargets
from bioleaf.model.neurons import NeuronParams
from bioleaf.parsing import number_list

RULE_NAMES = ("bioleaf", "stbp", "bptt")
DATASETS = ("fashion-mnist", "mnist", "digits")
OPTIMIZERS = ("adam", "sgd")
SURROGATES = ("fast-sigmoid", "arctan")
GRAD_SUMS = ("float64", "float32")
LR_SCHEDULES = ("constant", "cosine")
DEFAULT_LR = {"bioleaf": 1e-3, "stbp": 1e-3, "bptt": 1e-3}
MAX_SEED = 2**63 - 6  # the trainer derives seed+1 .. seed+5, which must fit a generator's 64-bit seed
MAX_SYNAPSES = 300_000_000  # bottom-up synapses of one network; the GPU scaling bench's 16384 x 16384 layer has 2.7e8
MAX_INIT_SCALE = 100.0

# The train flags: flag -> (config field, type, help), nested fields "neuron.x"/"circuit.x"/"targets.x" (see flag_of)
TRAIN_FLAGS: dict[str, tuple[str, type, str]] = {
    "--arch": ("arch", str, "layer sizes, e.g. 784-400-400-10 (default: <input>-400-400-10)"),
    "--steps": ("steps", int, "time steps T per presentation"),
    "--epochs": ("epochs", int, "training epochs"),
    "--batch-size": ("batch_size", int, "samples per batch"),
    "--lr": ("lr", float, "learning rate of W"),
    "--lr-layers": ("lr_layers", str, "per-layer multipliers of --lr, e.g. 1,0.5,0.5"),
    "--optimizer": ("optimizer", str, f"one of {', '.join(OPTIMIZERS)}"),
    "--momentum": ("momentum", float, "SGD momentum"),
    "--weight-decay": ("weight_decay", float, "L2 weight decay of W"),
    "--seed": ("seed", int, "random seed (weights, data order, spikes)"),
    "--limit": ("limit", int, "use only the first N training samples"),
    "--val-fraction": ("val_fraction", float, "fraction of the training samples held out for validation"),
    "--device": ("device", str, "cpu or cuda[:N]"),
    "--threads": ("threads", int, "CPU threads (0: torch's default; use 1 on a busy machine)"),
    "--encoder": ("encoder", str, f"input spike code: {', '.join(ENCODERS)}"),
    "--max-rate": ("max_rate", float, "spike probability per step at intensity 1"),
    "--init-scale": ("init_scale", float, "std of initial weights times sqrt(fan-in)"),
    "--threshold": ("neuron.threshold", float, "firing threshold"),
    "--tau-mem": ("neuron.tau_mem", float, "membrane time constant in ms (inf: no leak)"),
    "--tau-syn": ("neuron.tau_syn", float, "synaptic trace time constant in ms"),
    "--refractory": ("neuron.refractory", int, "refractory period in steps"),
    "--dt": ("neuron.dt", float, "time step in ms"),
    "--feedback": ("circuit.feedback", str, f"bioleaf top-down B: {', '.join(FEEDBACK_MODES)}"),
    "--interneurons": ("circuit.interneurons", str, f"bioleaf P/Q: {', '.join(INTERNEURON_MODES)}"),
    "--error-reference": ("circuit.error_reference", str, "bioleaf errors measured against the nudged "
                          f"activity or a teacher-free copy run alongside: {', '.join(ERROR_REFERENCES)}"),
    "--nudge": ("circuit.nudge", str, "bioleaf teacher phases: one, or a second with the top hidden layer's "
                f"coupling reversed, whose difference the lower layers learn from: {', '.join(NUDGES)}"),
    "--upper-error": ("circuit.upper_error", str, "bioleaf error of W above the lowest hidden layer: apical, count-change "
                      "(the cells' count change from the free phase) or auto (count-change with learned feedback)"),
    "--gate": ("circuit.gate", str, "bioleaf plasticity gate of hidden cells, read from their own count: fired "
               "([n > 0]) or headroom ([n > 0] (1 - n/T), closing at the count cap)"),
    "--w-rule": ("circuit.w_rule", str, "bioleaf rule of the bottom-up W: integrated (presentation sums) or stdp "
                 "(spike-timing-dependent: postsynaptic spikes minus the basal prediction, times the presynaptic trace)"),
    "--tau-stdp": ("circuit.stdp_tau", float, "bioleaf stdp: ms of the presynaptic plasticity trace (0: the PSP trace)"),
    "--homeostasis": ("circuit.homeostasis", float, "bioleaf hidden W: silent cells scale up, capped down (0: off)"),
    "--schedule": ("circuit.schedule", str, "bioleaf learned interneurons: two-copies or one-presentation"),
    "--free-steps": ("circuit.free_steps", int, "bioleaf one-presentation: steps before the teacher comes on"),
    "--reference-tau": ("circuit.reference_tau", float, "bioleaf one-presentation: ms of the apical reference trace"),
    "--interneuron-decay": ("circuit.interneuron_decay", float, "bioleaf decay of P per batch x its lr (0: off)"),
    "--interneuron-partners": ("circuit.interneuron_partners", str, "bioleaf cells the interneurons mirror: above "
                               "(each hidden layer's own) or feedback-source (direct: the output cells, for all)"),
    "--interneuron-period": ("circuit.interneuron_period", str, "bioleaf one-presentation: P learns in: presentation, free"),
    "--g-basal": ("circuit.g_basal", float, "bioleaf basal -> soma coupling"),
    "--g-apical": ("circuit.g_apical", float, "bioleaf apical -> soma coupling"),
    "--g-apical-layers": ("circuit.g_apical_layers", str, "bioleaf multipliers of --g-apical per hidden layer, "
                          "bottom first; unlisted layers keep 1 (0: the lowest layer's soma is not nudged)"),
    "--teacher-strength": ("circuit.teacher_strength", float, "bioleaf teacher nudging beta in (0, 1]"),
    "--target-high": ("targets.high", float, "target spike count of the labelled output"),
    "--target-low": ("targets.low", float, "target spike count of the other outputs"),
    "--lr-interneuron": ("lr_interneuron", float, "bioleaf learning rate of P and Q"),
    "--feedback-decay": ("feedback_decay", float, "bioleaf count-change error (learned feedback): decay rate of W "
                         "above the lowest hidden layer and of its mirror B (each step both shrink by 1 - lr * rate)"),
    "--self-predict-batches": ("self_predict_batches", int, "bioleaf teacher-free batches before learning"),
    "--surrogate": ("surrogate", str, f"bptt surrogate gradient: {', '.join(SURROGATES)}"),
    "--surrogate-slope": ("surrogate_slope", float, "bptt surrogate slope"),
    "--ce-temperature": ("ce_temperature", float, "bptt cross-entropy temperature on counts"),
    "--lr-schedule": ("lr_schedule", str, f"learning-rate schedule over all epochs: {', '.join(LR_SCHEDULES)}"),
    "--grad-sums": ("grad_sums", str, "bptt precision of the weight-gradient sums: float64 (data-parallel "
                    "runs equal one process) or float32 (faster, snnTorch's arithmetic)"),
}
_FLAG_OF = {field: flag for flag, (field, _, _) in TRAIN_FLAGS.items()}


def flag_of(field_name: str) -> str:
    """The command-line flag of config field ``field_name`` (``"circuit.g_basal"`` -> ``"--g-basal"``;
    a field without a row of its own: ``--`` and its name with dashes)."""
    return _FLAG_OF.get(field_name, "--" + field_name.rsplit(".", 1)[-1].replace("_", "-"))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_arch(arch: str) -> list[int]:
    """``"784-400-10"`` -> ``[784, 400, 10]`` (at least input and output, every size >= 1)."""
    if not isinstance(arch, str):
        raise UsageError(f"--arch: expected layer sizes joined by '-', like 784-400-400-10, got {arch!r}")
    try:
        sizes = [int(p) for p in arch.split("-")]
    except ValueError:
        raise UsageError(f"--arch: expected layer sizes joined by '-', like 784-400-400-10, got {arch!r}") from None
    if len(sizes) < 2 or min(sizes) < 1 or max(sizes) > 100_000:
        raise UsageError(f"--arch: expected at least two sizes, each in 1..100000, got {arch!r}")
    synapses = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    if synapses > MAX_SYNAPSES:
        raise UsageError(f"--arch: {arch} has {synapses} bottom-up synapses, more than the supported {MAX_SYNAPSES}")
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
    lr_schedule: str = "constant"  # cosine: lr * (1 + cos(pi * progress)) / 2 over all batches of all epochs
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0
    limit: int | None = None
    val_fraction: float = 0.1
    device: str = "cpu"
    threads: int = 0  # CPU threads for torch; 0 = torch's default (results can differ between counts)
    encoder: str = "bernoulli"
    max_rate: float = 0.5
    init_scale: float = 0.15
    neuron: NeuronParams = field(default_factory=NeuronParams)
    circuit: CircuitParams = field(default_factory=CircuitParams)
    targets: CountTargets = field(default_factory=CountTargets)  # target spike counts of the error function
    # bioleaf: interneuron / feedback plasticity and the self-predicting phase
    lr_interneuron: float = 1e-3
    feedback_decay: float = 1.0
    self_predict_batches: int = 50
    surrogate: str = "fast-sigmoid"  # bptt's settings from here
    surrogate_slope: float = 5.0
    ce_temperature: float = 2.0
    grad_sums: str = "float32"  # precision of the weight-gradient sums; float64: shard-invariant

    def lr_factor(self, progress: float) -> float:
        """The schedule's multiplier of every learning rate at ``progress`` = batches done / all batches:
        1 (constant) or :math:`(1 + \\cos \\pi p) / 2` (cosine, from 1 down to 0)."""
        return 1.0 if self.lr_schedule == "constant" else 0.5 * (1.0 + math.cos(math.pi * progress))

    def require_cpu(self, command: str) -> None:
        """Refuse a device other than the CPU for ``command``, a check that compares float32 results of
        CPU presentations and draws its probes from CPU generators."""
        if self.device != "cpu":
            raise UsageError(f"--device {self.device}: {command} runs on the CPU only (leave --device out)")

    @property
    def context(self) -> Context:
        """What every presentation of this run shares: steps, neuron and circuit parameters."""
        return Context(self.steps, self.neuron, self.circuit)

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
        mult = self.lr_multipliers(n_layers) if self.lr_layers else [1.0] * n_layers
        return [self.learning_rate * m for m in mult]

    def lr_multipliers(self, n_layers: int | None = None) -> list[float]:
        """The ``--lr-layers`` multipliers: positive numbers, one per ``W`` layer when ``n_layers`` is known."""
        return number_list(self.lr_layers, "--lr-layers", valid=lambda m: 0 < m < math.inf, items="positive numbers",
                           count=n_layers)

    def encoder_obj(self) -> Encoder:
        return Encoder(self.encoder, self.max_rate)

    def validate(self) -> "TrainConfig":
        """Raise :class:`UsageError` naming the flag for any impossible value or type.

        Types are checked first (a config can also come from JSON or from Python), then ranges, then
        the cross-checks (``--target-high`` against ``--steps``, ``--lr-layers`` against ``--arch``).
        """
        choices = [("rule", RULE_NAMES), ("dataset", DATASETS), ("optimizer", OPTIMIZERS),
                   ("surrogate", SURROGATES), ("grad_sums", GRAD_SUMS),
                   ("lr_schedule", LR_SCHEDULES)]
        for name, allowed in choices:
            value = getattr(self, name)
            if not isinstance(value, str) or value not in allowed:
                raise UsageError(f"{flag_of(name)}: expected one of {', '.join(allowed)}, got {value!r}")
        if not isinstance(self.device, str) or not re.fullmatch(r"cpu|cuda(:[0-9]{1,4})?", self.device):
            raise UsageError(f"--device: expected one of cpu, cuda, cuda:N, got {self.device!r}")
        if self.data_dir is not None and not (isinstance(self.data_dir, str) and self.data_dir):
            raise UsageError(f"--data-dir: expected a directory name, got {self.data_dir!r}")
        for name in ("arch", "lr_layers", "encoder"):
            if not isinstance(getattr(self, name), str):
                raise UsageError(f"{flag_of(name)}: expected text, got {getattr(self, name)!r}")
        self._validate_numbers()
        self._validate_nested()
        self.encoder_obj()
        self.neuron.validate()
        self.targets.validate(self.steps)
        self.circuit.validate()
        self.circuit.validate_timing(self.steps * self.neuron.dt, self.encoder, self.lr_interneuron)
        n_layers = len(parse_arch(self.arch)) - 1 if self.arch else None  # known only with --arch
        if self.lr_layers:
            self.lr_multipliers(n_layers)
        if n_layers is not None:
            self.circuit.validate_depth(n_layers - 1)
        if self.rule == "bioleaf" and self.circuit.reads_count_change():
            self._validate_feedback_decay(n_layers)
        return self

    def _validate_feedback_decay(self, n_layers: int | None) -> None:
        """Learned feedback shrinks ``B_l`` and ``W_{l+1}`` by ``1 - lr_{l+1} * feedback_decay`` per step, which
        must stay positive at the largest learning rate of a mirrored layer."""
        mult = self.lr_multipliers(n_layers) if self.lr_layers else [1.0]
        lr = self.learning_rate * max(mult[1:] or mult)
        if lr * self.feedback_decay >= 1:
            flags = "--feedback-decay/--lr" + ("/--lr-layers" if self.lr_layers else "")
            raise UsageError(f"{flags}: learned feedback shrinks B and W by 1 - lr x decay per step, "
                             f"so {lr:g} x {self.feedback_decay:g} must stay below 1")

    def _validate_numbers(self) -> None:
        """Types and ranges of the integer and real fields."""
        ints = [("steps", 1, 100_000), ("epochs", 1, 100_000), ("batch_size", 1, 1_000_000),
                ("self_predict_batches", 0, 10_000_000), ("seed", 0, MAX_SEED), ("threads", 0, 4096)]
        if self.limit is not None:
            ints.append(("limit", 10, 10**9))
        for name, lo, hi in ints:
            value = getattr(self, name)
            if not _is_int(value) or not lo <= value <= hi:
                raise UsageError(f"{flag_of(name)}: expected an integer in {lo}..{hi}, got {value!r}")
        if self.lr is not None and not (_is_number(self.lr) and 0 < self.lr < math.inf):
            raise UsageError(f"--lr: expected a finite number > 0, got {self.lr!r}")
        ranges = [  # (field, low, high, low included, high included)
            ("init_scale", 0, MAX_INIT_SCALE, False, True), ("ce_temperature", 0, math.inf, False, False),
            ("surrogate_slope", 0, math.inf, False, False), ("val_fraction", 0, 0.5, True, True),
            ("max_rate", 0, 1, False, True), ("momentum", 0, 1, True, False), ("weight_decay", 0, 1, True, False),
            ("lr_interneuron", 0, 1, True, False), ("feedback_decay", 0, 1000, True, True)]
        for name, lo, hi, lo_in, hi_in in ranges:
            value = getattr(self, name)
            ok = _is_number(value) and (lo <= value if lo_in else lo < value) and (value <= hi if hi_in else value < hi)
            if not ok:
                shown = f"{'[' if lo_in else '('}{lo}, {'inf' if hi == math.inf else hi}{']' if hi_in else ')'}"
                raise UsageError(f"{flag_of(name)}: expected a number in {shown}, got {value!r}")

    def _validate_nested(self) -> None:
        """Types (and integer ranges) of the ``neuron`` and ``circuit`` fields, before their own checks."""
        if not isinstance(self.neuron, NeuronParams):
            raise UsageError(f"config: neuron must be NeuronParams, got {type(self.neuron).__name__}")
        if not isinstance(self.circuit, CircuitParams):
            raise UsageError(f"config: circuit must be CircuitParams, got {type(self.circuit).__name__}")
        if not isinstance(self.targets, CountTargets):
            raise UsageError(f"config: targets must be CountTargets, got {type(self.targets).__name__}")
        numbers = [f"neuron.{n}" for n in ("threshold", "tau_mem", "tau_syn", "dt")]
        numbers += [f"circuit.{f.name}" for f in dataclasses.fields(CircuitParams) if f.type == "float"]
        for key in numbers:
            value = getattr(getattr(self, key.split(".")[0]), key.split(".")[1])
            if not _is_number(value):
                raise UsageError(f"{flag_of(key)}: expected a number, got {value!r}")
        refractory = self.neuron.refractory
        if not _is_int(refractory) or not 0 <= refractory <= 100_000:
            raise UsageError(f"--refractory: expected an integer in 0..100000 (steps), got {refractory!r}")
        for f in dataclasses.fields(CircuitParams):  # text and switches: exactly their type
            value, expected = getattr(self.circuit, f.name), {"str": "text", "bool": "true or false"}.get(f.type)
            if expected and type(value).__name__ != f.type:
                raise UsageError(f"{flag_of('circuit.' + f.name) if f.type == 'str' else 'config: circuit.' + f.name}: "
                                 f"expected {expected}, got {value!r}")

    def with_values(self, values: dict[str, object]) -> "TrainConfig":
        """A copy with ``values`` applied: flat field names, or ``neuron.x`` / ``circuit.x`` / ``targets.x`` for
        nested fields (the keys of a preset); not validated."""
        top: dict[str, object] = {}
        nested: dict[str, dict[str, object]] = {"neuron": {}, "circuit": {}, "targets": {}}
        for key, v in values.items():
            group, _, name = key.rpartition(".")
            (nested[group] if group else top)[name] = v
        return dataclasses.replace(self, **top, neuron=self.neuron._replace(**nested["neuron"]),
                                   circuit=dataclasses.replace(self.circuit, **nested["circuit"]),
                                   targets=dataclasses.replace(self.targets, **nested["targets"]))

    @property
    def idealisations(self) -> list[str]:
        """The idealisations this run's learning uses beyond the locality contract. For the microcircuit, its labelled
        idealisations (:data:`bioleaf.model.circuit.params.IDEALISATIONS`; empty for a circuit without copied weights), or
        ``["backprop"]`` for the BP twins (weight transport and a backward pass)."""
        return self.circuit.idealisations() if self.rule == "bioleaf" else ["backprop"]

    def to_json(self) -> dict:
        """The configuration as JSON (``config.json``), with its :attr:`idealisations` (derived, not read back)."""
        d = dataclasses.asdict(self)
        d["neuron"] = self.neuron._asdict()
        d["neuron"]["tau_mem"] = _inf_to_json(self.neuron.tau_mem)
        d["idealisations"] = self.idealisations
        return d

    @classmethod
    def from_json(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        d.pop("idealisations", None)  # derived from the fields
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise UsageError(f"config: unknown keys {sorted(unknown)}")
        try:
            neuron = dict(d.pop("neuron", {}))
            circuit = dict(d.pop("circuit", {}))
            targets = dict(d.pop("targets", {}))
            for name in ("high", "low"):  # config.json of version 0.1 kept the targets among the circuit's fields
                if f"target_{name}" in circuit:
                    targets[name] = circuit.pop(f"target_{name}")
            if "tau_mem" in neuron:
                neuron["tau_mem"] = _inf_from_json(neuron["tau_mem"])
            return cls(**d, neuron=NeuronParams(**neuron), circuit=CircuitParams(**circuit),
                       targets=CountTargets(**targets))
        except (TypeError, ValueError) as e:
            raise UsageError(f"config: {e}") from None


def _inf_to_json(x: float) -> float | str:
    return "inf" if math.isinf(x) else x


def _inf_from_json(x: float | str) -> float:
    return math.inf if x == "inf" else float(x)
