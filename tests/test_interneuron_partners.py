"""Interneurons that mirror each layer's feedback source (``--interneuron-partners feedback-source``): with direct
feedback the top hidden layer's interneurons, partners of the output cells, inhibit every hidden layer's apical
dendrite; with their synapses at the cancelling values every free apical potential is exactly zero; the contract
lets each apical dendrite read the interneurons that reach it and no others."""

from __future__ import annotations

import json

import pytest
import torch

import bioleaf
from bioleaf.model.circuit import Plasticity, build_circuit, present_periods, presentation
from bioleaf.tools.locality.contract import Wiring, allowed

DIRECT = dict(arch="64-32-24-10", feedback="direct", schedule="one-presentation", free_steps=20, g_apical_layers="1",
              interneuron_partners="feedback-source")
LOCALITY = ("check-locality", "--preset", "digits", "--arch", "64-48-48-10", "--feedback", "direct", "--steps", "20",
            "--target-high", "15", "--samples", "8", "--schedule", "one-presentation", "--free-steps", "20",
            "--interneuron-partners", "feedback-source")


def _circuit(cfg, seed: int = 0):
    return build_circuit(cfg.sizes(64, 10), cfg.circuit, torch.Generator().manual_seed(seed), cfg.init_scale)


def _stream(cfg, images, steps):
    return cfg.encoder_obj().stream(images, steps, torch.Generator().manual_seed(1))


def test_with_direct_feedback_only_the_top_layer_has_interneurons_and_every_q_reads_them():
    circuit = _circuit(bioleaf.preset("digits", **DIRECT))
    assert [tuple(p.shape) for p in circuit.P] == [(0, 32), (10, 24)]  # the top's mirror the 10 output cells
    assert [tuple(q.shape) for q in circuit.Q] == [(32, 10), (24, 10)] == [tuple(b.shape) for b in circuit.B]
    above = _circuit(bioleaf.preset("digits", **{**DIRECT, "interneuron_partners": "above"}))
    assert [tuple(p.shape) for p in above.P] == [(24, 32), (10, 24)] and tuple(above.Q[0].shape) == (32, 24)


@pytest.mark.parametrize("feedback", ["random", "learned"])
def test_with_feedback_from_the_layer_above_both_partners_are_the_same_circuit(digits, feedback):
    runs = []
    for partners in ("above", "feedback-source"):
        cfg = bioleaf.preset("digits", arch="64-32-24-10", feedback=feedback, interneuron_partners=partners,
                             epochs=1, limit=64, batch_size=16)
        runs.append(bioleaf.fit(cfg, digits))
    first, second = (run.model.rule.synapses() for run in runs)
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_interneurons_mirroring_the_output_cells_cancel_every_layer_s_top_down_input(digits):
    """P of the top layer = W of the output cells, Q = -B: with no teacher the top interneurons fire the output
    cells' spikes step by step, so every hidden layer's apical potential is exactly zero; with the learned Q at
    zero it is not."""
    cfg = bioleaf.preset("digits", **DIRECT)
    circuit = _circuit(cfg)
    circuit.P[1].copy_(circuit.W[2])
    for q, b in zip(circuit.Q, circuit.B):
        q.copy_(-b)
    run = dict(batch=16, lateral=Plasticity(W=False, P=True, Q=True), learn=Plasticity(W=False))
    free, _ = present_periods(circuit, _stream(cfg, digits.train_x[:16], 2 * cfg.steps), None, cfg.context, **run)
    assert free.counts.sum() > 0
    assert free.apical_residual == [0.0, 0.0]
    assert torch.count_nonzero(free.updates["P1"]) == 0 and "P0" not in free.updates
    circuit.Q[0].zero_()
    free, _ = present_periods(circuit, _stream(cfg, digits.train_x[:16], 2 * cfg.steps), None, cfg.context, **run)
    assert free.apical_residual[0] > 0 == free.apical_residual[1]


def test_the_contract_lets_an_apical_dendrite_read_only_the_interneurons_that_reach_it():
    shared, own = Wiring(4, [3, 3], [1, 1]), Wiring(4, [3, 3], [0, 1])
    assert allowed("circuit:pyr0", "activity:circuit:inter1", shared)
    assert not allowed("circuit:pyr0", "activity:circuit:inter0", shared)
    assert allowed("circuit:pyr0", "activity:circuit:inter0", own)
    assert not allowed("circuit:pyr0", "activity:circuit:inter1", own)
    assert allowed("change:Q0", "activity:circuit:inter1", shared) and not allowed("change:Q0", "activity:circuit:inter1", own)


def test_check_locality_passes_interneurons_mirroring_the_output_cells_with_no_label(run_cli):
    code, out, err = run_cli(*LOCALITY, "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["idealisations"] == [], err
    assert "activity:circuit:inter1" in report["changes"]["Q0"]  # the first layer's Q reads the top interneurons


def test_a_model_without_interneurons_below_the_top_layer_saves_and_loads(digits, tmp_path):
    cfg = bioleaf.preset("digits", **DIRECT, epochs=1, limit=64, batch_size=16)
    model = bioleaf.fit(cfg, digits, tmp_path / "run").model
    again = bioleaf.load(tmp_path / "run")
    assert again.config.circuit.interneuron_partners == "feedback-source"
    assert torch.equal(again.predict(digits.test_x[:32], seed=3), model.predict(digits.test_x[:32], seed=3))


def test_an_unknown_partner_is_a_one_line_error(run_cli, tmp_path):
    code, _, err = run_cli("train", "--preset", "digits", "--interneuron-partners", "below", "--epochs", "1",
                           "--out", str(tmp_path / "r"))
    assert code != 0 and err.count("\n") == 1 and "--interneuron-partners: expected one of above, feedback-source" in err
    assert not (tmp_path / "r").exists()


def test_the_one_presentation_preset_is_the_direct_preset_with_the_published_flags():
    flags = dict(schedule="one-presentation", free_steps=30, g_apical_layers="1", w_rule="stdp", stdp_tau=10.0,
                 homeostasis=0.001, interneuron_partners="feedback-source")
    one = bioleaf.preset("fashion-mnist-one-presentation")
    assert one == bioleaf.preset("fashion-mnist-local-direct", **flags) and one.idealisations == []


def test_a_q_change_reading_the_layer_above_the_one_it_inhibits_is_caught(monkeypatch, run_cli):
    """With interneurons mirroring the output cells, the layer above no longer reaches the first layer's apical
    dendrite: a ``Q0`` change that reads its spikes is outside the contract."""
    original = presentation.cancellation_updates

    def reads_the_layer_above(spec, sums, steps):
        updates = original(spec, sums, steps)
        above = sums.X[2].double()  # the traces of the second hidden layer's spikes, per sample
        updates["Q0"] = updates["Q0"] + 1e-3 * above.T @ torch.ones(above.shape[0], 10, dtype=torch.float64)
        return updates
    monkeypatch.setattr(presentation, "cancellation_updates", reads_the_layer_above)
    code, _, err = run_cli("check-locality", "--preset", "digits", "--arch", "64-48-48-10", "--feedback", "direct",
                           "--steps", "20", "--target-high", "15", "--samples", "8",
                           "--interneuron-partners", "feedback-source")  # two copies: Q learns from the free copy's sums
    assert code == 1 and err.count("\n") == 1, err
    assert "the change of Q0 depends on activity:free:pyr1" in err, err
