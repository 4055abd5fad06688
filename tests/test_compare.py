"""A quick variant of `bioleaf compare` (digits, 1 epoch): every rule, same seeds, one table."""

import csv
import json


def test_quick_compare_on_digits(run_cli, tmp_path):
    args = ("compare", "--dataset", "digits", "--arch", "64-32-10", "--epochs", "1", "--limit", "300",
            "--steps", "10", "--threads", "1", "--rules", "bioleaf,stbp,bptt", "--feedbacks", "symmetric,random",
            "--seeds", "0,1", "--out", str(tmp_path), "--json")
    code, out, err = run_cli(*args)
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["rule"], r["feedback"]) for r in rows] == [("bioleaf", "symmetric"), ("bioleaf", "random"),
                                                         ("stbp", ""), ("bptt", "")]
    for r in rows:
        assert r["seeds"] == 2 and 0.0 <= r["test_accuracy_mean"] <= 1.0 and r["samples_per_second"] > 0
    for name in ("results.csv", "results.md", "learning_curves.png"):
        assert (tmp_path / name).stat().st_size > 0
    with open(tmp_path / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    assert len(list((tmp_path / "runs").iterdir())) == 8
    # a second identical command reuses the finished runs and reproduces the table
    code, again, _ = run_cli(*args)
    assert code == 0 and json.loads(again) == rows


def test_compare_rejects_bad_lists(run_cli, tmp_path):
    for flag, value, expected in (("--rules", "bioleaf,nope", "--rules"), ("--seeds", "0,0", "--seeds"),
                                  ("--feedbacks", "mirror", "--feedbacks")):
        code, _, err = run_cli("compare", "--dataset", "digits", flag, value, "--out", str(tmp_path))
        assert code == 2 and expected in err and len(err.strip().splitlines()) == 1
