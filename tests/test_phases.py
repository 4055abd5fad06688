"""The free and the teacher phase side by side (``present_phases``, one batch of twice the rows) are the
two presentations run one after the other on the same input spikes."""

import pytest
import torch

from bioleaf.config import TrainConfig
from bioleaf.data import load_dataset
from bioleaf.model.circuit import Context, Plasticity, build_circuit, present, present_phases


@pytest.mark.parametrize("feedback", ["random", "learned", "direct"])
def test_each_half_is_its_phase_alone(feedback):
    data = load_dataset("digits")
    cfg = TrainConfig().with_values({"dataset": "digits", "arch": "64-32-16-10", "steps": 20, "init_scale": 0.3,
                                     "circuit.feedback": feedback}).validate()
    circuit = build_circuit(cfg.sizes(64, 10), cfg.circuit, torch.Generator().manual_seed(0), cfg.init_scale)
    x = data.train_x[:48]
    y = cfg.targets.of(data.train_y[:48], 10)
    run = dict(batch=48, ctx=Context(cfg.steps, cfg.neuron, cfg.circuit))

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


def test_unnudged_layers_are_computed_once_for_both_phases(monkeypatch):
    """With the lowest hidden layer unnudged (``g_apical_layers "0"``) its cells fire alike in the free and the
    teacher half, so its populations and the products leaving them (``W_1``, ``P_0``, ``Q_0``) run on one half's
    rows: the same updates, and exactly those products' FLOPs saved."""
    from bioleaf.model.circuit import spec
    from test_bench import counted_flops

    data = load_dataset("digits")
    cfg = TrainConfig().with_values({"dataset": "digits", "arch": "64-32-16-10", "steps": 20, "init_scale": 0.3,
                                     "circuit.feedback": "learned", "circuit.g_apical_layers": "0"}).validate()
    sizes = cfg.sizes(64, 10)
    circuit = build_circuit(sizes, cfg.circuit, torch.Generator().manual_seed(0), cfg.init_scale)
    for t in circuit.P + circuit.Q:  # interneurons that have learned something, so that Q and P products matter
        t.copy_(0.3 * torch.randn(t.shape, generator=torch.Generator().manual_seed(t.numel())))
    x, batch = data.train_x[:48], 48
    y = cfg.targets.of(data.train_y[:48], 10)

    def both_phases():
        stream = cfg.encoder_obj().stream(x, cfg.steps, torch.Generator().manual_seed(1))
        return present_phases(circuit, stream, y, cfg.context, batch=batch, lateral=Plasticity(W=False, P=True, Q=True),
                              learn=Plasticity(W=True, B=True))

    shared, shared_flops = both_phases(), counted_flops(both_phases)
    monkeypatch.setattr(spec, "identical_copies", lambda couplings, lowest, copies: [1] * len(couplings))
    separate, separate_flops = both_phases(), counted_flops(both_phases)
    for got, expected in zip(shared, separate):
        assert got.updates.keys() == expected.updates.keys()
        for name in got.updates:
            assert torch.equal(got.updates[name], expected.updates[name]), name
        assert torch.equal(got.counts, expected.counts)
    n0, n1 = sizes[1], sizes[2]
    per_step = n1 * n0 + n1 * n0 + n0 * n1  # W_1, P_0 and Q_0 each step, and Q_0 once more for the PSPs in flight
    assert separate_flops - shared_flops == cfg.steps * batch * 2 * per_step + batch * 2 * n0 * n1


def test_identical_copies_run_up_to_the_lowest_nudged_layer():
    from bioleaf.model.circuit.layout import identical_copies

    assert identical_copies([0.0, 0.5], 0, 2) == [2, 1]
    assert identical_copies([0.0, 0.0, 1.0], 0, 2) == [2, 2, 1]
    assert identical_copies([None, None], 0, 2) == [2, 2]
    assert identical_copies([0.5, 0.0], 0, 2) == [1, 1]  # above a nudged layer nothing is shared
    assert identical_copies([0.0, 0.5], 0, 1) == [1, 1]
    assert identical_copies([0.0, 0.0, 1.0], 1, 3)[1:] == [3, 1]  # from the phase's lowest simulated layer
