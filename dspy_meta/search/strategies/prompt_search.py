"""Meta prompt search (paper section 3.2, Appendix A.1): rewrite one inner optimizer's own prompts.

First the optimizer runs as given. Then, `steps` times, the meta LM sees sampled training examples,
the best prompts so far and the (prompts, score) history, and proposes rewritten prompts; the
rewritten optimizer is a candidate, and the evaluator keeps it only if its program scores higher.
"""

from __future__ import annotations

import dspy

from dspy_meta.optimizers.base import get_kind
from dspy_meta.optimizers.spec import OptimizerSpec
from dspy_meta.plans.nodes import OptimizeStep
from dspy_meta.search.candidates import Candidate, Rejection
from dspy_meta.search.proposals import (
    ProposeOptimizerPrompts, Proposer, feedback_or_note, parse_prompt_proposal, render_json, render_prompt_history,
    with_repairs,
)
from dspy_meta.search.results import CandidateRecord
from dspy_meta.search.strategies.base import SearchStrategy

__all__ = ["PromptSearch"]


class PromptSearch(SearchStrategy):
    """Propose rewrites of `spec`'s prompts; ``best_spec`` is the best optimizer found so far.

    Args:
        name: the optimizer's name in the run (stages ``initial:<name>``, ``prompt:<name>``).
        spec: the optimizer to start from.
        steps: meta proposals after the initial run.
        num_examples: training examples shown per proposal.
        attempts: tries per step when a proposal is invalid.
    """

    def __init__(self, name: str, spec: OptimizerSpec, *, steps: int, num_examples: int, attempts: int = 2):
        self.name = name
        self.spec = spec
        self.steps = steps
        self.num_examples = num_examples
        self.attempts = attempts
        self.lineage = f"prompt:{name}"
        self.best_spec = spec
        self.history: list = []
        self._step = -1  # -1: the initial run is still to be asked
        self._pending: OptimizerSpec | None = None
        self._note = ""  # told to the meta LM at its next step (how its last proposal was repaired)

    def planned(self) -> int:
        return 1 + (self.steps if self.spec.prompts else 0)

    def ask(self, proposer: Proposer) -> list[Candidate | Rejection]:
        if self._step < 0:
            self._step, self._pending = 0, self.spec
            return [Candidate(OptimizeStep(self.spec, ref=self.name), f"initial:{self.name}", self.lineage)]
        if not self.spec.prompts or self._step >= self.steps:
            return []  # done, or nothing to rewrite (e.g. BootstrapFewShot)
        step, self._step = self._step, self._step + 1
        current = self.best_spec
        description = get_kind(current.kind).description
        note, self._note = self._note, ""

        def request(feedback: str, rng):
            return dspy.Predict(ProposeOptimizerPrompts)(
                task_examples=proposer.examples(self.num_examples, rng),
                optimizer_description=description,
                current_prompts=render_json({k: t.instructions for k, t in current.prompts.items()}),
                history=render_prompt_history(self.history),
                feedback=feedback_or_note(feedback, note),
            )

        def parse(prediction):
            repairs: list[str] = []
            updates = parse_prompt_proposal(prediction.get("new_prompts", ""), current.prompts,
                                            guidance=prediction.get("task_guidance", ""), repairs=repairs)
            return updates, repairs

        proposal, rejections = proposer.propose(f"prompt:{self.name}", self.lineage, f"prompt:{self.name}:{step}",
                                                request, parse, self.attempts)
        if proposal is None:
            self._pending = None
            return list(rejections)
        updates, repairs = proposal.parsed
        self._pending = current.with_prompts(**updates)
        analysis, self._note = with_repairs(str(proposal.prediction.task_analysis or ""), repairs, "proposal")
        return [*rejections, Candidate(OptimizeStep(self._pending, ref=self.name), f"prompt:{self.name}",
                                       self.lineage, analysis=analysis, usage=proposal.usage)]

    def tell(self, records: list[CandidateRecord]) -> None:
        scored = [r for r in records if r.plan is not None]
        if not scored or self._pending is None:
            return
        record = scored[-1]
        self.history.append((self._pending.prompts, record.score))
        if record.accepted:
            self.best_spec = self._pending
        self._pending = None
