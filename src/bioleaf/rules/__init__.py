"""Learning rules behind one trainer interface: ``bioleaf`` (local), ``stbp`` and ``bptt`` (the BP twins)."""

import torch

from bioleaf.config import RULE_NAMES, TrainConfig
from bioleaf.rules.base import BatchStats, Rule
from bioleaf.rules.bioleaf import BioleafRule
from bioleaf.rules.bptt import BpttRule
from bioleaf.rules.stbp import StbpRule

RULES: dict[str, type[Rule]] = dict(zip(RULE_NAMES, (BioleafRule, StbpRule, BpttRule)))
"""The rules by name (the names, in this order, are ``config.RULE_NAMES``)."""


def make_rule(cfg: TrainConfig, sizes: list[int], generator: torch.Generator, device: torch.device) -> Rule:
    """The rule named by ``cfg.rule``, with freshly initialised synapses drawn from ``generator``."""
    return RULES[cfg.rule](cfg, sizes, generator, device)


__all__ = ["BatchStats", "Rule", "RULES", "make_rule"]
