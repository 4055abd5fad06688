"""Golden numbers: every circuit configuration's presentation and first training batches, bit for bit.

``tests/golden/presentations.safetensors`` holds, for each configuration of ``tests/golden/golden_cases.py``
(every feedback mode, interneuron mode, error reference, nudge, per-layer coupling, depth 0-3 hidden
layers, a leaky refractory neuron, ``--g-basal``, the latency code), the counts, potentials, apical
sums, updates and recorded rasters of a free and a teacher presentation, the synapses after three
training batches and the inference network's output. A change of the code that moves any of them
fails here; new reference numbers are written on purpose by ``tests/golden/make_golden.py``. On the
machine that wrote them they are bit-identical; another CPU may round float32 sums differently (its
vector units add in another order), so the comparison allows a relative 1e-5 of each tensor's largest
value, orders of magnitude below any change of a rule or a schedule (those move spike counts).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN))
from golden_cases import CASES, capture  # noqa: E402

REFERENCE = load_file(str(GOLDEN / "presentations.safetensors"))


def test_every_case_has_reference_numbers():
    assert sorted(CASES) == json.loads((GOLDEN / "cases.json").read_text())


def _same(got: torch.Tensor, expected: torch.Tensor) -> bool:
    """Equal up to float32 rounding: within 1e-5 of the largest magnitude in ``expected``."""
    if got.shape != expected.shape:
        return False
    if expected.numel() == 0 or torch.equal(got, expected):
        return True
    diff = (got.double() - expected.double()).abs().max()
    return bool(diff <= 1e-5 * expected.double().abs().max() + 1e-7)


@pytest.mark.parametrize("name", sorted(CASES))
def test_presentation_and_training_are_bit_identical(name):
    got = capture(name)
    expected = {k.split("/", 1)[1]: v for k, v in REFERENCE.items() if k.split("/", 1)[0] == name}
    assert sorted(got) == sorted(expected)
    moved = [key for key, value in got.items() if not _same(value, expected[key])]
    assert not moved, f"{name}: {len(moved)} of {len(got)} tensors changed, e.g. {moved[:4]}"
    updates = [v for k, v in got.items() if k.startswith("teach/update/")]
    assert updates and any(bool(u.abs().sum() > 0) for u in updates)  # the reference is not all zeros
