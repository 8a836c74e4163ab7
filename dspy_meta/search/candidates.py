"""What a search strategy hands the evaluator: candidates to run, and proposals refused before running."""

from __future__ import annotations

from dataclasses import dataclass, field

from dspy_meta.plans.nodes import PlanNode
from dspy_meta.runtime.usage import LevelUsage

__all__ = ["Candidate", "Rejection"]


@dataclass(frozen=True)
class Candidate:
    """A plan to run on the student and score.

    `lineage` names the search it belongs to: it is judged against that search's best so far.
    `usage` is what proposing it cost (the meta LM call), counted with the candidate.
    `derived`: built from other candidates' programs (an ensemble of found ones); even when it opens its
    lineage it is no peer of the inputs and must pass the acceptance rule against the run's best.
    """

    plan: PlanNode
    stage: str
    lineage: str
    analysis: str = ""
    usage: dict[str, LevelUsage] = field(default_factory=dict)
    derived: bool = False


@dataclass(frozen=True)
class Rejection:
    """A proposal refused before running (unparseable, invalid, repeated), with why and what it cost.

    `retried` says another attempt followed it (one more step than planned).
    """

    stage: str
    reason: str
    lineage: str
    retried: bool = False
    usage: dict[str, LevelUsage] = field(default_factory=dict)
