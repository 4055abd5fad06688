"""Write ``tests/golden/presentations.safetensors``: the reference numbers of ``tests/test_golden.py``.

For every circuit configuration the CLI accepts (feedback, interneurons, error reference, nudge,
coupling per layer, depth, a leaky refractory neuron, ``--g-basal``), on the bundled digits:

- one free presentation with every synapse type plastic and one teacher presentation with the
  interneuron synapses and (except with learned feedback, which reads the free phase) ``W`` plastic
  (counts, potentials, basal counts, hidden counts, apical sums, updates, the free copy's output, the
  recorded rasters of the first sample); the free and teacher phases side by side
  (``present_phases``) with every synapse type plastic;
- three training batches of the ``bioleaf`` rule (initial self-predicting phase included), then all
  its synapses and the inference network's output counts on a fresh batch.

Run it only to fix new reference numbers on purpose (``python tests/golden/make_golden.py``): the
golden test exists to show that a change of the code leaves every number bit-identical.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from golden_cases import CASES, capture  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    tensors: dict[str, torch.Tensor] = {}
    for name in CASES:
        for key, value in capture(name).items():
            tensors[f"{name}/{key}"] = value.contiguous()
    save_file(tensors, str(HERE / "presentations.safetensors"))
    (HERE / "cases.json").write_text(json.dumps(sorted(CASES), indent=1) + "\n")
    print(f"wrote {len(tensors)} tensors of {len(CASES)} configurations")


if __name__ == "__main__":
    main()
