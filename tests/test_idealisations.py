"""Every run says which idealisations its learning uses; "local learning only" means the list is empty, which
today only a circuit without a learned free phase (ideal interneurons, fixed feedback) would give, and it copies
its interneurons."""

from __future__ import annotations

import json

import pytest

import bioleaf
from bioleaf.config import TrainConfig
from bioleaf.model.circuit import IDEALISATIONS


@pytest.mark.parametrize("settings, expected", [
    ({"feedback": "random"}, ["replayed-input", "partner-count"]),
    ({"feedback": "learned"}, ["replayed-input", "partner-count"]),
    ({"feedback": "symmetric"}, ["copied-feedback", "replayed-input", "partner-count"]),
    ({"feedback": "learned", "interneurons": "ideal"}, ["copied-interneurons", "replayed-input"]),
    ({"feedback": "random", "interneurons": "ideal"}, ["copied-interneurons"]),
    ({"feedback": "random", "interneurons": "ideal", "error_reference": "free"},
     ["copied-interneurons", "teacher-free-copy"]),
    ({"rule": "stbp"}, ["backprop"]),
    ({"rule": "bptt"}, ["backprop"]),
])
def test_the_configuration_names_its_idealisations(settings, expected):
    cfg = bioleaf.preset(None, dataset="digits", **settings)
    assert cfg.idealisations == expected
    assert set(cfg.idealisations) <= set(IDEALISATIONS) | {"backprop"}
    assert TrainConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg  # derived, not read back


def test_the_equivalence_preset_uses_the_three_of_the_special_circumstance():
    cfg = bioleaf.preset("fashion-mnist", dataset="digits", arch="64-400-400-10")
    assert cfg.idealisations == list(IDEALISATIONS[:3]) == ["copied-feedback", "copied-interneurons",
                                                            "teacher-free-copy"]


def test_config_and_summary_record_them(run_cli, tmp_path):
    out = tmp_path / "run"
    code, _, err = run_cli("train", "--dataset", "digits", "--arch", "64-16-10", "--epochs", "1", "--limit", "200",
                           "--feedback", "random", "--no-progress", "--out", str(out))
    assert code == 0, err
    for name in ("config.json", "summary.json"):
        assert json.loads((out / name).read_text())["idealisations"] == ["replayed-input", "partner-count"]
