r"""Export a trained run's inference network to NIR (the Neuromorphic Intermediate Representation).

What is exported is the bottom-up pathway of :func:`bioleaf.model.network.simulate`, the network every
rule predicts with (teacher off, apical compartments decoupled). The learning-only parts of the
microcircuit (feedback ``B``, lateral ``P`` and ``Q``, the interneurons, the teacher current) are
not part of inference and are left out. The graph is

.. code-block:: text

    input -> W0 -> neuron0 -> W1 -> neuron1 -> ... -> W{L-1} -> neuron{L-1} -> output

with one ``nir.Linear`` (the trained ``W_l``, shape ``[n_out, n_in]``, no bias; for hidden layers times
the basal coupling ``g_B`` of the microcircuit, which inference applies to hidden somata) and one
``nir.CubaLIF`` per layer.

**Why CubaLIF.** bioleaf feeds each layer the *trace* of the presynaptic spikes,
:math:`I_l(t) = W_l\, x_{l-1}(t)` with :math:`x(t) = \lambda x(t-1) + s(t)`. Since ``W_l`` is linear,
:math:`I_l(t) = \lambda I_l(t-1) + W_l s_{l-1}(t)`: the trace is a current-based synapse placed after
the weights, and synapse plus soma together are exactly a current-based LIF neuron (the input
layer's trace becomes the first layer's synapse). CubaLIF is also the only NIR node with a
synapse that both snnTorch's and Norse's NIR importers run.

**From our discrete time to NIR's continuous time.** NIR nodes are ODEs. A simulator that
integrates them with forward Euler at step :math:`h` computes, for CubaLIF,

.. math::

    I(t) &= (1 - h/\tau_{syn})\, I(t-1) + (h\, w_{in}/\tau_{syn})\, S(t) \\
    v(t) &= (1 - h/\tau_{mem})\, v(t-1) + (h\, R/\tau_{mem})\, I(t)

so one bioleaf step maps onto one simulator step of :math:`h` = :data:`NIR_DT` = 1e-4 s (the
step that snnTorch's NIR exporter and importer assume) with

.. math::

    \tau_{syn} = h/(1-\lambda), \quad w_{in} = \tau_{syn}/h, \quad
    \tau_{mem} = h/(1-\alpha), \quad R = \tau_{mem}/h, \quad v_{leak} = 0, \quad
    v_{threshold} = \vartheta, \quad v_{reset} = 0

which gives back :math:`I(t) = \lambda I(t-1) + W s(t)` and :math:`v(t) = \alpha v(t-1) + I(t)`.
These time constants are Euler-matched to :math:`h`, not the physical milliseconds; the physical
values (``tau_syn_ms``, ``tau_mem_ms``, ``dt_ms``) are kept in the graph's metadata. A simulator
running at another step :math:`h'` must scale every time constant by :math:`h'/h`.

Without leak (``tau_mem = inf``, :math:`\alpha = 1`) ``tau_mem`` is written as
:math:`h \cdot 2^{30}` (and ``R`` as :math:`2^{30}`), not as infinity: the decay per step is then
:math:`1 - 2^{-30}`, which is exactly 1.0 in float32, while an infinite ``tau_mem`` with an infinite
``R`` turns into ``inf * 0 = nan`` in simulators that multiply by ``R`` before dividing by
``tau_mem`` (Norse does).

**What NIR cannot say.** bioleaf resets by *subtraction* (:math:`v \leftarrow v - \vartheta`); NIR's
neurons reset *to a value* (``v_reset = 0``). The graph is written with ``v_reset = 0`` and each
neuron node carries ``metadata["reset"] = "subtract"``; importers that can reset by subtraction
should be told to (Norse: ``from_nir(..., reset_method=reset_subtract)``; snnTorch: set the imported
``Synaptic`` modules to subtraction, see ``docs/interop.md``). NIR also spikes on
:math:`v > \vartheta` where bioleaf spikes on :math:`v \ge \vartheta` (equality has probability ~0
with real-valued weights), and it has no refractory period, so models trained with
``--refractory`` > 0 are refused.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from bioleaf import __version__
from bioleaf.config import TrainConfig
from bioleaf.errors import DataError, UsageError
from bioleaf.model.neurons import NeuronParams
from bioleaf.rules import Rule
from bioleaf.training.checkpoint import atomic_write_bytes
from bioleaf.training.evaluate import load_model

FORMATS = ("nir",)
NIR_DT = 1e-4
"""Simulator step ``h`` (seconds) that one bioleaf time step maps to: the step snnTorch's NIR
exporter and importer assume."""
NO_LEAK_STEPS = 2.0 ** 30
"""``tau_mem / h`` written for a neuron without leak (decay ``1 - 2**-30`` per step, 1.0 in float32)."""


def euler_tau(decay: float, h: float = NIR_DT) -> float:
    """Time constant whose forward-Euler step ``h`` decays by ``decay``: ``h / (1 - decay)``."""
    if decay >= 1.0:
        return h * NO_LEAK_STEPS
    return h / (1.0 - decay)


def neuron_node_params(neuron: NeuronParams, n: int) -> dict[str, np.ndarray]:
    """The ``nir.CubaLIF`` parameters of a population of ``n`` bioleaf neurons (mapping above)."""
    tau_syn = euler_tau(neuron.lam)
    tau_mem = euler_tau(neuron.alpha)
    values = {"tau_syn": tau_syn, "tau_mem": tau_mem, "r": tau_mem / NIR_DT, "v_leak": 0.0,
              "v_threshold": neuron.threshold, "v_reset": 0.0, "w_in": tau_syn / NIR_DT}
    return {name: np.full(n, value, dtype=np.float64) for name, value in values.items()}


def build_graph(weights: list[np.ndarray], neuron: NeuronParams, metadata: dict | None = None):
    """The NIR graph of the bottom-up network with ``weights`` (``[n_out, n_in]`` arrays)."""
    import nir

    nodes: dict = {"input": nir.Input(input_type={"input": np.array([weights[0].shape[1]])})}
    edges: list[tuple[str, str]] = []
    prev = "input"
    node_meta = {"reset": "subtract", "spike_condition": "v >= v_threshold", "source": "bioleaf"}
    for l, w in enumerate(weights):
        nodes[f"W{l}"] = nir.Linear(weight=np.ascontiguousarray(w, dtype=np.float32))
        nodes[f"neuron{l}"] = nir.CubaLIF(**neuron_node_params(neuron, w.shape[0]), metadata=dict(node_meta))
        edges += [(prev, f"W{l}"), (f"W{l}", f"neuron{l}")]
        prev = f"neuron{l}"
    nodes["output"] = nir.Output(output_type={"output": np.array([weights[-1].shape[0]])})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(metadata or {}))


def portable_number(x: float) -> float | str:
    """``x``, or ``"inf"`` for an infinite one: a number every reader of the graph's HDF5 metadata reads."""
    return x if math.isfinite(x) else "inf"


