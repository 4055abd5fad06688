"""
Look inside the microcircuit
============================

Train the circuit without copied weights (learned interneurons, feedback learned by Kolen-Pollack increments)
on the bundled 8x8 digits, then look at one presentation: the spikes of every population, the apical
potentials of hidden cells without and with the teacher, and how close each layer's local update
comes to the gradient of spike-train-level backprop (ST-BP).

The circuit without copied weights runs its free phase and its teacher phase side by side on the same input
spikes; no weight is copied and no teacher-free shadow network runs.

.. code-block:: bash

    python examples/inspect_circuit.py [OUT_DIR]     # with OUT_DIR: PNG files there instead of windows
    BIOLEAF_QUICK=1 python examples/inspect_circuit.py /tmp/figs   # 2 epochs instead of the preset's 5
"""

import os
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import bioleaf
from bioleaf.data import load_dataset
from bioleaf.tools.equivalence import agreement, spiking_updates

quick = os.environ.get("BIOLEAF_QUICK") == "1"
# sphinx_gallery_thumbnail_number = 2
out = Path(sys.argv[1]) if len(sys.argv) > 1 else None

# %%
# Train
# -----
# Two hidden layers, so that the lower one receives its error through the upper one's spikes.

cfg = bioleaf.preset("digits", arch="64-128-64-10", feedback="learned", interneurons="learned",
                     epochs=2 if quick else 5)
run = bioleaf.fit(cfg)
print(f"test accuracy {run.test_accuracy:.2%}; idealisations: {cfg.idealisations or 'none labelled'}")
digits = load_dataset("digits")
x, y = digits.test_x[:1], digits.test_y[:1]

# %%
# Spike rasters
# -------------
# One test image, teacher on: the input, the pyramidal cells of the two hidden layers and the output
# (``pyr2``), and the interneurons of each hidden layer, which learn to predict the layer above.

sim = run.model.simulate(x, record=True, labels=y)
keys = ["input", "pyr0", "inter0", "pyr1", "inter1", "pyr2"]
fig_rasters, axes = plt.subplots(len(keys), 1, figsize=(7, 8), sharex=True)
for ax, key in zip(axes, keys):
    t, n = torch.nonzero(sim.record[key][:, 0], as_tuple=True)
    ax.scatter(t, n, s=3, c="k")
    ax.set_ylim(-0.5, sim.record[key].shape[2] - 0.5)
    ax.set_ylabel(key, fontsize=8)
axes[-1].set_xlabel("time step")
fig_rasters.suptitle(f"one test image (label {int(y[0])}), teacher on")
fig_rasters.tight_layout()

# %%
# Apical potentials: the error
# ----------------------------
# Without a teacher (dashed) the interneurons cancel the predictable part of the top-down input. With
# the teacher on (solid), what they could not predict remains in the apical dendrite: the cell's share
# of the output error. The second hidden layer reads the output's error directly; the first reads it in
# the spikes of the second. Each hidden cell keeps its free-phase apical integral as a baseline and
# learns from the difference, so what the interneurons have not yet learned to cancel is not taken for
# error. Shown: the four cells of each layer that the teacher moves most.

free = run.model.simulate(x, record=True).record
fig_apical, axes = plt.subplots(1, 2, figsize=(9, 3))
for ax, key, title in zip(axes, ["apical1", "apical0"], ["second hidden layer", "first hidden layer"]):
    no_teacher, teacher = free[key][:, 0], sim.record[key][:, 0]
    for i, c in enumerate((teacher - no_teacher).abs().sum(0).argsort(descending=True)[:4].tolist()):
        ax.plot(no_teacher[:, c], ls="--", color=f"C{i}")
        ax.plot(teacher[:, c], color=f"C{i}", label=f"cell {c}")
    ax.set(xlabel="time step", ylabel="apical potential", title=title)
    ax.legend(fontsize=7)
fig_apical.suptitle("dashed: no teacher, solid: teacher", fontsize=9)
fig_apical.tight_layout()

# %%
# Alignment with ST-BP
# --------------------
# The cosine between each layer's local update and ST-BP's ``-dE/dW`` on 64 training images, both
# computed from the same input spikes (``W0``: into the first hidden layer).

updates, grads, _ = spiking_updates(run.model.rule.circuit, digits.train_x[:64], digits.train_y[:64], cfg,
                                    torch.Generator().manual_seed(0))
rows = agreement(updates, grads)
fig_alignment, ax = plt.subplots(figsize=(4, 3))
ax.bar([f"W{r['layer'] - 1}" for r in rows], [r["cosine"] for r in rows])
ax.axhline(0, color="k", lw=0.5)
ax.set(ylabel="cosine to -dE/dW (ST-BP)", ylim=(-1, 1))
fig_alignment.tight_layout()
print("cosines", [round(r["cosine"], 3) for r in rows])

# %%
# Run as a script, the example writes its figures to ``OUT_DIR`` when one is given and shows them
# otherwise.

if out is not None:
    out.mkdir(parents=True, exist_ok=True)
    for name, fig in [("rasters", fig_rasters), ("apical", fig_apical), ("alignment", fig_alignment)]:
        fig.savefig(out / f"{name}.png", dpi=100)
    print("figures in", out)
else:
    plt.show()
