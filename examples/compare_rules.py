"""The same network, data order and seed trained by BioLeaF (fully local and idealised) and by its two
backprop twins, ST-BP and BPTT, on the bundled digits.

    python examples/compare_rules.py
    BIOLEAF_QUICK=1 python examples/compare_rules.py
"""

import os

import bioleaf
from bioleaf.data import load_dataset

quick = os.environ.get("BIOLEAF_QUICK") == "1"
data = load_dataset("digits", limit=500 if quick else None)
common = dict(arch="64-64-10", epochs=1 if quick else 5, batch_size=32)
variants = {
    "bioleaf, fully local (learned interneurons, random feedback)": dict(rule="bioleaf", feedback="random"),
    "bioleaf, equivalence configuration (copied feedback and interneurons)": dict(
        rule="bioleaf", feedback="symmetric", interneurons="ideal", error_reference="free"),
    "stbp (spike-train-level backprop)": dict(rule="stbp"),
    "bptt (surrogate-gradient backprop through time)": dict(rule="bptt"),
}
for name, settings in variants.items():
    run = bioleaf.fit(bioleaf.preset("digits", **common, **settings), data=data)
    print(f"{run.test_accuracy:7.2%}  {run.summary['samples_per_second']:7.0f} samples/s  {name}")
