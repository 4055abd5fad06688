"""The training wing: the epoch and batch loop, checkpoints, evaluation and data parallelism."""