def _check_out(out: Path) -> None:
    """:class:`UsageError` unless ``out`` can be a new file: not a directory, its directory present."""
    if out.is_dir():
        raise UsageError(f"--out {out}: is a directory (give a file name, e.g. {out / 'model.nir'})")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: directory {out.parent} does not exist")


def export_run(run_dir: Path, fmt: str, out: Path) -> Path:
    """Write the inference network of the run in ``run_dir`` to ``out`` in format ``fmt``.

    The file is written atomically (temporary file, fsync, rename): a failed export leaves no
    partial file. Raises :class:`UsageError` for an unknown format, an unusable ``--out``, a model
    NIR cannot express or a missing ``nir`` package, and :class:`DataError` (from
    :func:`bioleaf.training.evaluate.load_model`) for a missing, foreign or corrupt run.
    """
    if fmt not in FORMATS:
        raise UsageError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    _check_out(out)
    nir = _require_nir()
    run_dir = Path(run_dir)
    cfg, rule = load_model(run_dir)
    weights = inference_weights(rule, cfg.neuron, run_dir / "model.safetensors")
    buf = io.BytesIO()
    nir.write(buf, build_graph(weights, cfg.neuron, run_metadata(run_dir, cfg, rule)))
    try:
        atomic_write_bytes(out, buf.getvalue())
    except OSError as e:
        raise UsageError(f"--out {out}: cannot write ({e.strerror or e})") from None
    return out


def _require_nir():
    """The ``nir`` package, or :class:`UsageError` when it is missing."""
    try:
        import nir
    except ImportError:
        raise UsageError("--format nir needs the 'nir' package (pip install nir)") from None
    return nir


def inference_weights(rule: Rule, neuron: NeuronParams, model_file: Path) -> list[np.ndarray]:
    """The weights of the exported graph: the rule's ``W[l]`` as float32 arrays, the hidden somata's basal
    coupling ``g_B`` folded in. :class:`UsageError` for a neuron NIR cannot express (a refractory period),
    :class:`DataError` for a non-finite weight of ``model_file``."""
    if neuron.refractory > 0:
        raise UsageError(f"--format nir: {model_file} uses a refractory period ({neuron.refractory} steps), "
                         "which NIR cannot express; only models with --refractory 0 can be exported")
    gains = [rule.g_basal] * (len(rule.weights) - 1) + [1.0]
    weights = [(g * w).detach().cpu().float().numpy() for g, w in zip(gains, rule.weights)]
    for l, w in enumerate(weights):
        if not np.isfinite(w).all():
            raise DataError(f"{model_file}: tensor 'W{l}' holds non-finite values")
    return weights


def run_metadata(run_dir: Path, cfg: TrainConfig, rule: Rule) -> dict:
    """The graph's metadata: where it came from, the physical time constants, and how to read its output."""
    neuron = cfg.neuron
    return {
        "source": f"bioleaf {__version__}", "run": run_dir.resolve().name, "rule": cfg.rule,
        "dataset": cfg.dataset, "arch": "-".join(str(n) for n in rule.sizes),
        "dt": NIR_DT, "steps": cfg.steps, "dt_ms": neuron.dt, "tau_syn_ms": neuron.tau_syn,
        "tau_mem_ms": portable_number(neuron.tau_mem), "threshold": neuron.threshold, "reset": "subtract",
        "g_basal": rule.g_basal,
        "encoder": cfg.encoder, "max_rate": cfg.max_rate,
        "readout": "argmax of output spike counts over `steps` steps; ties -> highest final membrane potential",
    }
