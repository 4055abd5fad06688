import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from bioleaf.errors import UsageError
from bioleaf.model.neurons import NeuronParams, if_init, if_step


def run(currents, p):
    state = if_init(1, 1)
    vs, ss, xs = [], [], []
    for c in currents:
        s, state = if_step(torch.tensor([[c]]), state, p)
        vs.append(float(state.v)), ss.append(float(s)), xs.append(float(state.trace))
    return vs, ss, xs, state


def test_golden_trace_integrate_and_fire():
    p = NeuronParams(threshold=1.0, tau_syn=5.0)
    vs, ss, xs, state = run([0.6, 0.6, 0.6, 0.0, 1.5], p)
    assert ss == [0, 1, 0, 0, 1]
    assert vs == pytest.approx([0.6, 0.2, 0.8, 0.8, 1.3])  # reset by subtraction keeps the excess
    lam = math.exp(-1 / 5)
    assert xs == pytest.approx([0, 1, lam, lam**2, lam**3 + 1])
    assert float(state.count) == 2


def test_golden_trace_leak_and_refractory():
    p = NeuronParams(threshold=1.0, tau_mem=10.0, refractory=2)
    a = math.exp(-0.1)
    vs, ss, _, _ = run([1.2, 1.2, 1.2, 1.2], p)
    assert ss == [1, 0, 0, 1]  # two refractory steps after the first spike
    assert vs[0] == pytest.approx(0.2)
    assert vs[1] == pytest.approx(0.2 * a + 1.2)
    assert vs[2] == pytest.approx((0.2 * a + 1.2) * a + 1.2)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 64), st.integers(1, 200))
def test_constant_drive_counts_are_a_sigma_delta(k, steps):
    """Without leak, reset by subtraction makes count = floor(total input / threshold)
    (dyadic drives, so float sums are exact)."""
    c = k / 64
    p = NeuronParams(threshold=1.0)
    state = if_init(1, 1, dtype=torch.float64)
    for _ in range(steps):
        _, state = if_step(torch.tensor([[c]], dtype=torch.float64), state, p)
    assert float(state.count) == math.floor(c * steps)


def test_step_is_pure():
    p = NeuronParams()
    state = if_init(2, 3)
    before = [t.clone() for t in state]
    if_step(torch.ones(2, 3) * 2, state, p)
    assert all(torch.equal(a, b) for a, b in zip(before, state))


@pytest.mark.parametrize("field,value", [("threshold", 0.0), ("tau_mem", -1.0), ("tau_syn", 0.0),
                                         ("tau_syn", math.inf), ("refractory", -1), ("dt", 0.0)])
def test_impossible_parameters_are_refused(field, value):
    with pytest.raises(UsageError, match="--" + field.replace("_", "-")):
        NeuronParams(**{field: value}).validate()
