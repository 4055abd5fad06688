"""One rank of data-parallel training runs, started by ``tests/test_distributed.py`` under torchrun.

Usage (what the test runs)::

    python -m torch.distributed.run --nproc_per_node=2 --master_addr=127.0.0.1 --master_port=PORT \\
        tests/dist_worker.py OUT RUNS_JSON

``RUNS_JSON`` maps a run name to a training configuration (``TrainConfig.to_json()``). Every rank joins
the process group once with :func:`bioleaf.training.distributed.setup_parallel`, then trains each configuration
with :class:`bioleaf.training.trainer.Trainer` into ``OUT/NAME/run{rank}`` (the test creates these directories:
only rank 0 may write into its own) and saves its learned tensors to ``OUT/NAME/rank{rank}.safetensors``
and its summary to ``OUT/NAME/rank{rank}.json``, so the test can compare the ranks with each other and
with a single-process run.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from bioleaf.config import TrainConfig
from bioleaf.data import load_dataset
from bioleaf.training.distributed import setup_parallel, teardown_parallel
from bioleaf.training.trainer import Trainer


def main(out: Path, runs: dict[str, dict]) -> None:
    torch.set_num_threads(1)
    par = setup_parallel(True, "cpu")
    for name, config in runs.items():
        cfg = TrainConfig.from_json(config).validate()
        data = load_dataset(cfg.dataset, cfg.data_dir, limit=cfg.limit, val_fraction=cfg.val_fraction)
        trainer = Trainer(cfg, data, out / name / f"run{par.rank}", progress=False, parallel=par)
        summary = trainer.run()
        tensors = {k: v.detach().cpu().contiguous() for k, v in trainer.rule.tensors().items()}
        save_file(tensors, str(out / name / f"rank{par.rank}.safetensors"))
        (out / name / f"rank{par.rank}.json").write_text(json.dumps(summary))
    teardown_parallel(par, together=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), json.loads(sys.argv[2]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # like the CLI: skip the backend's native teardown (bioleaf.training.distributed.teardown_parallel)
