"""`SearchStrategy`: the ask/tell interface every meta search strategy implements.

A strategy chooses candidates and learns from their results; it never runs or scores anything.
The driver (`Evaluator.run`, or any other loop: a queue of workers, k parallel proposals) calls
``ask`` for the next batch, evaluates it, and calls ``tell`` with one record per item, in order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from dspy_meta.search.candidates import Candidate, Rejection

if TYPE_CHECKING:  # the proposer imports the runtime; strategies only need its interface
    from dspy_meta.search.proposals import Proposer
    from dspy_meta.search.results import CandidateRecord

__all__ = ["SearchStrategy"]


class SearchStrategy(ABC):
    """Proposes candidate optimizers (`ask`) and is told how they scored (`tell`)."""

    @abstractmethod
    def ask(self, proposer: Proposer) -> list[Candidate | Rejection]:
        """The next batch: refused proposals first, then candidates to run; ``[]`` when the search is done.

        `proposer` asks the run's meta LM (with retries and checkpoints).
        """

    @abstractmethod
    def tell(self, records: list[CandidateRecord]) -> None:
        """The records of the last batch, one per item in the same order, judged by the evaluator."""

    def planned(self) -> int:
        """How many items the search expects to propose (for progress); retries add to it."""
        return 0
