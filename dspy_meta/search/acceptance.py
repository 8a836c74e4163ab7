"""The one acceptance rule of the search: a candidate is kept only if it beats the best so far."""

from __future__ import annotations

from abc import ABC, abstractmethod

__all__ = ["AcceptanceRule", "ImprovesOnBest"]


class AcceptanceRule(ABC):
    """Decides whether a scored candidate replaces the best so far (of its search, or of the run)."""

    @abstractmethod
    def accepts(self, score: float | None, best: float | None) -> bool:
        """Whether `score` replaces `best` (None: nothing scored yet)."""

    def reason(self, score: float | None, best: float | None, lineage: str) -> str:
        """Why `score` was or was not accepted against `best`, in words."""
        if best is None:
            return f"first scored candidate of {lineage}"
        verb = "improved on" if self.accepts(score, best) else "did not beat"
        return f"{verb} the best of {lineage} so far ({best:.3f})"


class ImprovesOnBest(AcceptanceRule):
    """Strictly better than the best so far; a tie keeps the earlier candidate, a failed run never wins."""

    def accepts(self, score: float | None, best: float | None) -> bool:
        return score is not None and (best is None or score > best)
