"""bench/mixed_updates.py (the layer-swap diagnostic): with every layer's update taken from ST-BP it
must be the ``stbp`` rule run, batch for batch; with only the first layer's it is not."""

import json

import pytest

from bioleaf import cli

FLAGS = ["--dataset", "digits", "--arch", "64-24-16-10", "--interneurons", "ideal", "--error-reference", "free",
         "--epochs", "1", "--batch-size", "32", "--target-high", "15", "--g-apical", "1", "--threads", "1",
         "--limit", "400"]


def test_every_layer_from_stbp_is_the_stbp_run_and_one_layer_is_not(tmp_path, capsys, bench_script):
    mixed = bench_script("mixed_updates")
    assert mixed.main(["--stbp-layers", "0,1,2", "--out", str(tmp_path / "all"), "--"] + FLAGS) == 0
    assert mixed.main(["--stbp-layers", "0", "--out", str(tmp_path / "first"), "--"] + FLAGS) == 0
    assert cli.main(["train", "--rule", "stbp", "--no-progress", "--out", str(tmp_path / "stbp")] + FLAGS) == 0
    capsys.readouterr()

    def accuracies(run):
        return [row["test_accuracy"] for row in map(json.loads, (tmp_path / run / "metrics.jsonl").read_text().splitlines())
                if "test_accuracy" in row]

    assert accuracies("all") == accuracies("stbp")
    assert accuracies("first") != accuracies("stbp")


def test_a_layer_outside_the_network_is_refused(tmp_path, bench_script):
    with pytest.raises(SystemExit) as e:
        bench_script("mixed_updates").main(["--stbp-layers", "3", "--out", str(tmp_path / "x"), "--"] + FLAGS)
    assert e.value.code == 2
