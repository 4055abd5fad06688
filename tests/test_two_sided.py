"""``--nudge two-sided``: a second teacher phase with the top hidden layer's apical coupling reversed;
the layers below the top hidden one learn from half the difference of the two phases' apical integrals."""

import dataclasses

import pytest
import torch

from bioleaf.config import TrainConfig
from bioleaf.data import load_dataset
from bioleaf.tools.equivalence import agreement, spiking_updates
from bioleaf.model.losses import CountTargets
from bioleaf.model.circuit import Context, Microcircuit, Plasticity, build_circuit, present


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")
    return data.train_x[:128], data.train_y[:128]


def setup(arch: str, nudge: str, layers: str = "", beta: float = 1.0, steps: int = 20, init: float = 1.0):
    cfg = TrainConfig(rule="bioleaf", dataset="digits", arch=arch, steps=steps, init_scale=init).validate()
    circuit = dataclasses.replace(cfg.circuit, interneurons="ideal", error_reference="free", g_apical=1.0,
                                  g_apical_layers=layers, nudge=nudge, teacher_strength=beta).validate()
    cfg = dataclasses.replace(cfg, circuit=circuit, targets=CountTargets(high=15.0))
    sizes = [int(n) for n in arch.split("-")]
    return cfg, build_circuit(sizes, circuit, torch.Generator().manual_seed(0), cfg.init_scale)


@pytest.mark.parametrize("layers, beta", [("0", 1.0), ("", 1.0), ("", 0.6)])
def test_the_second_phase_is_a_teacher_phase_with_the_top_coupling_reversed(layers, beta, digits):
    """The side-by-side second phase equals a separate one-sided presentation of a circuit whose top
    feedback is negated (its top hidden layer's apical input, and so its nudge, reversed): the lowest
    layer's update is half the difference of the two one-sided updates, the others are one-sided's."""
    arch = "64-128-64-10"
    x, labels = digits
    cfg, circuit = setup(arch, "two-sided", layers, beta, init=0.3)
    one_sided = dataclasses.replace(cfg.circuit, nudge="one-sided")
    y = cfg.targets.of(labels, 10)

    def updates(circ: Microcircuit, params):
        stream = cfg.encoder_obj().stream(x, cfg.steps, torch.Generator().manual_seed(3))
        return present(circ, stream, y, batch=len(x), ctx=Context(cfg.steps, cfg.neuron, params),
                       learn=Plasticity(W=True)).updates

    both = updates(circuit, cfg.circuit)
    plus = updates(circuit, one_sided)
    reversed_top = Microcircuit(W=circuit.W, B=[circuit.B[0], -circuit.B[1]], P=circuit.P, Q=circuit.Q)
    minus = updates(reversed_top, one_sided)
    expected = (plus["W0"] - minus["W0"]) / 2
    assert not torch.equal(plus["W0"], minus["W0"])  # the reversed nudge did move the middle layer
    assert torch.allclose(both["W0"], expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))
    assert torch.equal(both["W1"], plus["W1"]) and torch.equal(both["W2"], plus["W2"])


def cosines(arch: str, nudge: str, layers: str, init: float, digits) -> list[float]:
    cfg, circuit = setup(arch, nudge, layers, init=init)
    x, labels = digits
    updates, grads, _ = spiking_updates(circuit, x, labels, cfg, torch.Generator().manual_seed(1))
    return [row["cosine"] for row in agreement(updates, grads)]


@pytest.mark.parametrize("arch, layers", [("64-128-64-10", "0"), ("64-128-64-10", ""), ("64-96-96-64-10", "")])
def test_two_sided_nudging_aligns_the_lower_layers_with_stbp(arch, layers, digits):
    """At the Fashion-MNIST preset's initial weight scale (0.3); with larger weights the lower layers'
    alignment is about the same either way."""
    init = 0.3
    one = cosines(arch, "one-sided", layers, init, digits)
    two = cosines(arch, "two-sided", layers, init, digits)
    print(f"[two-sided] {arch} layers {layers!r}: one-sided {[round(c, 4) for c in one]}, "
          f"two-sided {[round(c, 4) for c in two]}")
    assert two[-2:] == one[-2:]  # the top hidden layer and the output read the teacher itself
    for lower_one, lower_two in zip(one[:-2], two[:-2]):
        assert lower_two > lower_one + 0.05
