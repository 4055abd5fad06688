"""Learning rules behind one trainer interface: ``bioleaf`` (local), ``stbp`` and ``bptt`` (the BP twins)."""

from .base import Rule, RULES, make_rule

__all__ = ["Rule", "RULES", "make_rule"]
