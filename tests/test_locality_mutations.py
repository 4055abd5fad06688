"""check-locality proven by the violations it must catch: one deliberately injected non-local dependency per
class of the contract (a synapse, another population's activity, a population's potential, the labels, the
other samples of the batch, state carried to the next step, a tensor that is not a registered synapse), each
making ``bioleaf check-locality`` exit 1 with one line that names the synapse and what it read; the unmutated
`fashion-mnist-local` preset passes."""

from __future__ import annotations

import pytest
import torch

from bioleaf.model import plasticity
from bioleaf.model.circuit import presentation
from bioleaf.rules.bioleaf import BioleafRule

ARGS = ("check-locality", "--preset", "fashion-mnist-local", "--dataset", "digits", "--arch", "64-48-48-10",
        "--steps", "20", "--target-high", "15", "--samples", "8")
SEEN: dict[str, object] = {}  # what the wrapped rule saw last: itself and its labels


def _outer(error: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
    return error.double().T @ pre.double()


@pytest.fixture
def mutate(monkeypatch):
    """Install a violation: ``extra(circuit, run, updates, free_phase)`` adds to the updates of a teacher phase."""
    original_updates, original_batch = presentation.plastic_updates, BioleafRule.train_batch

    def train_batch(self, images, labels, generator):
        SEEN.update(rule=self, labels=labels)
        return original_batch(self, images, labels, generator)

    def install(extra):
        def plastic_updates(circuit, run, errors, learn, taught, free_phase, ctx):
            updates = original_updates(circuit, run, errors, learn, taught, free_phase, ctx)
            if taught and "W0" in updates:
                extra(circuit, run, updates, free_phase)
            return updates
        monkeypatch.setattr(presentation, "plastic_updates", plastic_updates)
        monkeypatch.setattr(BioleafRule, "train_batch", train_batch)
    return install


def _fails_naming(run_cli, *named: str) -> str:
    code, out, err = run_cli(*ARGS)
    assert code == 1, (code, out, err)
    assert err.count("\n") == 1 and err.startswith("bioleaf check-locality: error: the change of "), err
    assert all(n in err for n in named), err
    return err


def test_the_unmutated_fully_local_preset_passes(run_cli):
    code, out, err = run_cli(*ARGS)
    assert code == 0, err


def test_feedback_reading_the_weights_above_is_caught(mutate, run_cli):
    def extra(circuit, run, updates, free_phase):
        updates["B0"] = updates["B0"] + 1e-2 * circuit.W[1].T.double()
    mutate(extra)
    _fails_naming(run_cli, "B0", "W1")


def test_a_hidden_update_reading_the_output_counts_is_caught(mutate, run_cli):
    readout = torch.randn(48, 10, generator=torch.Generator().manual_seed(0))  # not a synapse of the circuit

    def extra(circuit, run, updates, free_phase):
        output_error = run.main.state.pyr[-1].count - 5.0
        updates["W0"] = updates["W0"] + 1e-3 * _outer(output_error @ readout.T, run.main.sums.X[0])
    mutate(extra)
    _fails_naming(run_cli, "W0", "activity:teacher:pyr2")


def test_a_hidden_update_reading_the_output_potentials_is_caught(mutate, run_cli):
    def extra(circuit, run, updates, free_phase):
        v = run.main.state.pyr[-1].v
        updates["W0"] = updates["W0"] + 1e-3 * _outer(v.sum(1, keepdim=True).expand(-1, 48), run.main.sums.X[0])
    mutate(extra)
    _fails_naming(run_cli, "W0", "activity:teacher:pyr2")


def test_a_hidden_update_reading_the_labels_is_caught(mutate, run_cli):
    def extra(circuit, run, updates, free_phase):
        labels = SEEN["labels"].float().view(-1, 1).expand(-1, 48)
        updates["W0"] = updates["W0"] + 1e-3 * _outer(labels, run.main.sums.X[0][-labels.shape[0]:])
    mutate(extra)
    _fails_naming(run_cli, "W0", "labels")


def test_errors_normalised_across_the_batch_are_caught(monkeypatch, run_cli):
    original = plasticity.basal_error_integrated

    def normalised(pre_sum, apical_sum, active, steps):
        return original(pre_sum, apical_sum / (apical_sum.abs().mean(0, keepdim=True) + 1e-3), active, steps)
    monkeypatch.setattr(plasticity, "basal_error_integrated", normalised)
    _fails_naming(run_cli, "other samples")


def test_a_global_update_norm_carried_to_the_next_step_is_caught(monkeypatch, run_cli):
    original = BioleafRule._apply

    def apply(self, updates, batch):
        kept = self.optimizer.state.get(self.circuit.W[0], {}).get("global_norm")
        scale = 1.0 if kept is None else float(kept)
        original(self, {k: v / scale for k, v in updates.items()}, batch)
        norm = sum(float(v.norm()) for v in updates.values()) + 1.0
        state = self.optimizer.state.get(self.circuit.W[0], {})
        if "step" in state:  # W0 has optimiser state: keep the norm beside it for the next step
            state["global_norm"] = torch.tensor(norm, dtype=torch.float64)
    monkeypatch.setattr(BioleafRule, "_apply", apply)
    _fails_naming(run_cli, "state:W0.global_norm")


def test_an_unregistered_matrix_held_by_the_rule_is_caught(mutate, monkeypatch, run_cli):
    original_init = BioleafRule.__init__

    def init(self, *args):
        original_init(self, *args)
        self.readout = torch.randn(48, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    monkeypatch.setattr(BioleafRule, "__init__", init)

    def extra(circuit, run, updates, free_phase):
        x = run.main.sums.X[0].double()
        updates["W0"] = updates["W0"] + 1e-3 * _outer(x @ SEEN["rule"].readout.T, x)
    mutate(extra)
    _fails_naming(run_cli, "W0", "tensor:readout")


def test_a_hidden_update_reading_the_free_phase_of_the_output_is_caught(mutate, run_cli):
    """The replayed input excuses a cell reading its own free phase, not the free phase of cells it has no synapse
    from."""
    def extra(circuit, run, updates, free_phase):
        output_free = free_phase.counts[-1].sum(1, keepdim=True).expand(-1, 48)
        updates["W0"] = updates["W0"] + 1e-3 * _outer(output_free, run.main.sums.X[0][-output_free.shape[0]:])
    mutate(extra)
    _fails_naming(run_cli, "W0", "activity:free:pyr2")


STDP_ARGS = ("check-locality", "--dataset", "digits", "--arch", "64-48-48-10", "--steps", "20", "--target-high", "15",
             "--samples", "8", "--w-rule", "stdp", "--feedback", "random", "--g-apical-layers", "1")


@pytest.mark.parametrize("flags", [(), ("--tau-stdp", "10"), ("--schedule", "one-presentation", "--free-steps", "20")])
def test_the_spike_timing_rule_reading_the_output_cells_is_caught(monkeypatch, run_cli, flags):
    """The spike-timing rule of the first hidden layer also reading the output cells' spikes (no synapse onto it
    comes from them: its feedback comes from the layer above), on the PSP trace, on a plasticity trace and in one
    presentation."""
    from bioleaf.model.circuit.eligibility import SpikeTimingSums

    args = STDP_ARGS + flags
    code, out, err = run_cli(*args)
    assert code == 0, err  # unmutated, the rule passes
    original = SpikeTimingSums.add

    def add(self, sig):
        if sig.spikes[0] is not None:
            sig.spikes[0] = sig.spikes[0] + 0.5 * sig.spikes[-1].sum(1, keepdim=True)  # what W0's eligibility reads
        original(self, sig)

    monkeypatch.setattr(SpikeTimingSums, "add", add)
    code, out, err = run_cli(*args)
    assert code == 1, (code, out, err)
    assert err.count("\n") == 1 and "W0" in err and "pyr2" in err, err


def test_a_homeostatic_drive_reading_the_output_counts_is_caught(monkeypatch, run_cli):
    """Homeostasis of the first hidden layer also reading how many spikes the output cells fired (its own count is
    what it may read)."""
    args = ARGS + ("--homeostasis", "0.01")
    code, out, err = run_cli(*args)
    assert code == 0, err  # unmutated, the rule passes
    original = presentation.homeostatic_drives

    def drives(gates, ctx):
        signals = original(gates, ctx)
        signals[0] = signals[0] + 0.01 * gates[-1].count.sum(1, keepdim=True)
        return signals

    monkeypatch.setattr(presentation, "homeostatic_drives", drives)
    code, out, err = run_cli(*args)
    assert code == 1, (code, out, err)
    assert err.count("\n") == 1 and "W0" in err and "activity:teacher:pyr2" in err, err
