"""`Tracker`: where a meta-optimization run reports its run tree (a parent run, one child per candidate).

The search calls three hooks: `run` around the whole compile (the parent run, with the settings as
parameters), `candidate` once per judged or rejected candidate (from whichever thread judged it),
and `finish` with the results and the returned program. `NullTracker` does nothing; the MLflow
tracker (`dspy_meta.tracking.mlflow_tracker`) is the one implementation that writes somewhere.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = ["Tracker", "NullTracker"]


class Tracker(ABC):
    """The three hooks a compile calls; an implementation must never let a logging failure end the run."""

    @abstractmethod
    @contextmanager
    def run(self, name: str, params: Mapping[str, Any], artifacts: Mapping[str, Any]) -> Iterator[None]:
        """The parent run around a compile: `params` (flat name -> value) and JSON `artifacts` (file -> data)
        are logged at the start; the run ends when the block does (failed when it raises)."""

    @abstractmethod
    def candidate(self, record: Any) -> None:
        """One judged (or rejected) `CandidateRecord`; may be called from any thread."""

    @abstractmethod
    def finish(self, results: Any, program: Any) -> None:
        """The run's `MetaResults` and the program compile returns, before the parent run ends."""


class NullTracker(Tracker):
    """Tracks nothing (no MLflow, or tracking turned off)."""

    @contextmanager
    def run(self, name: str, params: Mapping[str, Any], artifacts: Mapping[str, Any]) -> Iterator[None]:
        yield

    def candidate(self, record: Any) -> None:
        pass

    def finish(self, results: Any, program: Any) -> None:
        pass
