"""The locality contract, measured: ``check-locality`` over every circuit configuration, the memory of
learning against T in fresh processes, and the rules as pure functions."""

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import bioleaf

from bioleaf.model import plasticity
from bioleaf.config import TrainConfig
from bioleaf.presets import PRESETS
from bioleaf.model.circuit import Context, CircuitParams, Plasticity, build_circuit, present

from bioleaf.tools.locality import check_locality

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
from golden_cases import config  # noqa: E402

RULES = [plasticity.basal_error_integrated, plasticity.interneuron_prediction, plasticity.apical_cancellation,
         plasticity.count_change_error, plasticity.feedback_kolen_pollack, plasticity.dendritic_prediction_error,
         plasticity.basal_error_stdp, plasticity.homeostatic_drive, plasticity.homeostatic_scaling]


CHECKED = ["learned-nudged-random-all", "learned-nudged-learned-0", "learned-nudged-symmetric-0", "ideal-nudged-random-all",
           "ideal-free-one-sided-symmetric-all", "ideal-free-two-sided-learned-0", "three-hidden-direct",
           "one-hidden-learned", "no-hidden", "latency-encoder"]
"""Every feedback and interneuron mode, error reference and nudge, depth 0 to 3 hidden layers, another input code."""


@pytest.mark.parametrize("name", CHECKED)
def test_every_configuration_breaks_the_contract_exactly_where_its_labels_say(name, digits):
    cfg = config(name)
    report = check_locality(cfg, digits, samples=8)
    assert report.ok, report.reason()
    hidden = len(cfg.sizes(64, 10)) > 2
    acting = set(cfg.idealisations) if hidden else set(cfg.idealisations) & {"teacher-free-copy"}
    assert set(report.used) == acting  # each declared label shows, and nothing else does
    assert {"W0"} <= set(report.changes["W0"])  # the measurement sees real dependencies
    if not {"copied-feedback", "copied-interneurons"} & acting:
        assert "W1" not in report.changes["W0"]  # no weight transport


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_shows_exactly_the_labels_it_declares(preset, digits):
    cfg = bioleaf.preset(preset, dataset="digits", arch="64-48-48-10", steps=20, target_high=15)
    report = check_locality(cfg, digits, samples=8)
    assert report.ok, report.reason()
    assert report.used == cfg.idealisations


def test_an_undeclared_idealisation_fails_with_one_line(run_cli, monkeypatch):
    from bioleaf.config import TrainConfig

    monkeypatch.setattr(TrainConfig, "idealisations", property(lambda self: []))
    code, out, err = run_cli("check-locality", "--dataset", "digits", "--arch", "64-32-16-10", "--feedback", "symmetric",
                             "--samples", "8")
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("bioleaf check-locality: error: ")
    assert "outside the locality contract (the " in err and "idealisation, not declared)" in err


def test_cli_reports_the_labels_of_a_circuit_without_copied_weights(run_cli):
    code, out, err = run_cli("check-locality", "--dataset", "digits", "--arch", "64-32-16-10", "--feedback", "random",
                             "--samples", "8", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] and report["idealisations"] == report["used"] == ["replayed-input", "partner-count"]
    assert {"B0", "Q0", "W0"} <= set(report["changes"]["W0"]) and "W1" not in report["changes"]["W0"]
    assert [d for d in report["inputs"]["circuit:inter0"] if not d.startswith("activity:")] == ["P0"]
    assert set(report["explained_by"]["change:P0"].values()) == {"partner-count"}
    code, _, err = run_cli("check-locality", "--dataset", "digits", "--rule", "stbp")
    assert code == 2 and "only --rule bioleaf has a circuit to check" in err


def _peak_mb(rule: str, steps: int) -> float:
    spec = {"rule": rule, "steps": steps, "arch": "64-256-256-10", "batch": 64, "batches": 1, "threads": 1}
    out = subprocess.run([sys.executable, "-m", "bioleaf.tools.bench", "--memory-probe", json.dumps(spec)],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    return json.loads(out.splitlines()[-1])["peak_mb"]


def test_memory_of_learning_does_not_grow_with_T():
    """Fresh processes, peak RSS added by one training batch: BioLeaF at T=20 and T=400 against BPTT,
    whose stored history the same probe sees grow."""
    bioleaf = _peak_mb("bioleaf", 400) - _peak_mb("bioleaf", 20)
    bptt = _peak_mb("bptt", 400) - _peak_mb("bptt", 20)
    assert bptt > 50  # 380 more steps of [64, 256] traces, potentials and currents per layer
    assert bioleaf < 5


def test_rules_are_pure_functions_of_their_arguments():
    """Every rule returns the same result twice and leaves its arguments untouched."""
    g = torch.Generator().manual_seed(0)
    pre, post = torch.rand(4, 3, generator=g), torch.rand(4, 5, generator=g)
    sample = {"pre_sum": pre, "interneuron_sum": pre, "apical_sum": post, "active": (post > 0.5).float(),
              "partner_count": post, "own_predicted_count": post.flip(0), "own_sum": post, "steps": 10,
              "count": post.round(), "free_count": post.flip(0).round(), "threshold": 1.5, "coupling": 0.5,
              "spikes": (post > 0.5).float(), "predicted": (post < 0.3).float(), "error": post, "pre_trace": pre,
              "strength": 0.01, "cap": 10, "drive": post}
    for rule in RULES:
        names = list(inspect.signature(rule).parameters)
        if rule is plasticity.feedback_kolen_pollack:  # pre: the layer above (5 cells), post: own layer
            sample = {**sample, "partner_error": post, "own_sum": pre}
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
        res = present(circuit, cfg.encoder_obj().stream(images, 10, g), targets, batch=8,
                      ctx=Context(10, cfg.neuron, params), learn=Plasticity(W=True))
        return res.updates["W0"]

    before = update()
    assert before.abs().sum() > 0
    circuit.W[1].copy_(torch.randn(4, 16, generator=torch.Generator().manual_seed(4)))
    assert torch.equal(before, update())
