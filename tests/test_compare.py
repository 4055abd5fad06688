"""A quick variant of `bioleaf compare` (digits, 1 epoch): every rule, same seeds, one table."""

import csv
import json
import shutil


QUICK_COMPARE = ("--dataset", "digits", "--arch", "64-32-10", "--epochs", "1", "--limit", "300", "--steps", "10",
                 "--threads", "1", "--rules", "bioleaf,stbp,bptt", "--feedbacks", "symmetric,random")
"""Every rule and two feedback modes, one quick epoch on the digits (also run on a GPU: tests/test_cuda.py)."""
VARIANTS = [("bioleaf", "symmetric"), ("bioleaf", "random"), ("stbp", ""), ("bptt", "")]


def _accuracies(rows: list[dict]) -> list[tuple[float, float]]:
    return [(r["test_accuracy_mean"], r["test_accuracy_std"]) for r in rows]


def test_quick_compare_on_digits(run_cli, tmp_path):
    args = ("compare", *QUICK_COMPARE, "--seeds", "0,1", "--out", str(tmp_path), "--json")
    code, out, err = run_cli(*args, "--jobs", "2")
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["rule"], r["feedback"]) for r in rows] == VARIANTS
    for r in rows:
        assert r["seeds"] == 2 and 0.0 <= r["test_accuracy_mean"] <= 1.0 and r["samples_per_second"] > 0
    # the default circuit has learned interneurons and a nudged reference: only its feedback can be copied
    local = "replayed-input + partner-count"
    assert [r["idealisations"] for r in rows] == [f"copied-feedback + {local}", local, "backprop", "backprop"]
    assert f"| bioleaf | random | {local} |" in (tmp_path / "results.md").read_text()
    for name in ("results.csv", "results.md", "learning_curves.png"):
        assert (tmp_path / name).stat().st_size > 0
    with open(tmp_path / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    assert len(list((tmp_path / "runs").iterdir())) == 8
    assert "[bptt seed 1] epoch 1/1" in err  # parallel runs' lines carry the run's name
    # a second command reuses the finished runs and reproduces the table
    code, again, _ = run_cli(*args)
    assert code == 0 and json.loads(again) == rows
    # a command with other settings trains every run again instead of reusing ones made with the old
    code, _, err = run_cli(*args, "--lr", "0.004")
    assert code == 0, err
    assert err.count("was trained with other settings (lr: None -> 0.004)") == 8
    config = json.loads((tmp_path / "runs" / "stbp-seed0" / "config.json").read_text())
    assert config["lr"] == 0.004 and config["rule"] == "stbp" and config["seed"] == 0
    code, again, err = run_cli(*args)  # and back: the first settings, trained again, same accuracies
    assert code == 0 and err.count("training it again") == 8
    assert _accuracies(json.loads(again)) == _accuracies(rows)
    # a run trained alone (jobs 1) gives the same result as when it ran beside others
    summary = tmp_path / "runs" / "bioleaf-random-seed1" / "summary.json"
    before = json.loads(summary.read_text())["test_accuracy"]
    shutil.rmtree(summary.parent)
    code, _, err = run_cli(*args)
    assert code == 0, err
    assert json.loads(summary.read_text())["test_accuracy"] == before
    # a run made before a field existed (its config.json lacks the key) is reused: the field's default
    config_path = tmp_path / "runs" / "stbp-seed0" / "config.json"
    config = json.loads(config_path.read_text())
    del config["circuit"]["g_apical_layers"]
    config_path.write_text(json.dumps(config))
    code, again, err = run_cli(*args)
    assert code == 0 and "training it again" not in err, err
    assert _accuracies(json.loads(again)) == _accuracies(rows)


def test_compare_rejects_bad_lists(run_cli, tmp_path):
    for flag, value, expected in (("--rules", "bioleaf,nope", "--rules"), ("--seeds", "0,0", "--seeds"),
                                  ("--feedbacks", "mirror", "--feedbacks")):
        code, _, err = run_cli("compare", "--dataset", "digits", flag, value, "--out", str(tmp_path))
        assert code == 2 and expected in err and len(err.strip().splitlines()) == 1


def test_compare_rejects_bad_jobs(run_cli, tmp_path):
    code, _, err = run_cli("compare", "--dataset", "digits", "--jobs", "0", "--out", str(tmp_path))
    assert code == 2 and err.strip().endswith("error: --jobs: expected an integer in 1..256, got 0")
