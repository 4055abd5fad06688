"""Train a BioLeaF microcircuit on the bundled 8x8 digits and evaluate it, from Python, writing nothing.

    python examples/quickstart.py            # 5 epochs (about 20 s on one core)
    BIOLEAF_QUICK=1 python examples/quickstart.py   # 1 epoch on 500 samples, a few seconds
"""

import os

import bioleaf
from bioleaf.data import load_dataset

quick = os.environ.get("BIOLEAF_QUICK") == "1"
cfg = bioleaf.preset("digits", epochs=1 if quick else 5, limit=500 if quick else None)
run = bioleaf.fit(cfg)                      # in memory: no files, no global state changed
for row in run.history:
    print(f"epoch {row['epoch']}: train {row['train_accuracy']:.1%}, test {row['test_accuracy']:.1%}")

digits = load_dataset("digits")
classes = run.model.predict(digits.test_x[:10])
print("predicted", classes.tolist(), "labels", digits.test_y[:10].tolist())
print(f"test accuracy {run.test_accuracy:.2%} ({cfg.rule}, {cfg.circuit.feedback} feedback, "
      f"{cfg.circuit.interneurons} interneurons)")
