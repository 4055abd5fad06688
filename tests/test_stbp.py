"""The explicit ST-BP formulas equal autograd on the count model they are derived from."""

import torch

from bioleaf.tools.equivalence import cosine
from bioleaf.model.network import Forward
from bioleaf.model.backprop import stbp_gradients


def count_model(weights, x0, kappa, threshold):
    X, o = [x0], []
    for w in weights:
        o.append(torch.relu(X[-1] @ w.T) / threshold)
        X.append(kappa * o[-1])
    return o, X


def test_stbp_gradients_match_autograd_on_the_count_model():
    g = torch.Generator().manual_seed(0)
    sizes, threshold, kappa = [20, 16, 12, 5], 1.5, 3.0
    shift = [0.5, 0.5, 0.0]  # centred hidden weights (some silent cells), positive output weights
    weights = [(torch.rand(o, i, generator=g, dtype=torch.float64) - s) / i ** 0.5
               for i, o, s in zip(sizes[:-1], sizes[1:], shift)]
    x0 = torch.rand(32, sizes[0], generator=g, dtype=torch.float64) * 10
    leaves = [w.clone().requires_grad_() for w in weights]
    o, X = count_model(leaves, x0, kappa, threshold)
    # every output active, so the output gate is the plain relu derivative autograd uses
    assert (o[-1] > 0).all()
    y = torch.where(torch.rand(o[-1].shape, generator=g, dtype=torch.float64) < 0.2, 8.0, 0.0)
    (0.5 * ((o[-1] - y) ** 2).sum()).backward()
    with torch.no_grad():
        o, X = count_model(weights, x0, kappa, threshold)
        grads = stbp_gradients(weights, Forward(counts=o, trace_sums=X, potentials=o[-1]), y, threshold)
    assert any(bool((c == 0).any()) for c in o[:-1])  # silent hidden cells exercised the gate
    for leaf, grad in zip(leaves, grads):
        torch.testing.assert_close(grad, leaf.grad)


def test_silent_output_cell_that_should_fire_receives_its_error():
    w = [torch.tensor([[1.0, 0.0], [-1.0, 0.0]])]
    x0 = torch.tensor([[2.0, 0.0]])
    o = [torch.relu(x0 @ w[0].T)]
    y = torch.tensor([[0.0, 5.0]])
    (grad,) = stbp_gradients(w, Forward(counts=o, trace_sums=[x0, o[0]], potentials=o[0]), y, 1.0)
    assert grad[1, 0] < 0  # descending the gradient raises the silent cell's drive
    assert cosine(grad[0], torch.tensor([4.0, 0.0])) > 0.999
