"""Tests for bioleaf.tools.bench.peers: the snnTorch, Norse and SpikingJelly twins of our ``bptt`` network see the
same input spikes and give our output counts, learn an easy task, are deterministic, and an optional peer whose
package is missing is skipped by the bench.

No timing is asserted: the machine running the tests may be shared with other jobs.
"""

import math
import sys

import pytest
import torch
import torch.nn.functional as F

from bioleaf.errors import UsageError
from bioleaf.model.encoding import Encoder
from bioleaf.model.losses import count_cross_entropy
from bioleaf.model.network import simulate
from bioleaf.model.neurons import NeuronParams
from bioleaf.rules.bptt import surrogate_spike
from bioleaf.tools.bench import peers, speed, trainers
from bioleaf.tools.bench.peers.norse_twin import NorseTwin
from bioleaf.tools.bench.peers.snntorch_twin import SnnTorchTwin
from bioleaf.tools.bench.peers.spikingjelly_twin import SpikingJellyTwin
from bioleaf.tools.bench.settings import QUICK

TWINS = {"snntorch": SnnTorchTwin, "norse": NorseTwin, "spikingjelly": SpikingJellyTwin}


def _need(name):
    """Skip a test of the peer ``name`` where its package is not installed."""
    pytest.importorskip(name)


class RecordingEncoder:
    """An encoder that hands out the frames of ``encoder`` and keeps every frame a network asks for."""

    def __init__(self, encoder):
        self.encoder, self.frames = encoder, []

    def stream(self, images, steps, generator, rows=None):
        inner = self.encoder.stream(images, steps, generator, rows)

        def spikes_at(t):
            s = inner(t)
            self.frames.append((t, s.clone()))
            return s
        return spikes_at


def _tiny_problem(dtype):
    """A tiny network driven hard enough that its cells fire often (as in tests/test_bench.py)."""
    sizes, steps, batch = [24, 16, 12, 5], 40, 8
    g = torch.Generator().manual_seed(0)
    weights = [((torch.rand(o, i, generator=g, dtype=dtype) * 2 - 1) * 2.5 * math.sqrt(3 / i))
               for i, o in zip(sizes[:-1], sizes[1:])]
    images = torch.rand(batch, sizes[0], generator=g, dtype=dtype)
    return sizes, steps, batch, weights, images


