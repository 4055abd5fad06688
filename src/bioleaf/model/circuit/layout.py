"""The row layout of stacked copies of a batch.

Several copies of one batch can be simulated as one batch of more rows, stacked on each other, that differ
only in the teacher's strength (the free and the teacher phase side by side). Every population below the
lowest nudged hidden layer (apical coupling 0, or decoupled) then behaves identically in every copy: no
top-down input reaches its somata, and its interneurons see only inputs that every copy shares too. Such a population is
simulated once, in one copy's rows, and so are the products leaving it; a signal is repeated for every copy
where it reaches a population of all the rows (:func:`stacked`), or broadcast where it is combined
element-wise with one (:func:`per_copy`): the same numbers, for ``1 / copies`` of the arithmetic.
"""

from __future__ import annotations

from typing import Callable

import torch


def stacked(t: torch.Tensor, rows: int) -> torch.Tensor:
    """``t`` in ``rows`` rows: ``t`` itself, or, where it holds one copy's rows of a population that every
    stacked copy of the batch shares, those rows repeated once per copy."""
    return t if t.shape[0] == rows else torch.cat([t] * (rows // t.shape[0]))


def per_copy(op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], t: torch.Tensor,
             shared: torch.Tensor) -> torch.Tensor:
    """``op(t, shared)`` in the rows of ``t``; where ``shared`` holds one copy's rows of a population every stacked
    copy shares, it is broadcast over the copies (a view, nothing repeated)."""
    if shared.shape[0] == t.shape[0]:
        return op(t, shared)
    return op(t.view(-1, *shared.shape), shared).view(t.shape)


def copy_rows(t: torch.Tensor, rows: slice) -> torch.Tensor:
    """The batch ``rows`` of one stacked copy in ``t``: ``t`` itself where it holds one copy's rows (a population
    every copy shares)."""
    return t if t.shape[0] == rows.stop - rows.start else t[rows]


def unnudged_layers(couplings: list[float | None], lowest: int = 0) -> int:
    """How many hidden layers from ``lowest`` up have a soma no apical input reaches (coupling 0 or ``None``):
    driven bottom-up only, they fire alike in every copy of the circuit that shares their input."""
    unnudged = 0
    while lowest + unnudged < len(couplings) and couplings[lowest + unnudged] in (0, None):
        unnudged += 1
    return unnudged


def identical_copies(couplings: list[float | None], lowest: int, copies: int) -> list[int]:
    """Per hidden layer, in how many of ``copies`` stacked copies its populations are identical: all of them
    from ``lowest`` up to the first layer whose soma is nudged (:func:`unnudged_layers`), 1 above."""
    top = lowest + unnudged_layers(couplings, lowest)
    return [copies if l < top else 1 for l in range(len(couplings))]
