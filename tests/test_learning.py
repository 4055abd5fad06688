"""Every rule learns the bundled digits well above chance (0.10) with its defaults."""

import json

import pytest

RUNS = {"stbp": [], "bptt": [], "bioleaf-symmetric": ["--feedback", "symmetric"],
        "bioleaf-random": ["--feedback", "random"]}


@pytest.mark.parametrize("name", list(RUNS))
def test_digits_reaches_90_percent_in_5_epochs(name, run_cli, tmp_path):
    rule = name.split("-")[0]
    code, out, err = run_cli("train", "--rule", rule, "--dataset", "digits", "--arch", "64-128-10",
                             "--epochs", "5", "--no-progress", "--json", "--out", str(tmp_path), *RUNS[name])
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["test_accuracy"] >= 0.90, summary
    for name in ("config.json", "metrics.jsonl", "summary.json", "model.safetensors"):
        assert (tmp_path / name).is_file()
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 5
