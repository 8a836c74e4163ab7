"""Minibatch screening: stop a candidate early when it clearly cannot beat the best so far."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import dspy

from dspy_meta.runtime.factory import Runtime
from dspy_meta.runtime.scoring import score_program

__all__ = ["Screen", "screening_bound"]


def screening_bound(minibatch_score: float, size: int, confidence: float) -> float:
    """Upper confidence bound on the full validation score, from a minibatch of `size` examples.

    Hoeffding's inequality for a mean of values in [0, 1] (it also holds when the minibatch is
    drawn without replacement from the validation set).
    """
    return minibatch_score + math.sqrt(math.log(1 / (1 - confidence)) / (2 * size))


@dataclass(frozen=True)
class Screen:
    """Score on `size` validation examples first; at `confidence`, a candidate whose bound is below the
    best so far stops there (size 0: off). The minibatch's LM answers are memoized, so a candidate
    that passes pays nothing twice."""

    size: int = 0
    confidence: float = 0.9
    seed: int = 0

    def check(self, program: dspy.Module, best: float | None, valset: list, runtime: Runtime) -> tuple[float | None, str]:
        """(minibatch score, reason) for a screened-out candidate, else (None, "")."""
        if not self.size or best is None or self.size >= len(valset):
            return None, ""
        minibatch = random.Random(self.seed).sample(valset, self.size)
        score = score_program(program, minibatch, runtime.metric, num_threads=runtime.num_threads,
                              lm=runtime.program_lm)
        bound = screening_bound(score, self.size, self.confidence)
        if bound < best:
            return score, (f"screened out: {score:.3f} on a {self.size}-example minibatch; at "
                           f"{self.confidence:.0%} confidence its validation score is at most {bound:.3f}, "
                           f"below the best so far ({best:.3f})")
        return None, ""
