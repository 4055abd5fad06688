"""Why training stops before its last epoch: a signal (:class:`StopRequest`, ending in :class:`Interrupted`
after a checkpoint) or non-finite learned values (:func:`check_finite`, a
:class:`~bioleaf.errors.DivergenceError` that keeps the last good checkpoint)."""

from __future__ import annotations

import math
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from bioleaf.errors import BioleafError, DivergenceError
from bioleaf.rules import Rule


class Interrupted(BioleafError):
    """Training stopped on SIGINT/SIGTERM after writing a checkpoint (exit code 130)."""

    exit_code = 130


class StopRequest:
    """SIGINT/SIGTERM handling: the first signal asks to stop after the current batch; a second
    SIGINT stops at once (files on disk are always whole, so nothing is corrupted)."""

    def __init__(self) -> None:
        self.requested: str | None = None

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    @contextmanager
    def installed(self) -> Iterator["StopRequest"]:
        """This request's handlers for SIGINT and SIGTERM for the body (in the main thread only: signals
        reach no other), the previous handlers again afterwards."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def check_finite(rule: Rule, epoch: int, batch: int, checkpoint: Path | None = None) -> None:
    """Stop with :class:`DivergenceError` naming the rule, tensor, layer, epoch and batch if any learned value
    (a weight, or its optimiser state: the accumulated updates) or an apical potential is NaN/Inf.
    ``checkpoint``: the last good checkpoint (it is never overwritten with the bad values)."""
    bad = _first_non_finite(rule)
    if bad is None:
        return
    kept = (f"the last good checkpoint {checkpoint} is kept" if checkpoint is not None and checkpoint.exists()
            else "no checkpoint had been written yet")
    raise DivergenceError(f"rule {rule.cfg.rule}: non-finite values in {bad} at epoch {epoch + 1}, batch {batch + 1}; "
                          f"{kept} (lower --lr or --teacher-strength)")


def _first_non_finite(rule: Rule) -> str | None:
    """What holds the first NaN/Inf among the rule's tensors, their optimiser state and its apical
    potentials (``None``: all finite)."""
    tensors = rule.tensors()
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return f"{name} (layer {name[1:]})"
    names = {id(t): name for name, t in tensors.items()}
    for param, state in (rule.optimizer.state.items() if rule.optimizer is not None else ()):
        for key, value in state.items():
            if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
                name = names.get(id(param), "?")
                return f"the optimiser's {key} of {name} (layer {name[1:]})"
    for l, residual in enumerate(getattr(rule, "last_apical_residual", None) or []):
        if not math.isfinite(residual):
            return f"the apical potentials (layer {l})"
    return None
