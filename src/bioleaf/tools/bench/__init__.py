r"""``bioleaf bench``: speed, memory and arithmetic throughput of BioLeaF against its BP twin and its peers.

Three measurements, in one run (``docs/bench_notes.md`` has the method and the numbers):

(a) **Training speed** (samples/second) of BioLeaF with its three benchmarked circuits (idealised, without copied
    weights, and that one in one presentation per sample with the spike-timing rule), of our ``bptt``
    (float32 and float64 gradient sums) and of the peers, the same network built from stock parts of other SNN
    libraries and trained by BPTT (snnTorch, required; Norse and SpikingJelly, each skipped when not installed), on
    784-400-400-10, ``T = 20``, batch 100. The trainers take turns batch by batch, in a rotating order,
    and each speed is the batch size over the *median* batch time, so a CPU shared with other jobs biases
    all of them alike. Ratios of speeds: ``X_over_snntorch``, each BioLeaF circuit's over each peer's
    (``bioleaf_over_norse``, ...) and over the fastest peer's (``bioleaf_over_fastest_peer``), and
    ``bioleaf_local_over_bioleaf``, the circuit without copied weights's over the idealised one's, and
    ``bioleaf_one_over_bioleaf_local``, that circuit's in one presentation over its two copies'.
(b) **Training memory** of ``bioleaf`` and ``bptt`` at ``T = 10, 50, 100`` on 784-800-800-10, batch 256:
    what training needs on top of the model and data. On a CPU every point runs in a fresh process that
    reads its own peak resident set size; on a GPU the probes run in this process and read torch's peak
    CUDA allocations.
(c) **GFLOP/s and the limit** of each BioLeaF circuit's training step: the FLOPs of the matrix products of one
    batch, read off the training code as torch dispatches them, over the measured batch time, against a plain
    ``torch.matmul`` replay of exactly those products (``X_matmul_efficiency``); and the batch time against a
    replay of all the work the batch cannot avoid, its products, the random numbers of its input spikes and
    its optimiser's step (``X_limit_efficiency``), both replays timed in the same rotation.

The initial self-predicting phase of BioLeaF (``self_predict_batches``, a one-off before the first
teacher phase) is switched off: the bench measures the steady state of every batch. ``bioleaf bench
--device cuda`` runs all three on a GPU, ``--speed-only`` (a) and (c) alone; :mod:`bioleaf.tools.scaling` sweeps
sizes with the same trainers and probes.

The modules, from the trainers up to the report:

- :mod:`bioleaf.tools.bench.peers`: our ``bptt`` network built from snnTorch, Norse and SpikingJelly parts, and
  their trainers;
- :mod:`bioleaf.tools.bench.trainers`: the trainers the bench times, each built from one seed;
- :mod:`bioleaf.tools.bench.runtime`: the device, torch's threads, device synchronisation, freed memory;
- :mod:`bioleaf.tools.bench.timing`: fixed batches and the rotation that times trainers turn by turn;
- :mod:`bioleaf.tools.bench.flops`: the matrix products of a batch, recorded, and their replay;
- :mod:`bioleaf.tools.bench.limit`: the unavoidable work of a batch (products, random draws, optimiser step),
  recorded, and its replay;
- :mod:`bioleaf.tools.bench.memory`: the peak memory training adds in this process (one probe);
- :mod:`bioleaf.tools.bench.probes`: probes in fresh processes, and measurement (b);
- :mod:`bioleaf.tools.bench.speed`: measurements (a) and (c);
- :mod:`bioleaf.tools.bench.settings`: the sizes and repetitions of a run;
- :mod:`bioleaf.tools.bench.report`: the whole bench as one flat dict, and ``python -m bioleaf.tools.bench``
  (``--quick``, ``--speed-only``, ``--json``, or ``--memory-probe SPEC``: one probe, the way
  :mod:`~bioleaf.tools.bench.probes` starts it).
"""

from bioleaf.tools.bench.report import run_bench
from bioleaf.tools.bench.runtime import bench_device

__all__ = ["bench_device", "run_bench"]
