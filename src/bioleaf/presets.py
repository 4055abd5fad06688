"""Named hyperparameter sets (``--preset NAME``): the exact settings behind published numbers.

Values use the config field names (``circuit.x`` and ``neuron.x`` for nested ones); explicit flags
override them.
"""

from __future__ import annotations

from bioleaf.errors import UsageError

_FASHION = {"dataset": "fashion-mnist", "arch": "784-400-400-10", "epochs": 10, "batch_size": 100, "steps": 30,
            "threads": 1, "lr_schedule": "cosine", "init_scale": 0.3, "neuron.tau_syn": 1.0, "circuit.g_apical": 1.0,
            "circuit.g_apical_layers": "0", "targets.high": 27.0}
"""The Fashion-MNIST setting every rule shares (docs/results.md, section 1): the same schedule, initial weights
and neuron (a 1 ms synaptic trace: docs/ablations.md, "Which synaptic trace?"); T=30 with the labelled
output's target 27 spikes;
for bioleaf, the lowest hidden layer's soma not nudged (docs/theory.md, section 2)."""

_LOCAL = {**_FASHION, "circuit.feedback": "learned", "feedback_decay": 1.0, "circuit.g_apical": 0.5,
          "lr_interneuron": 3e-3}
"""The circuit without copied weights (the main job of scripts/main.sh): learned interneurons, errors against the circuit's
own free phase, feedback learned by Kolen-Pollack increments (plasticity.feedback_kolen_pollack), the nudged
hidden soma at half the apical coupling and the interneurons learning at 3e-3 (docs/ablations.md,
"What does each setting of the `fashion-mnist-local` preset buy?")."""

_DIRECT = {**_LOCAL, "circuit.feedback": "direct", "circuit.gate": "headroom"}

PRESETS: dict[str, dict[str, object]] = {
    # the bundled digits (docs/results.md, section 2): 5 epochs of batches of 16 under a cosine schedule, T=60 with
    # the labelled output's target 48 spikes, the lowest hidden layer's soma not nudged (as for Fashion-MNIST)
    "digits": {"dataset": "digits", "arch": "64-128-10", "epochs": 5, "batch_size": 16, "steps": 60, "threads": 1,
               "lr_schedule": "cosine", "targets.high": 48.0, "circuit.g_apical_layers": "0"},
    "fashion-mnist-local": _LOCAL,
    # the circuit without copied weights with fixed random feedback: direct from the output cells to every hidden layer's
    # apical dendrite (the DFA-style circuit), the hidden cells' plasticity gated by their headroom below the
    # count cap (plasticity.plasticity_gate; docs/ablations.md, "What does the headroom gate buy?")
    "fashion-mnist-local-direct": _DIRECT,
    # local learning only (no label): that circuit in one presentation per sample, a free period of 30 steps then the
    # teacher, every hidden layer's soma nudged, the spike-timing rule of W (10 ms plasticity trace) with homeostatic
    # scaling, and the top hidden layer's interneurons, partners of the output cells, inhibiting every hidden layer
    # (docs/results.md, section 1)
    "fashion-mnist-one-presentation": {**_DIRECT, "circuit.schedule": "one-presentation", "circuit.free_steps": 30,
                                       "circuit.g_apical_layers": "1", "circuit.w_rule": "stdp",
                                       "circuit.stdp_tau": 10.0, "circuit.homeostasis": 0.001,
                                       "circuit.interneuron_partners": "feedback-source"},
    # the equivalence configuration: copied interneurons and the teacher-free copy (with the default symmetric
    # feedback, the special circumstance in which the updates equal ST-BP's); the twins' rows use it too
    "fashion-mnist": {**_FASHION, "circuit.interneurons": "ideal", "circuit.error_reference": "free"},
}


def preset_values(name: str) -> dict[str, object]:
    """The values of preset ``name`` (:class:`UsageError` if unknown)."""
    if name not in PRESETS:
        raise UsageError(f"--preset: expected one of {', '.join(PRESETS)}, got {name!r}")
    return PRESETS[name]
