"""Tests for bioleaf.tools.bench.limit and the keys of the speed part of the bench: the unavoidable work of a BioLeaF
batch (its products, its input spikes' random draws, its optimiser's step) is recorded off the batch and replayed,
and ``bioleaf bench --speed-only`` reports it for both circuits, with every peer.

No timing is asserted: the machine running the tests may be shared with other jobs.
"""

import json
import math
from contextlib import redirect_stdout
from io import StringIO

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from bioleaf import cli
from bioleaf.model.encoding import Encoder
from bioleaf.tools.bench import flops, limit, peers, trainers
from bioleaf.tools.bench.trainers import BIOLEAF_TRAINERS

LIMIT_KEYS = tuple(f"{name}_{key}" for name in BIOLEAF_TRAINERS for key in (
    "limit_efficiency", "limit_seconds", "limit_seconds_products", "limit_seconds_random", "limit_seconds_optimizer",
    "matmul_efficiency", "gflops", "matmul_replay_gflops", "random_draws_per_batch", "random_numbers_per_batch",
    "optimizer_tensors", "optimizer_parameters"))
"""The figures of the limit replay (and of the products alone) of every circuit, each part of the replay timed."""


def test_the_recorder_lists_every_frame_s_random_draw_at_its_shape_and_dtype():
    for dtype in (torch.float32, torch.float64):
        images = torch.rand(4, 10, dtype=dtype)
        stream = Encoder("bernoulli", 0.5).stream(images, 7, torch.Generator().manual_seed(0))
        recorded = limit.recorded_batch(lambda: [stream(t) for t in range(7)])
        assert recorded.draws == [limit.Draw((4, 10), dtype)] * 7 and recorded.matmuls == []
    recorded = limit.recorded_batch(lambda: torch.empty(3, 2).uniform_() @ torch.rand(2, 5, dtype=torch.float32))
    assert recorded.draws == [limit.Draw((3, 2), torch.float32), limit.Draw((2, 5), torch.float32)]
    assert [(m.m, m.k, m.n, m.count) for m in recorded.matmuls] == [(3, 2, 5, 1)]


@pytest.mark.parametrize("name", list(BIOLEAF_TRAINERS))
def test_a_circuit_s_replay_does_its_products_draws_and_optimiser_step(name):
    steps, batch = 6, 5
    trainer = trainers.make_trainer(name, "30-12-9-4", steps, batch, torch.device("cpu"))
    images = torch.rand(batch, 30, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(batch) % 4
    recorded = limit.recorded_batch(lambda: trainer.train_batch(images, labels, torch.Generator().manual_seed(2)))
    frames = trainer.presentation_steps  # one input frame per step (one presentation: the free period's too)
    assert frames == steps * (2 if name == "bioleaf_one" else 1)  # one presentation: as many free steps as taught
    assert recorded.draws == [limit.Draw((batch, 30), torch.float32)] * frames
    replay = limit.limit_replay(recorded, trainer.optimizer, torch.device("cpu"), seed=3)
    assert list(replay.parts) == list(limit.PARTS)
    again = limit.recorded_batch(replay.parts["random"])
    assert again.draws == recorded.draws and again.matmuls == []
    with FlopCounterMode(display=False) as counter:
        replay.parts["products"]()
    assert counter.get_total_flops() == flops.total_flops(recorded.matmuls) > 0
    step = replay.parts["optimizer"]
    theirs = step.__self__  # the replay's optimiser
    assert type(theirs) is type(trainer.optimizer) and theirs.defaults == trainer.optimizer.defaults
    shapes = [[p.shape for p in g["params"]] for g in trainer.optimizer.param_groups]
    assert [[p.shape for p in g["params"]] for g in theirs.param_groups] == shapes
    assert [g["lr"] for g in theirs.param_groups] == [g["lr"] for g in trainer.optimizer.param_groups]
    before = [p.clone() for g in theirs.param_groups for p in g["params"]]
    replay()
    assert all(not torch.equal(a, p) for a, p in zip(before, (p for g in theirs.param_groups for p in g["params"])))
    assert all(len(replay.seconds[part]) == 1 and replay.seconds[part][0] > 0 for part in limit.PARTS)
    if name != "bioleaf":  # W, and the learned P and Q (and B where it learns)
        assert sum(len(s) for s in shapes) > len(trainer.weights)


@pytest.fixture(scope="module")
def speed_only():
    """One quick ``bioleaf bench --speed-only --json`` (a and c, no memory probes)."""
    pytest.importorskip("snntorch")
    out = StringIO()
    with redirect_stdout(out):
        assert cli.main(["bench", "--quick", "--speed-only", "--json"]) == 0
    return json.loads(out.getvalue())


def _positive(result, key):
    value = result[key]
    assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)


def test_the_speed_only_bench_reports_every_circuit_s_limit_replay(speed_only):
    for key in LIMIT_KEYS:
        _positive(speed_only, key)
    assert speed_only["speed_only"] is True and "bioleaf_peak_mb_T10" not in speed_only
    for name in BIOLEAF_TRAINERS:
        frames = speed_only[f"{name}_steps_per_sample"]
        assert frames == speed_only["speed_steps"] * (2 if name == "bioleaf_one" else 1)
        assert speed_only[f"{name}_random_draws_per_batch"] == frames
        assert speed_only[f"{name}_random_numbers_per_batch"] == frames * speed_only["speed_batch"] * 784
    assert speed_only["bioleaf_local_optimizer_tensors"] > speed_only["bioleaf_optimizer_tensors"] == 3
    assert speed_only["matmul_gflops"] == speed_only["bioleaf_matmul_replay_gflops"]


def test_the_speed_only_bench_times_every_installed_peer_and_compares_every_circuit_with_each(speed_only):
    measured = [name for name in peers.PEERS if name == "snntorch" or speed_only[name] == "measured"]
    for name in peers.OPTIONAL_PEERS:
        assert speed_only[name] == ("measured" if peers.installed(name) else peers.SKIPPED)
    for name in measured:
        _positive(speed_only, f"{name}_samples_per_s")
        for circuit in BIOLEAF_TRAINERS:
            _positive(speed_only, f"{circuit}_over_{name}")
    assert speed_only["fastest_peer"] in measured
    fastest = max(speed_only[f"{name}_samples_per_s"] for name in measured)
    for circuit in BIOLEAF_TRAINERS:
        assert speed_only[f"{circuit}_over_fastest_peer"] == pytest.approx(
            speed_only[f"{circuit}_samples_per_s"] / fastest)
