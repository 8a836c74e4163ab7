"""Scoring programs on a dataset through DSPy's `Evaluate` (keeps dspy.context, callbacks, MLflow)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dspy
from dspy.utils.callback import BaseCallback

from dspy_meta.runtime.quiet import quiet

__all__ = ["ProgramScore", "evaluate_program", "score_program", "lm_scope", "PredictorCalls"]


class PredictorCalls(BaseCallback):
    """Counts predictor calls (each is one LM request, or a memoized answer to one): a program's
    inference cost, whatever its structure."""

    def __init__(self):
        self.calls = 0
        self._lock = threading.Lock()

    def on_module_start(self, call_id, instance, inputs):
        if isinstance(instance, dspy.Predict):
            with self._lock:
                self.calls += 1


@contextmanager
def lm_scope(lm: dspy.BaseLM | None) -> Iterator[None]:
    """`dspy.context(lm=lm)` when an LM is given; otherwise leave the context alone."""
    if lm is None:
        yield
    else:
        with dspy.context(lm=lm):
            yield


@dataclass(frozen=True)
class ProgramScore:
    """A program's mean metric on a dataset (a fraction in [0, 1]) and its score on each example, in order."""

    mean: float
    per_example: tuple[float, ...]


def evaluate_program(program: dspy.Module, devset: list, metric: Callable, *, num_threads: int | None = None,
                     lm: dspy.BaseLM | None = None, metric_key: str = "dspy_meta_score") -> ProgramScore:
    """Score `program` on every example of `devset`. Quietly: no bar, no DSPy log line (the score is the answer)."""
    if not devset:
        raise ValueError("cannot score a program on an empty dataset")
    evaluate = dspy.Evaluate(devset=devset, metric=metric, num_threads=num_threads, display_progress=False,
                             display_table=False)
    with lm_scope(lm), quiet():
        result = evaluate(program, callback_metadata={"metric_key": metric_key})
    return ProgramScore(float(result.score) / 100.0, tuple(float(score) for _, _, score in result.results))


def score_program(program: dspy.Module, devset: list, metric: Callable, *, num_threads: int | None = None,
                  lm: dspy.BaseLM | None = None, metric_key: str = "dspy_meta_score") -> float:
    """Mean metric of `program` on `devset`, as a fraction in [0, 1] (see `evaluate_program`)."""
    return evaluate_program(program, devset, metric, num_threads=num_threads, lm=lm, metric_key=metric_key).mean
