"""Budgets of a meta-optimization run: one strict model that loads from a dict or YAML."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from dspy_meta.errors import ConfigError
from dspy_meta.runtime.schema import StrictModel, load_yaml, validated

__all__ = ["MetaBudget", "AUTO_BUDGETS"]

_Steps = Annotated[int, Field(ge=0)]
_Positive = Annotated[int, Field(ge=1)]


class MetaBudget(StrictModel):
    """How much work each stage may do.

    Attributes:
        prompt_steps: meta prompt proposals per inner optimizer.
        structure_steps: composite-plan steps.
        structure_proposals: plans the meta LM proposes per structure step; they are evaluated side by
            side when threads allow (same budget per candidate, less wall time per step).
        num_examples: training examples the meta LM sees per proposal.
        proposal_attempts: tries per step when the meta LM's proposal is invalid (the reason is fed back).
        screen_size: when > 0, each candidate is first scored on this many validation examples and
            stops there when, at `screen_confidence_pct` confidence (a Hoeffding bound for metrics in
            [0, 1]), its full validation score would be below the best so far (0: off). Small
            minibatches screen out only very clear losers: with 5 examples, a candidate must trail by
            about 0.5.
        max_valset: validation examples used for scoring (a seeded sample when the valset is larger).
        accept_confidence_pct: a candidate replaces the best so far (of its search, of the run, and finally
            the unoptimized program) only if its mean is strictly higher and, on the validation examples where
            the two differ, it wins so often that a one-sided sign test rejects chance at this confidence
            (`PairedSignTest`): at 80, 3 wins and no loss suffice, 2 do not, 4 wins allow 1 loss. A tie never
            wins. 0: any strictly higher mean wins.
        final_ensemble: after the search (also after a usage limit stopped it), an ensemble of this many of
            the best distinct programs found, answering by vote, is scored and judged like any candidate (a
            paired test against the run's best); 0: off. Its validation costs no program calls when the
            members' answers are remembered (the run's memo), and about this many calls per example after.
        copro_breadth / copro_depth: the default COPRO input's budget.
        mipro_candidates / mipro_trials: the default MIPROv2 input's budget.
    """

    _what: ClassVar[str] = "budget"

    prompt_steps: _Steps = 2
    structure_steps: _Steps = 2
    structure_proposals: Annotated[int, Field(ge=1, le=4)] = 1
    num_examples: _Positive = 5
    proposal_attempts: _Positive = 2
    screen_size: _Steps = 0
    screen_confidence_pct: Annotated[int, Field(ge=50, le=99)] = 90
    max_valset: _Positive = 100
    accept_confidence_pct: Annotated[int, Field(ge=0, le=99)] = 80
    final_ensemble: Literal[0, 3, 4] = 3
    copro_breadth: Annotated[int, Field(ge=2)] = 4
    copro_depth: _Positive = 2
    mipro_candidates: _Positive = 4
    mipro_trials: _Positive = 6

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetaBudget:
        return validated(cls, data)

    @classmethod
    def from_yaml(cls, path: str | Path) -> MetaBudget:
        data = load_yaml(Path(path).read_text(encoding="utf-8"), str(path)) or {}
        return cls.from_dict(data.get("budget", data) if isinstance(data, Mapping) else data)

    @classmethod
    def from_auto(cls, auto: str) -> MetaBudget:
        try:
            return AUTO_BUDGETS[auto]
        except (KeyError, TypeError):
            raise ConfigError(f"auto must be one of {sorted(AUTO_BUDGETS)} or None, got {auto!r}") from None


# Validation sizes follow MIPROv2's light/medium/heavy (100/300/1000).
AUTO_BUDGETS = {
    "light": MetaBudget(prompt_steps=2, structure_steps=2, max_valset=100),
    "medium": MetaBudget(prompt_steps=4, structure_steps=4, max_valset=300, copro_breadth=6, mipro_candidates=6,
                         mipro_trials=12),
    "heavy": MetaBudget(prompt_steps=6, structure_steps=6, max_valset=1000, copro_breadth=8, copro_depth=3,
                        mipro_candidates=8, mipro_trials=18),
}
