"""Meta structure search (paper section 3.3, Appendix A.2): compose optimizers into better plans.

First each library optimizer runs alone (one batch: the evaluator may run them side by side). Then,
`steps` times, the meta LM sees training examples, the library and the plans tried with their
scores, and proposes a composite plan (JSON, validated strictly; a refused plan's reason is fed
back); each valid plan is a candidate.
"""

from __future__ import annotations

from collections.abc import Mapping

import dspy

from dspy_meta.optimizers.spec import OptimizerSpec
from dspy_meta.plans.nodes import OptimizeStep, PlanLimits, PlanNode, parse_plan
from dspy_meta.search.candidates import Candidate, Rejection
from dspy_meta.search.proposals import (
    ProposeCompositeOptimizer, Proposer, describe_library, plan_format, render_tried_plans,
)
from dspy_meta.search.results import CandidateRecord
from dspy_meta.search.strategies.base import SearchStrategy

__all__ = ["StructureSearch"]

LINEAGE = "structure"


class StructureSearch(SearchStrategy):
    """Propose composite plans over `library`; ``best_plan`` is the best plan found so far.

    By default proposed plans may only name the library's optimizers and lower their budgets
    (`PlanLimits(refs_only=True, cap_overrides=True)`).
    """

    def __init__(self, library: Mapping[str, OptimizerSpec], *, steps: int, num_examples: int, attempts: int = 2,
                 limits: PlanLimits | None = None):
        self.library = dict(library)
        self.steps = steps
        self.num_examples = num_examples
        self.attempts = attempts
        self.limits = limits or PlanLimits(refs_only=True, cap_overrides=True)
        self.tried: list[tuple[PlanNode, float | None]] = []
        self.best_plan: PlanNode | None = None
        self._step = -1
        self._asked: list[Candidate | Rejection] = []

    def planned(self) -> int:
        return len(self.library) + self.steps

    def ask(self, proposer: Proposer) -> list[Candidate | Rejection]:
        if self._step < 0:
            self._step = 0
            self._asked = [Candidate(OptimizeStep(spec, ref=name), f"structure-init:{name}", LINEAGE)
                           for name, spec in self.library.items()]
            return self._asked
        if self._step >= self.steps:
            return []
        step, self._step = self._step, self._step + 1

        def request(feedback: str, rng):
            return dspy.Predict(ProposeCompositeOptimizer)(
                task_examples=proposer.examples(self.num_examples, rng),
                available_optimizers=describe_library(self.library),
                plan_format=plan_format(self.library, self.limits),
                tried_plans=render_tried_plans(self.tried),
                feedback=feedback,
            )

        def parse(prediction):
            return parse_plan(str(prediction.plan or ""), library=self.library, limits=self.limits)

        proposal, rejections = proposer.propose("structure", LINEAGE, f"structure:{step}", request, parse,
                                                self.attempts)
        self._asked = list(rejections)
        if proposal is not None:
            self._asked.append(Candidate(proposal.parsed, "structure", LINEAGE,
                                         analysis=str(proposal.prediction.analysis or ""), usage=proposal.usage))
        return self._asked

    def tell(self, records: list[CandidateRecord]) -> None:
        for item, record in zip(self._asked, records, strict=True):
            if isinstance(item, Candidate):
                self.tried.append((item.plan, record.score))
                if record.accepted:
                    self.best_plan = item.plan
