"""Look inside a trained microcircuit: spike rasters, apical potentials with and without the teacher, and
the angle between BioLeaF's local updates and the ST-BP gradient.

    python examples/inspect_circuit.py [OUT_DIR]     # figures into OUT_DIR (default: examples-out/)
    BIOLEAF_QUICK=1 python examples/inspect_circuit.py /tmp/figs
"""

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import bioleaf  # noqa: E402
from bioleaf.data import load_dataset  # noqa: E402
from bioleaf.tools.equivalence import agreement, spiking_updates  # noqa: E402

quick = os.environ.get("BIOLEAF_QUICK") == "1"
out = Path(sys.argv[1] if len(sys.argv) > 1 else "examples-out")
out.mkdir(parents=True, exist_ok=True)

# a fully local circuit: learned interneurons, fixed random feedback, one network
cfg = bioleaf.preset("digits", arch="64-64-32-10", feedback="random", interneurons="learned",
                     epochs=1 if quick else 4, limit=500 if quick else None)
run = bioleaf.fit(cfg)
print(f"test accuracy {run.test_accuracy:.2%}")
digits = load_dataset("digits")
x, y = digits.test_x[:1], digits.test_y[:1]

# 1. spike rasters of one test image, teacher on
sim = run.model.simulate(x, record=True, labels=y)
keys = ["input", "pyr0", "pyr1", "pyr2", "inter0", "inter1"]
fig, axes = plt.subplots(len(keys), 1, figsize=(7, 9), sharex=True)
for ax, key in zip(axes, keys):
    t, n = torch.nonzero(sim.record[key][:, 0], as_tuple=True)
    ax.scatter(t, n, s=3, c="k")
    ax.set_ylim(-0.5, sim.record[key].shape[2] - 0.5)
    ax.set_ylabel(key, fontsize=8)
axes[-1].set_xlabel("time step")
fig.savefig(out / "rasters.png", dpi=100)

# 2. apical potentials of the most active cells of the first hidden layer, without and with the teacher
free = run.model.simulate(x, record=True).record["apical0"][:, 0]
taught = sim.record["apical0"][:, 0]
fig, ax = plt.subplots(figsize=(6, 3))
for i, c in enumerate(taught.abs().sum(0).argsort(descending=True)[:4].tolist()):
    ax.plot(free[:, c], ls="--", color=f"C{i}")
    ax.plot(taught[:, c], color=f"C{i}", label=f"cell {c}")
ax.set(xlabel="time step", ylabel="apical potential", title="dashed: no teacher, solid: teacher")
ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(out / "apical.png", dpi=100)

# 3. alignment of the local updates with ST-BP's gradient on 64 training images, per layer
updates, grads, _ = spiking_updates(run.model.rule.circuit, digits.train_x[:64], digits.train_y[:64], cfg,
                                    torch.Generator().manual_seed(0))
rows = agreement(updates, grads)
fig, ax = plt.subplots(figsize=(4, 3))
ax.bar([f"W{r['layer'] - 1}" for r in rows], [r["cosine"] for r in rows])
ax.set(ylabel="cosine to -dE/dW (ST-BP)", ylim=(-1, 1))
fig.tight_layout()
fig.savefig(out / "alignment.png", dpi=100)
print("cosines", [round(r["cosine"], 3) for r in rows], "; figures in", out)
