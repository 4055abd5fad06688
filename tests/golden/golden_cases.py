"""The circuit configurations of the golden test and what is captured of each (see make_golden.py)."""

from __future__ import annotations

import torch

from bioleaf.config import TrainConfig
from bioleaf.data import load_dataset
from bioleaf.model.circuit import Context, Plasticity, build_circuit, present, present_phases
from bioleaf.rules import make_rule

BATCH, STEPS = 8, 12
TWO_HIDDEN, THREE_HIDDEN = "64-16-12-10", "64-16-12-8-10"


def _cases() -> dict[str, dict]:
    cases: dict[str, dict] = {}
    ideal_free = {"circuit.interneurons": "ideal", "circuit.error_reference": "free"}
    for feedback in ("symmetric", "random", "learned"):
        for layers in ("", "0"):
            tag = f"{feedback}-{layers or 'all'}"
            cases[f"learned-nudged-{tag}"] = {"circuit.feedback": feedback, "circuit.g_apical_layers": layers}
            cases[f"ideal-nudged-{tag}"] = {"circuit.feedback": feedback, "circuit.interneurons": "ideal",
                                            "circuit.g_apical_layers": layers}
            for nudge in ("one-sided", "two-sided"):
                cases[f"ideal-free-{nudge}-{tag}"] = {
                    "circuit.feedback": feedback, "circuit.interneurons": "ideal", "circuit.error_reference": "free",
                    "circuit.nudge": nudge, "circuit.g_apical_layers": layers}
    cases["learned-not-contrastive"] = {"circuit.contrastive": False, "circuit.feedback": "random"}
    cases["learned-uncentred"] = {"circuit.center_feedback": False, "circuit.feedback": "random"}
    cases["three-hidden-two-sided"] = {**ideal_free, "arch": THREE_HIDDEN, "circuit.nudge": "two-sided"}
    cases["three-hidden-two-sided-0"] = {**ideal_free, "arch": THREE_HIDDEN, "circuit.nudge": "two-sided",
                                         "circuit.g_apical_layers": "0"}
    cases["three-hidden-learned"] = {"arch": THREE_HIDDEN, "circuit.feedback": "learned"}
    cases["three-hidden-direct"] = {"arch": THREE_HIDDEN, "circuit.feedback": "direct"}
    cases["direct-0"] = {"circuit.feedback": "direct", "circuit.g_apical_layers": "0"}
    cases["direct-0-headroom"] = {"circuit.feedback": "direct", "circuit.g_apical_layers": "0", "circuit.gate": "headroom"}
    cases["random-headroom"] = {"circuit.feedback": "random", "circuit.gate": "headroom"}
    cases["ideal-free-headroom"] = {**ideal_free, "circuit.gate": "headroom"}
    cases["one-hidden-learned"] = {"arch": "64-16-10"}
    cases["one-hidden-free"] = {**ideal_free, "arch": "64-16-10"}
    cases["no-hidden"] = {"arch": "64-10"}
    cases["no-hidden-free"] = {**ideal_free, "arch": "64-10"}
    cases["leaky-refractory"] = {"neuron.tau_mem": 20.0, "neuron.refractory": 1, "circuit.feedback": "random"}
    cases["leaky-free"] = {**ideal_free, "neuron.tau_mem": 20.0, "neuron.refractory": 1}
    cases["g-basal-learned"] = {"circuit.g_basal": 1.7, "circuit.feedback": "random"}
    cases["g-basal-free"] = {**ideal_free, "circuit.g_basal": 1.7, "circuit.nudge": "two-sided"}
    cases["beta-half"] = {**ideal_free, "circuit.teacher_strength": 0.5}
    cases["latency-encoder"] = {"encoder": "latency", "circuit.feedback": "random"}
    return cases


CASES = _cases()


def config(name: str) -> TrainConfig:
    values = {"dataset": "digits", "arch": TWO_HIDDEN, "steps": STEPS, "batch_size": BATCH, "init_scale": 0.8,
              "self_predict_batches": 2, "targets.high": 9.0, "circuit.g_apical": 1.0, "seed": 3,
              **CASES[name]}
    return TrainConfig().with_values(values).validate()


def _digits():
    return load_dataset("digits")


def capture(name: str) -> dict[str, torch.Tensor]:
    """Every number the golden test fixes for configuration ``name``."""
    cfg = config(name)
    data = _digits()
    x, labels = data.train_x[: 4 * BATCH], data.train_y[: 4 * BATCH]
    sizes = cfg.sizes(data.input_size, data.num_classes)
    out: dict[str, torch.Tensor] = {}
    circuit = build_circuit(sizes, cfg.circuit, torch.Generator().manual_seed(cfg.seed), cfg.init_scale)
    y = cfg.targets.of(labels[:BATCH], sizes[-1])
    every = Plasticity(W=True, P=True, Q=True, B=True)
    run = dict(batch=BATCH, ctx=Context(STEPS, cfg.neuron, cfg.circuit))

    def stream():
        return cfg.encoder_obj().stream(x[:BATCH], STEPS, torch.Generator().manual_seed(11))

    learned = cfg.circuit.feedback == "learned"  # W and B then read the free phase: only present_phases has it
    free = present(circuit, stream(), None, learn=every, record=True, **run)
    teach = present(circuit, stream(), y, learn=Plasticity(W=not learned, P=True, Q=True), record=True, **run)
    phases = present_phases(circuit, stream(), y, lateral=Plasticity(W=False, P=True, Q=True), learn=every, **run)
    for tag, res in (("free", free), ("teach", teach), ("phases-free", phases[0]), ("phases-teach", phases[1])):
        out[f"{tag}/counts"], out[f"{tag}/potentials"] = res.counts, res.potentials
        out[f"{tag}/basal_counts"] = res.basal_counts
        out[f"{tag}/apical_residual"] = torch.tensor(res.apical_residual, dtype=torch.float64)
        out.update({f"{tag}/hidden_counts{l}": c for l, c in enumerate(res.hidden_counts)})
        out.update({f"{tag}/apical_sums{l}": a for l, a in enumerate(res.apical_sums)})
        out.update({f"{tag}/update/{k}": u for k, u in res.updates.items()})
        out.update({f"{tag}/record/{k}": v[:, 0] for k, v in (res.record or {}).items()})  # the first sample
        if res.free_output is not None:
            out[f"{tag}/free_output/counts"], out[f"{tag}/free_output/potentials"] = res.free_output
    rule = make_rule(cfg, sizes, torch.Generator().manual_seed(cfg.seed), torch.device("cpu"))
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    stats = [rule.train_batch(x[b * BATCH:(b + 1) * BATCH], labels[b * BATCH:(b + 1) * BATCH], gen)
             for b in range(3)]
    out["train/stats"] = torch.tensor([[s.loss_sum, s.correct, s.samples] for s in stats], dtype=torch.float64)
    out.update({f"train/{k}": v.detach().clone() for k, v in rule.tensors().items()})
    fwd = rule.forward(x[3 * BATCH:], torch.Generator().manual_seed(5))
    out["infer/counts"], out["infer/potentials"] = fwd.output, fwd.potentials
    return out
