"""The Python API: configure, train in memory, predict, simulate, reload; errors as one exception type."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import bioleaf

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def run():
    return bioleaf.fit(bioleaf.preset("digits", epochs=2, arch="64-32-10"))


def test_fit_trains_in_memory_without_files_or_global_state(tmp_path, monkeypatch, digits):
    monkeypatch.chdir(tmp_path)
    handler, threads = signal.getsignal(signal.SIGINT), torch.get_num_threads()
    torch.set_num_threads(2)
    state = torch.random.get_rng_state()
    run = bioleaf.fit(bioleaf.preset("digits", epochs=1, arch="64-16-10"), data=digits)
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGINT) is handler and torch.get_num_threads() == 2
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.set_num_threads(threads)
    assert len(run.history) == 1 and run.test_accuracy == run.history[-1]["test_accuracy"]


def test_a_trained_model_predicts_what_its_run_measured(run, digits):
    assert run.test_accuracy > 0.8
    assert run.model.accuracy(digits.test_x, digits.test_y) == pytest.approx(run.test_accuracy)
    classes = run.model.predict(digits.test_x[:7].numpy())  # numpy arrays work too
    assert classes.shape == (7,) and classes.dtype == torch.long


def test_simulate_records_spikes_and_apical_potentials(run, digits):
    sim = run.model.simulate(digits.test_x[:3], record=True, labels=digits.test_y[:3])
    T = run.config.steps
    assert sim.record["input"].shape == (T, 3, 64) and sim.record["pyr1"].shape == (T, 3, 10)
    assert sim.record["apical0"].shape == (T, 3, 32) and sim.record["inter0"].shape == (T, 3, 10)
    assert torch.equal(sim.record["pyr1"].sum(0), sim.counts)
    twin = bioleaf.fit(bioleaf.preset("digits", rule="stbp", epochs=1, arch="64-16-10", limit=200))
    rec = twin.model.simulate(digits.test_x[:2], record=True).record
    assert set(rec) == {"input", "pyr0", "pyr1"}


def test_fit_with_out_writes_a_run_that_load_and_the_cli_read(tmp_path, digits, run_cli):
    run = bioleaf.fit(bioleaf.preset("digits", epochs=1, arch="64-16-10"), data=digits, out=tmp_path / "r")
    model = bioleaf.load(tmp_path / "r")
    assert model.accuracy(digits.test_x, digits.test_y) == pytest.approx(run.test_accuracy)
    code, out, _ = run_cli("eval", str(tmp_path / "r"))
    assert code == 0 and f"{run.test_accuracy:.2%}" in out
    with pytest.raises(bioleaf.UsageError, match="already holds a run"):
        bioleaf.fit(bioleaf.preset("digits", epochs=1, arch="64-16-10"), data=digits, out=tmp_path / "r")


def test_load_restores_the_learned_circuit(tmp_path, digits):
    cfg = bioleaf.preset("digits", epochs=1, arch="64-16-12-10", feedback="learned", limit=300)
    run = bioleaf.fit(cfg, data=digits, out=tmp_path / "r")
    model = bioleaf.load(tmp_path / "r")
    for name, t in run.model.rule.synapses().items():
        assert torch.equal(model.rule.synapses()[name], t), name
    assert run.model.rule.circuit.P[0].abs().sum() > 0  # learned, not the initial zeros


@pytest.mark.parametrize("call, message", [
    (lambda: bioleaf.preset("nope"), "--preset: expected one of"),
    (lambda: bioleaf.preset("digits", epoks=2), "unknown setting 'epoks'"),
    (lambda: bioleaf.preset("digits", feedback="mirror"), "--feedback: expected one of"),
    (lambda: bioleaf.fit({"epochs": 1}), "fit: expected a configuration"),
])
def test_bad_arguments_raise_one_exception_type(call, message):
    with pytest.raises(bioleaf.BioleafError, match=message):
        call()


def test_bad_images_are_refused(run):
    with pytest.raises(bioleaf.UsageError, match=r"images: expected a \[batch, 64\]"):
        run.model.predict(torch.zeros(3, 65))
    with pytest.raises(bioleaf.UsageError, match="intensities in"):
        run.model.predict(torch.full((2, 64), 255.0))


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_examples_run(example, tmp_path):
    env = {**os.environ, "BIOLEAF_QUICK": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(EXAMPLES / example), str(tmp_path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "%" in proc.stdout


def test_the_readme_quickstart_runs(tmp_path, monkeypatch):
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["run"].test_accuracy > 0.5 and scope["classes"].shape == (8,)
    assert list(tmp_path.iterdir()) == []  # nothing written
