"""Parsing of list-valued flags (``--lr-layers 1,0.5``, ``--g-apical-layers 0,1``), one function for all."""

from __future__ import annotations

import math
from typing import Callable

from bioleaf.errors import UsageError


def number_list(text: str, flag: str, *, valid: Callable[[float], bool], items: str,
                count: int | None = None, at_most: bool = False, counted: str | None = None) -> list[float]:
    """``"0,1"`` -> ``[0.0, 1.0]``; :class:`UsageError` naming ``flag`` unless every item is a number for
    which ``valid`` holds (``items`` describes them, e.g. ``"positive numbers"``) and, with ``count``,
    there are exactly (``at_most``: at most) ``count`` of them (``counted`` describes them then)."""
    try:
        values = [float(m) for m in text.split(",")]
    except ValueError:
        values = [math.nan]
    if not all(valid(v) for v in values):
        raise UsageError(f"{flag}: expected {items} joined by ',', got {text!r}")
    if count is not None and (len(values) > count if at_most else len(values) != count):
        raise UsageError(f"{flag}: expected {'at most ' if at_most else ''}{count} {counted or items} "
                         f"joined by ',', got {text!r}")
    return values
