"""bench/activity.py (the hidden-layer activity diagnostic) on a small trained digits run."""

import json

from bioleaf import cli


def test_activity_of_a_trained_run_is_consistent_with_its_counts(tmp_path, capsys, bench_script):
    run = tmp_path / "run"
    assert cli.main(["train", "--dataset", "digits", "--arch", "64-32-16-10", "--epochs", "1", "--limit", "300",
                     "--threads", "1", "--no-progress", "--out", str(run)]) == 0
    capsys.readouterr()
    activity = bench_script("activity")
    assert activity.main([str(run), "--images", "50", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 50 and len(report["hidden"]) == 2
    for layer, width in zip(report["hidden"], (32, 16)):
        assert 0 <= layer["never_firing"] <= 1 and 0 <= layer["near_cap"] <= 1
        assert 0 <= layer["active_per_image"] <= width
        assert layer["active_per_image"] == 0 or 1 <= layer["active_mean_count"] <= report["steps"]
    # every cell active at some image cannot be never-firing: at least one active cell => never_firing < 1
    assert all(layer["never_firing"] < 1 for layer in report["hidden"] if layer["active_per_image"] > 0)


def test_a_missing_run_is_one_line_error(tmp_path, capsys, bench_script):
    assert bench_script("activity").main([str(tmp_path / "nothing")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "nothing" in err and "\n" not in err
