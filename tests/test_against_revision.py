"""bench/against_revision.py: the working tree's trainers against a git revision's, in one process."""

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)


pytestmark = pytest.mark.skipif(_git("rev-parse", "HEAD").returncode != 0, reason="not a git checkout")


def test_the_committed_package_trains_as_the_working_tree(capsys, bench_script):
    script = bench_script("against_revision")
    assert script.main(["--rev", "HEAD", "--trainers", "bioleaf,bptt", "--arch", "64-16-10", "--batch", "8",
                        "--steps", "5", "--rounds", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["bioleaf", "bptt"]
    assert all("ratio" in line for line in lines)
    if _git("diff", "--quiet", "HEAD", "--", "src").returncode == 0:  # source unchanged: the same bits
        assert all(line.endswith("bit-identical weights: True") for line in lines)


def test_an_unknown_revision_is_one_line_error(capsys, bench_script):
    assert bench_script("against_revision").main(["--rev", "no-such-revision"]) == 1
    err = capsys.readouterr().err.strip()
    assert "--rev no-such-revision" in err and "\n" not in err
