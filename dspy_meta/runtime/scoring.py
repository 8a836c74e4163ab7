"""Scoring programs on a dataset through DSPy's `Evaluate` (keeps dspy.context, callbacks, MLflow)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dspy

__all__ = ["score_program", "lm_scope"]


@contextmanager
def lm_scope(lm: dspy.BaseLM | None) -> Iterator[None]:
    """`dspy.context(lm=lm)` when an LM is given; otherwise leave the context alone."""
    if lm is None:
        yield
    else:
        with dspy.context(lm=lm):
            yield


def score_program(program: dspy.Module, devset: list, metric: Callable, *, num_threads: int | None = None,
                  lm: dspy.BaseLM | None = None, metric_key: str = "dspy_meta_score") -> float:
    """Mean metric of `program` on `devset`, as a fraction in [0, 1]."""
    if not devset:
        raise ValueError("cannot score a program on an empty dataset")
    evaluate = dspy.Evaluate(devset=devset, metric=metric, num_threads=num_threads, display_progress=False,
                             display_table=False)
    with lm_scope(lm):
        result = evaluate(program, callback_metadata={"metric_key": metric_key})
    return float(result.score) / 100.0
