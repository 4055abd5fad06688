"""
BioLeaF beside its backprop twins
=================================

The same network (64-128-64-10), data order and seed trained by the BioLeaF microcircuit, fully
local and idealised, and by its two backprop-trained twins: spike-train-level backprop (ST-BP) and
surrogate-gradient backprop through time (BPTT). The learning curves come first, then the angle
between the learned top-down feedback and the transposed bottom-up weights it never reads.

The circuits without copied weights run their free phase and their teacher phase side by side on the same input
spikes; the equivalence configuration copies its feedback and its interneurons from the layer above
and reads its errors against a teacher-free copy of the network.

.. code-block:: bash

    python examples/compare_rules.py [OUT_DIR]     # the digits preset's 5 epochs
    BIOLEAF_QUICK=1 python examples/compare_rules.py   # 3 epochs on the first 1000 training samples
"""

import os
import sys
from pathlib import Path

import matplotlib.pyplot as plt

import bioleaf
from bioleaf.data import load_dataset

quick = os.environ.get("BIOLEAF_QUICK") == "1"
out = Path(sys.argv[1]) if len(sys.argv) > 1 else None

# %%
# Train every variant
# -------------------
# Each variant starts from the same seed and sees the same batches; ``cfg.idealisations`` names what a
# BioLeaF configuration copies or duplicates beyond the locality contract.

data = load_dataset("digits", limit=1000 if quick else None)
common = dict(arch="64-128-64-10", epochs=3 if quick else 5)
variants = {
    "bioleaf, learned feedback": dict(rule="bioleaf", feedback="learned"),
    "bioleaf, fixed random feedback": dict(rule="bioleaf", feedback="random"),
    "bioleaf, equivalence configuration": dict(rule="bioleaf", feedback="symmetric", interneurons="ideal",
                                               error_reference="free"),
    "stbp": dict(rule="stbp"),
    "bptt": dict(rule="bptt"),
}
runs = {}
for name, settings in variants.items():
    cfg = bioleaf.preset("digits", **common, **settings)
    runs[name] = bioleaf.fit(cfg, data=data)
    print(f"{runs[name].test_accuracy:7.2%}  {name} (idealisations: {', '.join(cfg.idealisations) or 'none labelled'})")

# %%
# Learning curves
# ---------------

fig_curves, ax = plt.subplots(figsize=(6, 3.5))
for name, run in runs.items():
    epochs = [row["epoch"] for row in run.history]
    ax.plot(epochs, [100 * row["test_accuracy"] for row in run.history], marker="o", label=name)
ax.set(xlabel="epoch", ylabel="test accuracy (%)", xticks=epochs)
ax.legend(fontsize=7)
fig_curves.tight_layout()

# %%
# The feedback's alignment
# ------------------------
# Learned feedback receives the same increments as the bottom-up weights of the layer above, so the
# angle between ``B_l`` and ``W_{l+1}^T`` falls as training goes on; fixed random feedback stays where
# it started. ``feedback_angle_deg`` is logged every epoch.

fig_angles, ax = plt.subplots(figsize=(6, 3.5))
for i, name in enumerate(["bioleaf, learned feedback", "bioleaf, fixed random feedback"]):
    history = runs[name].history
    epochs = [row["epoch"] for row in history]
    for layer, style in enumerate(["-", "--"]):
        ax.plot(epochs, [row["feedback_angle_deg"][layer] for row in history], style, marker="o", color=f"C{i}",
                label=f"{name.split(', ')[1]}, B{layer}")
ax.set(xlabel="epoch", ylabel=r"angle of $B_l$ to $W_{l+1}^\top$ (degrees)", ylim=(0, 90), xticks=epochs)
ax.legend(fontsize=7)
fig_angles.tight_layout()

# %%
# Run as a script, the example writes its figures to ``OUT_DIR`` when one is given and shows them
# otherwise.

if out is not None:
    out.mkdir(parents=True, exist_ok=True)
    fig_curves.savefig(out / "learning_curves.png", dpi=100)
    fig_angles.savefig(out / "feedback_alignment.png", dpi=100)
    print("figures in", out)
else:
    plt.show()
