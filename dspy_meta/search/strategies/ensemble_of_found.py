"""The run's closing candidate: the best programs it found, answering together by vote.

Every candidate of a run is a program already scored on the same validation examples; an ensemble
of the best few costs no new program-LM calls to validate when their answers are remembered (the
run's memo answers repeated requests), so it is tried last, even after a usage limit stopped the
search. It is a candidate built from the search's results, never an input: it replaces the run's
best only through the acceptance rule (a paired test on the same examples), so a tie or a lucky
example cannot make it win. Its inference cost (about `size` calls per example) is recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from dspy_meta.plans.composite import plan_key
from dspy_meta.plans.nodes import Ensemble, PlanError, PlanLimits, PlanNode, plan_from_dict
from dspy_meta.search.candidates import Candidate, Rejection
from dspy_meta.search.results import CandidateRecord
from dspy_meta.search.strategies.base import SearchStrategy

__all__ = ["EnsembleOfFound", "LINEAGE"]

logger = logging.getLogger(__name__)

LINEAGE = "ensemble"
# Members are plans the run already ran; their size was checked when they were proposed.
_MEMBER_LIMITS = PlanLimits(max_depth=8, max_steps=32, max_branches=8, max_calls_factor=10_000)


def best_distinct_plans(records: Sequence[CandidateRecord], size: int) -> list[PlanNode]:
    """The `size` best-scoring distinct plans of `records` (best mean first, the earlier on a tie), leaving
    out ensembles (an ensemble of ensembles would hide its cost) and plans that did not parse."""
    chosen: dict[str, PlanNode] = {}
    for record in sorted((r for r in records if r.score is not None and r.plan is not None),
                         key=lambda r: (-r.score, r.index)):
        if record.plan.get("op") == "ensemble":
            continue
        try:
            node = plan_from_dict(record.plan, limits=_MEMBER_LIMITS)
        except PlanError as exc:
            logger.debug("not an ensemble member: %s", exc)
            continue
        chosen.setdefault(plan_key(node), node)
        if len(chosen) == size:
            break
    return list(chosen.values())


class EnsembleOfFound(SearchStrategy):
    """Asks once for an ensemble of the `size` best distinct programs in `records` (at least 3, so that a
    vote can overrule the best member: with two, a tie always keeps the first)."""

    def __init__(self, records: Sequence[CandidateRecord], size: int = 3):
        if size < 3:
            raise ValueError(f"an ensemble of found programs needs at least 3 members, got {size}")
        self.records = list(records)
        self.size = size
        self.record: CandidateRecord | None = None
        self._asked = False

    def planned(self) -> int:
        return 1

    def ask(self, proposer) -> list[Candidate | Rejection]:
        if self._asked:
            return []
        self._asked = True
        members = best_distinct_plans(self.records, self.size)
        if len(members) < self.size:
            logger.info("no ensemble of found programs: %d distinct scored programs, %d needed", len(members),
                        self.size)
            return []
        return [Candidate(Ensemble(tuple(members)), "ensemble-of-found", LINEAGE, derived=True,
                          analysis=f"the {self.size} best programs found, best first, answering by vote")]

    def tell(self, records: list[CandidateRecord]) -> None:
        (self.record,) = records
