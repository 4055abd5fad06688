"""The locality contract, checked where it lives: the signatures of the plasticity rules and the
data a presentation keeps."""

import inspect

import torch

from bioleaf import plasticity
from bioleaf.config import TrainConfig
from bioleaf.microcircuit import CircuitParams, Plasticity, build_circuit, present

RULES = [plasticity.basal_error_stdp, plasticity.interneuron_prediction, plasticity.apical_cancellation,
         plasticity.feedback_mirror]
# presynaptic activity, the postsynaptic cell's own spikes/compartments, a global scalar (steps)
LOCAL_NAMES = {"pre_sum", "apical_sum", "active", "partner_count", "own_predicted_count",
               "interneuron_sum", "own_sum", "steps"}


def test_every_rule_reads_only_local_quantities():
    for rule in RULES:
        params = set(inspect.signature(rule).parameters)
        assert params <= LOCAL_NAMES, (rule.__name__, params - LOCAL_NAMES)
        assert not any(name in params for name in ("W", "B", "P", "Q", "weights", "labels", "targets"))


def test_rules_are_pure_functions_of_their_arguments():
    g = torch.Generator().manual_seed(0)
    pre, post = torch.rand(4, 3, generator=g), torch.rand(4, 5, generator=g)
    sample = {"pre_sum": pre, "interneuron_sum": pre, "apical_sum": post, "active": (post > 0.5).float(),
              "partner_count": post, "own_predicted_count": post.flip(0), "own_sum": post, "steps": 10}
    for rule in RULES:
        names = list(inspect.signature(rule).parameters)
        if rule is plasticity.feedback_mirror:  # pre: the layer above (5 cells), post: own layer
            sample = {**sample, "pre_sum": post, "own_sum": pre}
        args = [sample[n].clone() if torch.is_tensor(sample[n]) else sample[n] for n in names]
        first, second = rule(*args), rule(*args)
        assert torch.equal(first, second)
        assert all(torch.equal(a, sample[n]) for a, n in zip(args, names) if torch.is_tensor(a))


def test_no_weight_transport_in_the_bottom_up_update():
    """The update of W0 never reads W1: with the output clamped by the teacher (beta = 1) the
    activity above does not depend on W1, so replacing W1 leaves W0's update bit-identical."""
    cfg = TrainConfig(arch="20-16-4", steps=10)
    params = CircuitParams(feedback="random", interneurons="learned", teacher_strength=1.0)
    circuit = build_circuit([20, 16, 4], params, torch.Generator().manual_seed(1), 0.5)
    images = torch.rand(8, 20, generator=torch.Generator().manual_seed(2))
    targets = torch.zeros(8, 4)
    targets[:, 1] = 6

    def update():
        g = torch.Generator().manual_seed(3)
        res = present(circuit, cfg.encoder_obj().stream(images, 10, g), targets, batch=8, steps=10,
                      neuron=cfg.neuron, params=params, learn=Plasticity(W=True))
        return res.updates["W0"]

    before = update()
    assert before.abs().sum() > 0
    circuit.W[1].copy_(torch.randn(4, 16, generator=torch.Generator().manual_seed(4)))
    assert torch.equal(before, update())


def test_presentation_leaves_no_autograd_graph_and_constant_memory_state():
    cfg = TrainConfig(arch="20-16-16-4")
    params = CircuitParams()
    circuit = build_circuit([20, 16, 16, 4], params, torch.Generator().manual_seed(0), 0.5)
    images = torch.rand(5, 20, generator=torch.Generator().manual_seed(1))
    sizes = {}
    for steps in (5, 50):
        res = present(circuit, cfg.encoder_obj().stream(images, steps, torch.Generator().manual_seed(2)),
                      torch.zeros(5, 4), batch=5, steps=steps, neuron=cfg.neuron, params=params,
                      learn=Plasticity(W=True, P=True, Q=True, B=True))
        assert all(u.grad_fn is None and not u.requires_grad for u in res.updates.values())
        assert res.record is None
        sizes[steps] = {k: tuple(v.shape) for k, v in res.updates.items()}
    assert sizes[5] == sizes[50]
