"""The plasticity gate of hidden cells (``--gate``): ``fired`` opens for any cell that fired, ``headroom``
closes as the cell's count approaches its cap of one spike per step, so a cell at the cap does not learn."""

import dataclasses

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from bioleaf.model import plasticity
from bioleaf.config import TrainConfig
from bioleaf.data import load_dataset
from bioleaf.model.circuit import Context, Plasticity, build_circuit, present_phases


@given(steps=st.integers(1, 500), data=st.data())
def test_the_gates_on_every_count(steps, data):
    counts = torch.tensor(data.draw(st.lists(st.integers(0, steps), min_size=1, max_size=50)), dtype=torch.float32)
    fired = plasticity.plasticity_gate(counts, steps, "fired")
    headroom = plasticity.plasticity_gate(counts, steps, "headroom")
    assert torch.equal(fired, (counts > 0).float())
    assert torch.all((headroom >= 0) & (headroom <= fired))  # never more open than fired
    assert torch.all(headroom[counts == steps] == 0) and torch.all(headroom[counts == 0] == 0)
    assert torch.allclose(headroom, fired * (steps - counts) / steps)  # linear in the spikes left below the cap


@pytest.fixture(scope="module")
def teacher_phase():
    """One teacher phase of the circuit without copied weights with fixed random feedback on one digit, strongly driven
    (init scale 4) so that some hidden cells fire at every step; per gate, the first hidden layer's update and
    its counts."""
    digits = load_dataset("digits")
    values = {"dataset": "digits", "arch": "64-32-16-10", "steps": 20, "init_scale": 4.0,
              "circuit.feedback": "random", "circuit.g_apical_layers": "0"}
    cfg = TrainConfig().with_values(values).validate()
    y = cfg.targets.of(digits.train_y[:1], 10)
    result = {}
    for gate in plasticity.GATES:
        params = dataclasses.replace(cfg.circuit, gate=gate)
        circuit = build_circuit(cfg.sizes(64, 10), params, torch.Generator().manual_seed(0), cfg.init_scale)
        stream = cfg.encoder_obj().stream(digits.train_x[:1], cfg.steps, torch.Generator().manual_seed(1))
        _, teach = present_phases(circuit, stream, y, batch=1, ctx=Context(cfg.steps, cfg.neuron, params),
                                  lateral=Plasticity(W=False), learn=Plasticity(W=True))
        result[gate] = teach.updates["W0"], teach.hidden_counts[0]
    return result, cfg.steps


def test_a_cell_at_its_cap_learns_only_with_the_fired_gate(teacher_phase):
    result, steps = teacher_phase
    fired_update, counts = result["fired"]
    headroom_update, same_counts = result["headroom"]
    assert torch.equal(counts, same_counts)  # the gate changes learning, not the simulation
    capped, silent = counts[0] == steps, counts[0] == 0
    assert capped.any() and (~capped & ~silent).any()
    assert float(fired_update[capped].abs().sum()) > 0
    assert float(headroom_update[capped].abs().sum()) == 0
    assert float(headroom_update[silent].abs().sum()) == float(fired_update[silent].abs().sum()) == 0
    assert float(headroom_update[~capped & ~silent].abs().sum()) > 0
