"""
Train a microcircuit in a few lines
===================================

Train a BioLeaF microcircuit on the bundled 8x8 digits of scikit-learn and evaluate it, from Python,
writing nothing: the Python side of ``bioleaf train --preset digits``.

.. code-block:: bash

    python examples/quickstart.py [OUT_DIR]          # 5 epochs; with OUT_DIR: the figure as a PNG there
    BIOLEAF_QUICK=1 python examples/quickstart.py    # 1 epoch on 500 samples
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
# Train
# -----
# ``bioleaf.preset`` returns a validated configuration; keywords override the preset's values.
# ``bioleaf.fit`` trains in memory and returns the model, one dict per epoch and a summary.

cfg = bioleaf.preset("digits", epochs=1 if quick else 5, limit=500 if quick else None)
run = bioleaf.fit(cfg)
for row in run.history:
    print(f"epoch {row['epoch']}: train {row['train_accuracy']:.1%}, test {row['test_accuracy']:.1%}")
print(f"test accuracy {run.test_accuracy:.2%} ({cfg.rule}, {cfg.circuit.feedback} feedback, "
      f"{cfg.circuit.interneurons} interneurons; idealisations: {', '.join(cfg.idealisations) or 'none labelled'})")

# %%
# Predict
# -------
# At test time the teacher is off and only the bottom-up pathway runs: the class of an image is the
# output cell that fires most.

digits = load_dataset("digits")
images, labels = digits.test_x[:10], digits.test_y[:10]
classes = run.model.predict(images)
print("predicted", classes.tolist(), "labels", labels.tolist())

fig, axes = plt.subplots(1, 10, figsize=(10, 1.6))
for ax, image, label, predicted in zip(axes, images, labels.tolist(), classes.tolist()):
    ax.imshow(image.reshape(8, 8), cmap="gray_r")
    ax.set_title(f"{predicted}" if predicted == label else f"{predicted} ({label})",
                 color="k" if predicted == label else "C3", fontsize=9)
    ax.axis("off")
fig.suptitle("predicted class (label where it differs)", fontsize=9)
fig.tight_layout()

# %%
# Run as a script, the example writes its figures to ``OUT_DIR`` when one is given and shows them
# otherwise.

if out is not None:
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "predictions.png", dpi=100)
    print("figure in", out)
else:
    plt.show()
