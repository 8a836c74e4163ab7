"""Scoring programs on a dataset through DSPy's `Evaluate` (keeps dspy.context, callbacks, MLflow)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dspy
from dspy.utils.callback import BaseCallback

from dspy_meta.errors import RunFailed, StopRun
from dspy_meta.runtime.quiet import quiet
from dspy_meta.runtime.redact import redact

__all__ = ["ProgramScore", "ProgramFailed", "evaluate_program", "score_program", "lm_scope", "PredictorCalls"]


class ProgramFailed(StopRun, RunFailed):
    """The program raised on every example it was scored on (DSPy's evaluator would score each 0).

    Raised by `evaluate_program`: for the unoptimized student it ends the run (a `RunFailed`; a stop
    signal, so the parts running beside it stop too); a candidate's program fails that candidate only.
    """


class _ForwardOutcomes(BaseCallback):
    """How the calls of one program (its top-level forward, not its predictors') ended."""

    def __init__(self, program):
        self.program = program
        self.answered = 0
        self.errors: list[BaseException] = []
        self._running: set[str] = set()
        self._lock = threading.Lock()

    def on_module_start(self, call_id, instance, inputs):
        if instance is self.program:
            with self._lock:
                self._running.add(call_id)

    def on_module_end(self, call_id, outputs, exception=None):
        with self._lock:
            if call_id not in self._running:
                return
            self._running.discard(call_id)
            if exception is None:
                self.answered += 1
            else:
                self.errors.append(exception)

    def check(self, examples: int) -> None:
        """`ProgramFailed` when every call raised (none answered)."""
        with self._lock:
            if self.answered or not self.errors:
                return
            first = self.errors[0]
        raise ProgramFailed(f"the program raised on every example it was scored on ({len(self.errors)} of "
                            f"{examples}; the first: {type(first).__name__}: {redact(first)}); fix its forward")


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
                     lm: dspy.BaseLM | None = None, metric_key: str = "dspy_meta_score",
                     check_program: bool = True) -> ProgramScore:
    """Score `program` on every example of `devset`. Quietly: no bar, no DSPy log line (the score is the answer).

    With `check_program`, a program that raised on every example is `ProgramFailed`, not a score of 0.
    """
    if not devset:
        raise ValueError("cannot score a program on an empty dataset")
    evaluate = dspy.Evaluate(devset=devset, metric=metric, num_threads=num_threads, display_progress=False,
                             display_table=False)
    outcomes = _ForwardOutcomes(program)
    callbacks = [*dspy.settings.callbacks, outcomes] if check_program else dspy.settings.callbacks
    with lm_scope(lm), quiet(), dspy.context(callbacks=callbacks):
        try:
            result = evaluate(program, callback_metadata={"metric_key": metric_key})
        except Exception:  # DSPy's max_errors cancelled it: say why, when it is that the program never ran
            if check_program:
                outcomes.check(len(devset))
            raise
    if check_program:
        outcomes.check(len(devset))
    return ProgramScore(float(result.score) / 100.0, tuple(float(score) for _, _, score in result.results))


def score_program(program: dspy.Module, devset: list, metric: Callable, *, num_threads: int | None = None,
                  lm: dspy.BaseLM | None = None, metric_key: str = "dspy_meta_score") -> float:
    """Mean metric of `program` on `devset`, as a fraction in [0, 1] (see `evaluate_program`; a program that
    raises everywhere scores 0 here, as in DSPy)."""
    return evaluate_program(program, devset, metric, num_threads=num_threads, lm=lm, metric_key=metric_key,
                            check_program=False).mean