@pytest.mark.parametrize("name", list(TWINS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_every_peer_sees_our_input_spikes_and_gives_our_output_counts(name, dtype):
    _need(name)
    neuron = NeuronParams(tau_mem=20.0)
    sizes, steps, batch, weights, images = _tiny_problem(dtype)
    ours = RecordingEncoder(Encoder("bernoulli", 0.5))
    fwd = simulate(weights, ours.stream(images, steps, torch.Generator().manual_seed(5)), batch=batch, steps=steps,
                   neuron=neuron)
    theirs = RecordingEncoder(Encoder("bernoulli", 0.5))
    net = TWINS[name](sizes, neuron, 5.0, dtype=dtype).load_weights(weights)
    counts, potentials = net(theirs.stream(images, steps, torch.Generator().manual_seed(5)), batch=batch, steps=steps)
    assert [t for t, _ in theirs.frames] == list(range(steps)) == [t for t, _ in ours.frames]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(ours.frames, theirs.frames))
    assert torch.equal(counts, fwd.output)
    assert torch.allclose(potentials, fwd.potentials, rtol=0, atol=1e-9 if dtype == torch.float64 else 1e-3)
    out = fwd.output
    assert 0 < float(out.mean()) < steps and out.unique().numel() > 3  # neither silent nor saturated


def test_the_bench_hands_every_peer_the_input_frames_it_hands_bptt():
    """Built by the bench from one seed and given one spike generator seed, every peer's network asks for the same
    frames, in the same order, as our ``bptt``."""
    frames = {}
    for name in ("bptt", *peers.PEERS):
        if name != "bptt" and not peers.installed(name):
            continue
        trainer = trainers.make_trainer(name, "784-16-16-10", 6, 4, torch.device("cpu"), seed=0)
        trainer.encoder = RecordingEncoder(trainer.encoder)
        images = torch.rand(4, 784, generator=torch.Generator().manual_seed(1))
        trainer.train_batch(images, torch.arange(4), torch.Generator().manual_seed(2))
        frames[name] = trainer.encoder.frames
    assert "snntorch" in frames and len(frames["bptt"]) == 6
    for name, seen in frames.items():
        assert [t for t, _ in seen] == list(range(6)), name
        assert all(torch.equal(a, b) for (_, a), (_, b) in zip(seen, frames["bptt"])), name


@pytest.mark.parametrize("name", ["norse", "spikingjelly"])
def test_a_peer_s_gradient_follows_ours_where_its_surrogate_is_alike(name):
    """Norse and SpikingJelly differ from ours only in the surrogate's width or height (their docstrings): their
    gradients point the way ours do, without being equal."""
    _need(name)
    neuron = NeuronParams(tau_mem=20.0)
    sizes, steps, batch, weights, images = _tiny_problem(torch.float64)
    labels = torch.arange(batch) % sizes[-1]
    weights = [w.requires_grad_() for w in weights]
    fwd = simulate(weights, Encoder("bernoulli", 0.5).stream(images, steps, torch.Generator().manual_seed(5)),
                   batch=batch, steps=steps, neuron=neuron, spike_fn=surrogate_spike("fast-sigmoid", 5.0))
    ours = torch.autograd.grad(count_cross_entropy(fwd.output, labels, 2.0), weights)
    net = TWINS[name](sizes, neuron, 5.0, dtype=torch.float64).load_weights(weights)
    counts, _ = net(Encoder("bernoulli", 0.5).stream(images, steps, torch.Generator().manual_seed(5)), batch=batch,
                    steps=steps)
    theirs = torch.autograd.grad(F.cross_entropy(counts / 2.0, labels), list(net.parameters()))
    for a, b in zip(ours, theirs):
        assert F.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.5
        assert not torch.allclose(a, b)


def _easy_task(n, generator):
    """Four classes of 40-pixel images, each lighting its own block of 10 pixels."""
    labels = torch.randint(0, 4, (n,), generator=generator)
    images = torch.full((n, 40), 0.05)
    for k in range(4):
        images[labels == k, 10 * k:10 * k + 10] = 1.0
    return images, labels


@pytest.mark.parametrize("name", list(peers.PEERS))
def test_every_peer_s_trainer_learns_an_easy_task(name):
    _need(name)
    trainer = trainers.make_trainer(name, "40-32-4", 20, 32, torch.device("cpu"), seed=0)
    assert isinstance(trainer.optimizer, torch.optim.Adam)
    data, spikes = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
    losses = []
    for _ in range(12):
        stats = trainer.train_batch(*_easy_task(32, data), spikes)
        losses.append(stats.loss_sum / stats.samples)
    assert losses[0] > 1.3 and losses[-1] < 0.6 * losses[0], losses  # from chance, ln 4 = 1.39
    images, labels = _easy_task(256, data)
    accuracy = float((trainer.infer(images, torch.Generator().manual_seed(3)) == labels).float().mean())
    assert accuracy > 0.9  # chance: 0.25


@pytest.mark.parametrize("name", list(peers.PEERS))
def test_a_peer_trained_twice_from_one_seed_gives_the_same_losses_and_weights(name):
    _need(name)
    runs = []
    for _ in range(2):
        trainer = trainers.make_trainer(name, "40-16-16-4", 10, 8, torch.device("cpu"), seed=3)
        data, spikes = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
        losses = [trainer.train_batch(*_easy_task(8, data), spikes).loss_sum for _ in range(3)]
        runs.append((losses, [p.detach().clone() for p in trainer.net.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


@pytest.mark.parametrize("name", list(peers.PEERS))
def test_every_peer_starts_each_batch_at_rest(name):
    """The same spikes give the same counts batch after batch: no potential is carried over."""
    _need(name)
    sizes, steps, batch, weights, images = _tiny_problem(torch.float32)
    net = TWINS[name](sizes, NeuronParams(tau_mem=20.0), 5.0).load_weights(weights)
    first, second = (net(Encoder("bernoulli", 0.5).stream(images, steps, torch.Generator().manual_seed(5)),
                         batch=batch, steps=steps)[0].detach() for _ in range(2))
    assert torch.equal(first, second) and float(first.sum()) > 0


@pytest.mark.parametrize("name", peers.OPTIONAL_PEERS)
def test_a_missing_optional_peer_is_skipped_and_the_others_are_timed(monkeypatch, name):
    pytest.importorskip("snntorch")
    monkeypatch.setitem(sys.modules, name, None)  # makes `import name` raise ImportError
    assert not peers.installed(name)
    with pytest.raises(UsageError, match=f"bench: {name} is not installed; pip install --no-deps {name}=="):
        trainers.make_trainer(name, "40-8-4", 4, 2, torch.device("cpu"))
    names, status = speed.speed_trainers()
    assert status[name] == peers.SKIPPED == "skipped: not installed" and name not in names
    assert "snntorch" in names and "bioleaf" in names and "bioleaf_local" in names
    result = speed.measure_speed(QUICK)
    assert result[name] == "skipped: not installed"
    assert not [key for key in result if key.startswith(f"{name}_") or key.endswith(f"_{name}")]
    assert result["fastest_peer"] != name and result["bioleaf_over_fastest_peer"] > 0
