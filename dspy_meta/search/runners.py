"""How the `Evaluator` obtains a new candidate's result: `LocalRunner` runs it in this process; a queue of
workers (`dspy_meta.distributed.StudyRunner`) runs it wherever a worker is free.

One small interface, so the evaluator's life of a candidate (recognised as a repeat, replayed from the
checkpoint, judged in batch order, recorded with its usage) is the same whoever runs it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # the evaluator imports this module
    from dspy_meta.search.candidates import Candidate
    from dspy_meta.search.evaluator import Evaluator

__all__ = ["CandidateRunner", "LocalRunner", "CandidateResult"]

class CandidateResult(NamedTuple):
    """What running one candidate gave."""

    score: float | None  # the validation score; None when the run failed or was screened out
    program: Any  # the program it produced (None when the run failed)
    reason: str  # why it has no score ("" when scored)
    calls_per_example: float | None  # predictor calls per validation example (its inference cost)
    example_scores: tuple[float, ...] | None = None  # its score on each validation example, in valset order


class CandidateRunner(ABC):
    """Produces the result of a candidate the run has not seen before."""

    def submit(self, evaluator: Evaluator, candidates: list[tuple[Candidate, float | None]]) -> None:
        """A batch's candidates with the best score of their lineage as the batch began, before any result
        is asked for (a queue announces them all at once, so workers can start on every one)."""

    @abstractmethod
    def result(self, evaluator: Evaluator, candidate: Candidate, key: str, best: float | None) -> CandidateResult:
        """The candidate's result; the usage it cost is counted on ``evaluator.runtime``'s meters."""

    def finish(self, evaluator: Evaluator) -> None:
        """The run is over (its search returned)."""


class LocalRunner(CandidateRunner):
    """Runs the candidate here, on the evaluator's runtime (the default)."""

    def result(self, evaluator: Evaluator, candidate: Candidate, key: str, best: float | None) -> CandidateResult:
        return evaluator.run_plan(candidate, best)
