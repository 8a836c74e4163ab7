"""Budgets of a meta-optimization run, as one dataclass that loads from YAML."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

__all__ = ["MetaBudget", "AUTO_BUDGETS"]


@dataclass(frozen=True)
class MetaBudget:
    """How much work each stage may do.

    Attributes:
        prompt_steps: meta prompt proposals per inner optimizer.
        structure_steps: composite-plan proposals.
        num_examples: training examples the meta LM sees per proposal.
        proposal_attempts: tries per step when the meta LM's proposal is invalid (the reason is fed back).
        screen_size: when > 0, each candidate is first scored on this many validation examples and
            stops there when, at `screen_confidence_pct` confidence (a Hoeffding bound for metrics in
            [0, 1]), its full validation score would be below the best so far (0: off). Small
            minibatches screen out only very clear losers: with 5 examples, a candidate must trail by
            about 0.5.
        max_valset: validation examples used for scoring (a seeded sample when the valset is larger).
        copro_breadth / copro_depth: the default COPRO input's budget.
        mipro_candidates / mipro_trials: the default MIPROv2 input's budget.
    """

    prompt_steps: int = 2
    structure_steps: int = 2
    num_examples: int = 5
    proposal_attempts: int = 2
    screen_size: int = 0
    screen_confidence_pct: int = 90
    max_valset: int = 100
    copro_breadth: int = 4
    copro_depth: int = 2
    mipro_candidates: int = 4
    mipro_trials: int = 6

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"budget {f.name!r} must be an integer, got {value!r}")
            low = 0 if f.name.endswith("_steps") or f.name.startswith("screen_") else 1
            if f.name == "copro_breadth":
                low = 2
            if value < low:
                raise ValueError(f"budget {f.name!r} must be >= {low}, got {value}")
        if not 50 <= self.screen_confidence_pct <= 99:
            raise ValueError(f"budget 'screen_confidence_pct' must be between 50 and 99, got {self.screen_confidence_pct}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetaBudget:
        if not isinstance(data, Mapping):
            raise ValueError(f"a budget must be a mapping, got {type(data).__name__}")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown budget key(s) {sorted(unknown)}; known: {sorted(f.name for f in fields(cls))}")
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | Path) -> MetaBudget:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
        return cls.from_dict(data.get("budget", data) if isinstance(data, Mapping) else data)

    @classmethod
    def from_auto(cls, auto: str) -> MetaBudget:
        try:
            return AUTO_BUDGETS[auto]
        except KeyError:
            raise ValueError(f"auto must be one of {sorted(AUTO_BUDGETS)} or None, got {auto!r}") from None

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


# Validation sizes follow MIPROv2's light/medium/heavy (100/300/1000).
AUTO_BUDGETS = {
    "light": MetaBudget(prompt_steps=2, structure_steps=2, max_valset=100),
    "medium": MetaBudget(prompt_steps=4, structure_steps=4, max_valset=300, copro_breadth=6, mipro_candidates=6,
                         mipro_trials=12),
    "heavy": MetaBudget(prompt_steps=6, structure_steps=6, max_valset=1000, copro_breadth=8, copro_depth=3,
                        mipro_candidates=8, mipro_trials=18),
}
