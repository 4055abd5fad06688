"""Shared fixtures: small real data (the bundled digits) and a CLI runner."""

from __future__ import annotations

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


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.set_num_threads(1)
    yield
