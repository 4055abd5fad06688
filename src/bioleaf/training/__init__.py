"""The training wing: the epoch and batch loop (:mod:`~bioleaf.training.trainer`), what it measures
(:mod:`~bioleaf.training.metrics`), its checkpoints (:mod:`~bioleaf.training.checkpoint`: the file format;
:mod:`~bioleaf.training.resume`: what a run's checkpoint holds), why it stops early
(:mod:`~bioleaf.training.stops`), data parallelism (:mod:`~bioleaf.training.distributed`) and the
evaluation of a finished run (:mod:`~bioleaf.training.evaluate`)."""
