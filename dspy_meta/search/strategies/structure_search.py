"""Meta structure search (paper section 3.3, Appendix A.2): compose optimizers into better plans.

First each library optimizer runs alone (one batch: the evaluator may run them side by side). Then,
`steps` times, the meta LM sees training examples, the library, the program transforms and the plans
tried with their scores, and proposes a plan (JSON, validated strictly; a refused plan's reason is fed
back). A near-valid plan is repaired (a budget over its cap is lowered to it, and the meta LM is told
at its next step). When every attempt is refused, or the plan repeats one already tried, the step
still evaluates a new candidate, drawn by systematic exploration (`PlanExplorer`), so a weak meta LM
cannot stall the search.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import dspy

from dspy_meta.optimizers.spec import OptimizerSpec
from dspy_meta.plans.nodes import OptimizeStep, PlanLimits, PlanNode, parse_plan
from dspy_meta.search.candidates import Candidate, Rejection
from dspy_meta.plans.composite import plan_key
from dspy_meta.search.proposals import (
    Proposer, compact_plan, composite_request, describe_library, feedback_or_note, plan_format,
    render_tried_plans, with_repairs,
)
from dspy_meta.search.results import CandidateRecord
from dspy_meta.search.strategies.base import SearchStrategy
from dspy_meta.search.strategies.exploration import PlanExplorer

__all__ = ["StructureSearch"]

LINEAGE = "structure"


class StructureSearch(SearchStrategy):
    """Propose composite plans over `library`; ``best_plan`` is the best plan found so far.

    By default proposed plans may only name the library's optimizers and lower their budgets
    (`PlanLimits(refs_only=True, cap_overrides=True)`). With ``limits.structure`` off, plans have no
    transform or ensemble nodes: every program found is the student's class.
    """

    def __init__(self, library: Mapping[str, OptimizerSpec], *, steps: int, num_examples: int, attempts: int = 2,
                 limits: PlanLimits | None = None, seed: int = 0, explore: bool = True, proposals_per_step: int = 1):
        self.library = dict(library)
        self.steps = steps
        self.num_examples = num_examples
        self.attempts = attempts
        self.limits = limits or PlanLimits(refs_only=True, cap_overrides=True)
        self.tried: list[tuple[PlanNode, float | None]] = []
        self.best_plan: PlanNode | None = None
        self.proposals_per_step = proposals_per_step
        self.explorer = PlanExplorer(self.library, self.limits, seed) if explore else None
        self._step = -1
        self._asked: list[Candidate | Rejection] = []
        self._note = ""  # told to the meta LM at its next step (e.g. how its last plan was repaired)

    def planned(self) -> int:
        return len(self.library) + self.steps * self.proposals_per_step

    def ask(self, proposer: Proposer) -> list[Candidate | Rejection]:
        if self._step < 0:
            self._step = 0
            self._asked = [Candidate(OptimizeStep(spec, ref=name), f"structure-init:{name}", LINEAGE)
                           for name, spec in self.library.items()]
            return self._asked
        if self._step >= self.steps:
            return []
        step, self._step = self._step, self._step + 1

        note, self._note = self._note, ""

        def request(feedback: str, rng):
            return dspy.Predict(composite_request(self.limits))(
                task_examples=proposer.examples(self.num_examples, rng),
                available_optimizers=describe_library(self.library),
                plan_format=plan_format(self.library, self.limits),
                tried_plans=render_tried_plans(self.tried),
                feedback=feedback_or_note(feedback, note),
            )

        chosen: list[Candidate] = []

        def parse(prediction):
            repairs: list[str] = []
            plan = parse_plan(str(prediction.plan or ""), library=self.library, limits=self.limits, repairs=repairs)
            if any(plan_key(plan) == plan_key(tried) for tried, _ in self.tried) or \
                    any(plan_key(plan) == plan_key(c.plan) for c in chosen):
                raise ValueError("the plan repeats one already tried; propose a different one")
            return plan, repairs

        rejections: list[Rejection] = []
        for j in range(self.proposals_per_step):  # k proposals per step, evaluated side by side
            key = f"structure:{step}" if j == 0 else f"structure:{step}.{j}"
            proposal, refused = proposer.propose("structure", LINEAGE, key, request, parse, self.attempts)
            rejections += refused
            if proposal is not None:
                plan, repairs = proposal.parsed
                analysis, note_for_next = with_repairs(str(proposal.prediction.analysis or ""), repairs, "plan")
                self._note = note_for_next or self._note
                chosen.append(Candidate(plan, "structure", LINEAGE, analysis=analysis, usage=proposal.usage))
        if not chosen and self.explorer is not None:
            plan = self.explorer.draw(self.tried, compact_plan)
            if plan is not None:
                if rejections:  # one more step than planned, as a retry is
                    rejections[-1] = dataclasses.replace(rejections[-1], retried=True)
                chosen.append(Candidate(plan, "structure-explore", LINEAGE,
                                        analysis="drawn by exploration: the meta LM gave no new valid plan"))
        self._asked = [*rejections, *chosen]
        return self._asked

    def tell(self, records: list[CandidateRecord]) -> None:
        for item, record in zip(self._asked, records, strict=True):
            if isinstance(item, Candidate):
                self.tried.append((item.plan, record.score))
                if self.explorer is not None:
                    self.explorer.tell(item.plan, record.score)
                if record.accepted:
                    self.best_plan = item.plan
