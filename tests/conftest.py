"""Shared fixtures: small real data (the bundled digits), a CLI runner and the bench scripts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from bioleaf.cli import main
from bioleaf.data import load_dataset


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture
def run_cli(capsys):
    """Run ``bioleaf ARGS...`` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def bench_script():
    """Import ``bench/NAME.py`` (the bench folder is not a package): ``bench_script("activity")``."""

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.set_num_threads(1)
    yield
