"""The one acceptance rule of the search: a candidate is kept only if it beats the best so far.

Rules compare a candidate with the best so far on the same validation examples: ``accepts``
gets both means and, when known, both per-example scores (in valset order).
"""

from __future__ import annotations

import inspect
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["AcceptanceRule", "ImprovesOnBest", "PairedSignTest", "acceptance_power", "log_acceptance_power", "sign_test_p",
           "sign_test_min_net_wins", "rule_accepts"]

logger = logging.getLogger(__name__)

REALISTIC_GAIN = 0.10  # a valset on which the rule can accept no gain this small is too small to select on

Scores = Sequence[float] | None


class AcceptanceRule(ABC):
    """Decides whether a scored candidate replaces the best so far (of its search, or of the run)."""

    @abstractmethod
    def accepts(self, score: float | None, best: float | None, scores: Scores = None, best_scores: Scores = None
                ) -> bool:
        """Whether `score` replaces `best` (None: nothing scored yet); `scores`/`best_scores` per example."""

    def reason(self, score: float | None, best: float | None, lineage: str, scores: Scores = None,
               best_scores: Scores = None) -> str:
        """Why `score` was or was not accepted against `best`, in words."""
        if best is None:
            return f"first scored candidate of {lineage}"
        verb = "improved on" if self.accepts(score, best) else "did not beat"
        return f"{verb} the best of {lineage} so far ({best:.3f})"


class ImprovesOnBest(AcceptanceRule):
    """Strictly better than the best so far; a tie keeps the earlier candidate, a failed run never wins."""

    def accepts(self, score, best, scores=None, best_scores=None) -> bool:
        return score is not None and (best is None or score > best)


def sign_test_p(wins: int, losses: int) -> float:
    """One-sided exact sign test: P(at least `wins` of ``wins + losses`` fair coin flips), 1.0 with no flips."""
    n = wins + losses
    return sum(math.comb(n, k) for k in range(wins, n + 1)) / 2 ** n if n else 1.0


def sign_test_min_net_wins(n_examples: int, alpha: float) -> int | None:
    """The fewest (wins - losses) that a one-sided sign test at `alpha` accepts on `n_examples` paired
    examples, or None when no outcome on that many examples passes. The best case is no loss at all (at a
    fixed net, each loss and the win that offsets it raise the p-value), so it is the smallest w with
    ``0.5**w <= alpha``."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    needed = math.ceil(math.log(alpha) / math.log(0.5) - 1e-12)
    return needed if needed <= n_examples else None


def acceptance_power(n_examples: int, confidence: float) -> tuple[str, bool]:
    """The smallest gain `PairedSignTest` at `confidence` can accept on `n_examples` validation examples,
    in words, and whether that is too coarse to select on (above `REALISTIC_GAIN`, or no gain at all)."""
    if confidence <= 0.0:
        return (f"{n_examples} validation examples: any strictly higher mean is accepted "
                "(no paired test)", n_examples * REALISTIC_GAIN < 1)
    net = sign_test_min_net_wins(n_examples, 1.0 - confidence)
    if net is None:
        return (f"{n_examples} validation examples: no candidate can pass the paired test at "
                f"{confidence:.0%} confidence; every candidate will be rejected", True)
    gain = net / n_examples
    return (f"{n_examples} validation examples: a candidate must win on at least {net} more examples than it "
            f"loses (+{gain * 100:.0f} points)", gain > REALISTIC_GAIN)


def log_acceptance_power(n_examples: int, confidence: float) -> None:
    """Log, at the start of a compile, the smallest gain the acceptance test can accept; warn when the
    valset is too small for any realistic gain."""
    message, too_small = acceptance_power(n_examples, confidence)
    if too_small:
        logger.warning("%s: too few to accept a realistic gain; give a larger valset (100+ examples resolve "
                       "about 3 points in the best case)", message)
    else:
        logger.info(message)


@dataclass(frozen=True)
class PairedSignTest(AcceptanceRule):
    """Better on the same examples by more than chance: strictly higher mean, and among the examples where
    the two programs score differently the candidate wins so often that a one-sided sign test gives
    ``p <= 1 - confidence``. So one lucky example never wins on a small valset (at 0.8: 3 wins and no
    loss are enough, 2 are not; 4 wins need at most 1 loss). Without per-example scores it falls back
    to `ImprovesOnBest`."""

    confidence: float = 0.8

    def __post_init__(self):
        if not 0.0 <= self.confidence < 1.0:
            raise ValueError(f"confidence must be in [0, 1), got {self.confidence!r}")

    @staticmethod
    def _paired(scores: Scores, best_scores: Scores) -> tuple[int, int] | None:
        if scores is None or best_scores is None or len(scores) != len(best_scores):
            return None
        wins = sum(a > b for a, b in zip(scores, best_scores))
        return wins, sum(a < b for a, b in zip(scores, best_scores))

    def accepts(self, score, best, scores=None, best_scores=None) -> bool:
        if score is None or (best is not None and not score > best):
            return False
        paired = self._paired(scores, best_scores) if best is not None else None
        return paired is None or sign_test_p(*paired) <= 1.0 - self.confidence

    def reason(self, score, best, lineage, scores=None, best_scores=None) -> str:
        paired = self._paired(scores, best_scores)
        if best is None or paired is None:
            return super().reason(score, best, lineage, scores, best_scores)
        verb = "improved on" if self.accepts(score, best, scores, best_scores) else "did not beat"
        wins, losses = paired
        return (f"{verb} the best of {lineage} so far ({best:.3f}): better on {wins}, worse on {losses} of "
                f"{len(scores)} examples (sign test p={sign_test_p(wins, losses):.3f}, needs <= "
                f"{1.0 - self.confidence:.2f})")


def _takes_example_scores(rule: AcceptanceRule) -> bool:
    """Whether the rule's `accepts` takes the per-example scores (rules written against the two-argument
    form keep working)."""
    try:
        parameters = inspect.signature(rule.accepts).parameters.values()
    except (TypeError, ValueError):
        return False
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters) >= 4 or \
        any(p.kind == p.VAR_POSITIONAL for p in parameters)


def rule_accepts(rule: AcceptanceRule, score: float | None, best: float | None, scores: Scores = None,
                 best_scores: Scores = None) -> bool:
    """``rule.accepts``, given the per-example scores when the rule takes them."""
    if _takes_example_scores(rule):
        return rule.accepts(score, best, scores, best_scores)
    return rule.accepts(score, best)


def judge_against_baseline(rule: AcceptanceRule, best: float | None, baseline: float | None, scores: Scores = None,
                           baseline_scores: Scores = None, *, best_is_input: bool = False) -> tuple[bool, str | None]:
    """Whether the run's best replaces the unoptimized program, and why (None when there is no baseline).

    An input optimizer's own result is what DSPy's optimizer returns: like the inputs among themselves, it
    needs only a higher mean (a tie keeps the program); the meta search's own candidates need `rule`.
    """
    accepted = rule_accepts(rule, best, baseline, scores, baseline_scores)
    if best is None or baseline is None:
        return accepted, None
    reason = rule.reason(best, baseline, "the unoptimized program", scores, baseline_scores)
    if not accepted and best_is_input and best > baseline:
        return True, (f"an input optimizer's result, kept on a higher mean than the unoptimized program "
                      f"({best:.3f} > {baseline:.3f}) as DSPy returns it; the paired test alone: {reason}")
    return accepted, reason
