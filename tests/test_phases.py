"""The free and the teacher phase side by side (``present_phases``, one batch of twice the rows) are the
two presentations run one after the other on the same input spikes."""

import pytest
import torch

from bioleaf.config import TrainConfig
from bioleaf.data import load_dataset
from bioleaf.losses import target_counts
from bioleaf.microcircuit import Plasticity, build_circuit, present, present_phases


@pytest.mark.parametrize("feedback", ["random", "learned", "direct"])
def test_each_half_is_its_phase_alone(feedback):
    data = load_dataset("digits")
    cfg = TrainConfig().with_values({"dataset": "digits", "arch": "64-32-16-10", "steps": 20, "init_scale": 0.3,
                                     "circuit.feedback": feedback}).validate()
    circuit = build_circuit(cfg.sizes(64, 10), cfg.circuit, torch.Generator().manual_seed(0), cfg.init_scale)
    x = data.train_x[:48]
    y = target_counts(data.train_y[:48], 10, cfg.circuit.target_high, cfg.circuit.target_low)
    run = dict(batch=48, steps=cfg.steps, neuron=cfg.neuron, params=cfg.circuit)

    def stream():
        return cfg.encoder_obj().stream(x, cfg.steps, torch.Generator().manual_seed(1))

    lateral = Plasticity(W=False, P=True, Q=True)
    free, teach = present_phases(circuit, stream(), y, lateral=lateral, learn=Plasticity(W=True), **run)
    alone = {"free": present(circuit, stream(), None, learn=lateral, **run),
             "teach": present(circuit, stream(), y, learn=Plasticity(W=False), **run)}
    for half, res in (("free", free), ("teach", teach)):
        ref = alone[half]
        for got, expected in zip([res.counts, *res.hidden_counts], [ref.counts, *ref.hidden_counts]):
            assert torch.equal(got, expected), half
        for got, expected in zip(res.apical_sums, ref.apical_sums):
            assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5), half
    for name in ("P0", "P1", "Q0", "Q1"):
        assert torch.allclose(free.updates[name], alone["free"].updates[name], rtol=1e-5, atol=1e-6), name
