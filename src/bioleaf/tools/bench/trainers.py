"""The trainers the bench times: BioLeaF with its idealised circuit, its circuit without copied weights and that
circuit in one presentation per sample, our ``bptt`` with
float32 and float64 gradient sums, and the peers (:mod:`bioleaf.tools.bench.peers`: our ``bptt`` network built from
snnTorch, Norse and SpikingJelly parts), each built from one seed.

Every trainer has ``train_batch(images, labels, generator)``.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from bioleaf.config import TrainConfig, parse_arch
from bioleaf.errors import UsageError
from bioleaf.model.neurons import NeuronParams
from bioleaf.presets import PRESETS
from bioleaf.rules import Rule, make_rule
from bioleaf.tools.bench.peers import PEERS, TWIN_NEURON, PeerTrainer, make_peer

LOCAL_PRESET = "fashion-mnist-local"
"""The preset whose circuit is the bench's fashion-mnist-local one."""
IDEALISED_PRESET = "fashion-mnist"
"""The preset whose circuit is the bench's idealised one."""
ONE_PRESENTATION_PRESET = "fashion-mnist-one-presentation"
"""The preset whose circuit is the bench's one-presentation one (local learning only)."""
BIOLEAF_TRAINERS = {"bioleaf": "idealised", "bioleaf_local": "local", "bioleaf_one": "one-presentation"}
"""The BioLeaF trainers of the bench and the circuit (:func:`circuit_values`) each one runs."""
PRESET_OF = {"idealised": IDEALISED_PRESET, "local": LOCAL_PRESET, "one-presentation": ONE_PRESENTATION_PRESET}
"""The preset whose circuit each configuration of :func:`circuit_values` is."""
TRAINERS = (*BIOLEAF_TRAINERS, "bptt", "bptt_float64", *PEERS)
"""Every trainer :func:`make_trainer` builds."""


def circuit_values(circuit: str) -> dict[str, object]:
    """The microcircuit settings and target counts of the three BioLeaF configurations the bench times (config
    field names), named here and nowhere else. ``"idealised"``: the circuit of the ``fashion-mnist`` preset (copied
    feedback, copied interneurons and the teacher-free copy: the equivalence configuration of the
    circuit). ``"local"``: the circuit without copied weights of the ``fashion-mnist-local`` preset (learned
    interneurons and feedback, errors against the circuit's own free phase). ``"one-presentation"``: the circuit of
    the ``fashion-mnist-one-presentation`` preset (fixed direct feedback, one copy: a free period then the teacher, the
    spike-timing rule, interneurons mirroring the output cells; no label)."""
    if circuit not in PRESET_OF:
        raise UsageError(f"bench: circuit must be one of {', '.join(PRESET_OF)}, got {circuit!r}")
    return {k: v for k, v in PRESETS[PRESET_OF[circuit]].items() if k.startswith(("circuit.", "targets."))}


def bench_config(rule: str, arch: str, steps: int, batch: int, circuit: str = "idealised") -> TrainConfig:
    """The configuration each rule is benchmarked with: defaults, except the sizes, no initial
    self-predicting phase, for ``bptt`` the leaky :data:`~bioleaf.tools.bench.peers.TWIN_NEURON`, and for
    ``bioleaf`` the microcircuit ``circuit`` of :func:`circuit_values` (targets and plasticity trace cut to ``steps``
    where they are longer; in one presentation the free period of :func:`free_steps_at`)."""
    neuron = TWIN_NEURON if rule == "bptt" else NeuronParams()
    cfg = TrainConfig(rule=rule, arch=arch, steps=steps, batch_size=batch, encoder="bernoulli",
                      optimizer="adam", self_predict_batches=0, neuron=neuron)
    values = circuit_values(circuit)
    if len(parse_arch(arch)) == 2:  # a network without hidden layers has no apical coupling to set
        values.pop("circuit.g_apical_layers", None)
    cfg = cfg.with_values(values)
    if cfg.targets.high > steps:  # a target count above T spikes cannot be reached
        cfg = cfg.with_values({"targets.high": float(steps)})
    if cfg.circuit.schedule == "one-presentation":  # the free period in the preset's proportion to its T
        cfg = cfg.with_values({"circuit.free_steps": free_steps_at(steps, circuit)})
    if cfg.circuit.stdp_tau > steps * cfg.neuron.dt:  # a plasticity trace at most the presentation's length
        cfg = cfg.with_values({"circuit.stdp_tau": steps * cfg.neuron.dt})
    return cfg.validate()


def free_steps_at(steps: int, circuit: str) -> int:
    """The free period of a one-presentation ``circuit`` whose teacher period is ``steps`` long: its preset's free
    period in the preset's proportion to its ``T`` (at least one step)."""
    preset = PRESETS[PRESET_OF[circuit]]
    return max(1, round(preset["circuit.free_steps"] * steps / preset["steps"]))


def make_trainer(name: str, arch: str, steps: int, batch: int, device: torch.device,
                 seed: int = 0) -> Rule | PeerTrainer:
    """The trainer ``name`` (one of :data:`TRAINERS`) on ``device``, its weights drawn from ``seed``: a
    :class:`bioleaf.rules.Rule` with the :func:`bench_config` of its rule, or for a peer its
    :class:`~bioleaf.tools.bench.peers.PeerTrainer` with the configuration and initial weights of ``bptt``."""
    if name not in TRAINERS:
        raise UsageError(f"bench: unknown trainer {name!r} (expected one of {', '.join(TRAINERS)})")
    sizes = parse_arch(arch)
    cfg = bench_config("bioleaf" if name in BIOLEAF_TRAINERS else "bptt", arch, steps, batch,
                       BIOLEAF_TRAINERS.get(name, "idealised"))
    if name == "bptt_float64":
        cfg = replace(cfg, grad_sums="float64")
    rule = make_rule(cfg, sizes, torch.Generator().manual_seed(seed), device)
    return make_peer(name, cfg, sizes, rule.weights) if name in PEERS else rule


def circuit_label(cfg: TrainConfig) -> str:
    """The circuit of a BioLeaF configuration in words, with the idealisations it uses."""
    c = cfg.circuit
    partners = "" if c.interneuron_partners == "above" else " mirroring the feedback source"
    return (f"{c.feedback} feedback, {c.interneurons} interneurons{partners}, {c.error_reference} error reference; "
            f"idealisations: {', '.join(cfg.idealisations) or 'none'}")
