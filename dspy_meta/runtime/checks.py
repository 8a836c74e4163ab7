"""Input checks of a meta-optimization run: data, program inputs, and the user's metric."""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import numbers
import random
import threading
from collections.abc import Callable
from typing import Any

import dspy

from dspy_meta.errors import BadMetricValue, TooManyMetricFailures
from dspy_meta.runtime.redact import redact

logger = logging.getLogger(__name__)

__all__ = ["GuardedMetric", "MetricHealth", "BROKEN_AFTER", "forward_inputs", "data_hash", "split_trainset", "sample_valset", "check_num_threads"]


def forward_inputs(student: dspy.Module) -> set[str]:
    """Named parameters the program's forward requires (none when it takes **kwargs only)."""
    # Read from the class: DSPy warns when an instance's `forward` is looked up outside `__call__`.
    forward = getattr(type(student), "forward", None)
    try:
        parameters = list(inspect.signature(forward).parameters.values())[1:]  # less `self`
    except (TypeError, ValueError):
        return set()
    return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.default is p.empty}


def check_num_threads(num_threads: Any) -> None:
    """Refuse a thread budget that is not a positive integer or None (DSPy's setting), naming it: a string
    would otherwise fail deep in the run with a TypeError that names nothing."""
    if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                    or num_threads < 1):
        raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")


def split_trainset(trainset: list) -> tuple[list, list]:
    """MIPROv2's split when no valset is given: the last 80% (at most 1000) validate."""
    if len(trainset) < 2:
        raise ValueError("trainset must have at least 2 examples when no valset is given")
    valset_size = min(1000, max(1, int(len(trainset) * 0.80)))
    cutoff = len(trainset) - valset_size
    return trainset[:cutoff], trainset[cutoff:]


def sample_valset(valset: list, max_size: int, seed: int) -> list:
    """The validation examples a run scores on: all of them, or a seeded sample of `max_size`."""
    return random.Random(seed).sample(valset, max_size) if len(valset) > max_size else valset


def data_hash(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, default=repr) if not isinstance(data, list) else \
        json.dumps([example.toDict() if isinstance(example, dspy.Example) else repr(example) for example in data],
                   sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _takes_trace(metric: Callable) -> bool:
    """Whether `metric` accepts a third positional argument (DSPy's ``trace``); 2-argument metrics do not."""
    try:
        parameters = list(inspect.signature(metric).parameters.values())
    except (TypeError, ValueError):
        return True
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return True
    return len([p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]) >= 3


BROKEN_AFTER = 3  # examples on which the metric failed on the prediction and on its corrected copy too


class MetricHealth:
    """Whether a run's metric can score at all, shared by the run's branches (see `GuardedMetric`)."""

    def __init__(self):
        self.works = False  # it returned a finite number once: it is not broken
        self.broken_on = 0  # examples it failed on, also with the labels in the prediction
        self._lock = threading.Lock()

    def worked(self) -> None:
        self.works = True

    def failed_even_corrected(self) -> int:
        with self._lock:
            self.broken_on += 1
            return self.broken_on


class GuardedMetric:
    """The user's metric, checked: a non-number is an error; an exception counts the example as failed.

    After `max_failures` raising examples the next one raises, failing the candidate being scored.
    2-argument metrics ``metric(example, prediction)`` are called without the trace, as MIPROv2 allows.

    A metric broken on every example (it raises, or returns NaN, whatever the prediction) stops the run
    with `BadMetricValue` instead of recording real-looking 0.0 scores: until the metric has returned a
    finite score once in the run, an example it fails on is scored again with the prediction corrected
    (the example's labels in place of the predicted fields); failing on `BROKEN_AFTER` examples that way
    means it cannot score even a right answer. One corrected call per failure, and none once it worked;
    a metric whose examples have no labels is not judged.
    """

    def __init__(self, metric: Callable, max_failures: int, health: MetricHealth | None = None):
        self.metric = metric
        self.max_failures = max_failures
        self.failures = 0
        self.health = health or MetricHealth()
        self._lock = threading.Lock()
        self._takes_trace = _takes_trace(metric)
        self.__name__ = getattr(metric, "__name__", "metric")

    def branch(self) -> GuardedMetric:
        """The metric for a part of the run: failures counted apart, the run's judgement of the metric shared."""
        return GuardedMetric(self.metric, self.max_failures, self.health)

    def reset(self) -> None:
        """Start counting failures afresh (once per candidate)."""
        with self._lock:
            self.failures = 0

    def _score(self, example, prediction, trace) -> Any:
        value = self.metric(example, prediction, trace) if self._takes_trace else self.metric(example, prediction)
        _check_finite(value)
        return value

    def _judge_broken(self, example, prediction, trace, error: Exception) -> None:
        """`BadMetricValue` when the metric fails on the corrected prediction too, on `BROKEN_AFTER` examples."""
        labels = dict(example.labels()) if hasattr(example, "labels") else {}
        if self.health.works or not labels:
            return
        fields = dict(prediction.items()) if hasattr(prediction, "items") else {}
        try:
            value = self._score(example, dspy.Prediction(**{**fields, **labels}), trace)
            if _number(value) is None:
                return  # not a number: `__call__` stops the run on such values
        except Exception as probe:  # noqa: BLE001 -- the metric's own failure, judged here
            broken_on = self.health.failed_even_corrected()
            if broken_on >= BROKEN_AFTER:
                raise BadMetricValue(
                    f"the metric fails on every example, even on predictions that hold the examples' own labels "
                    f"({broken_on} examples; on the last: {type(error).__name__}: {redact(error)}; corrected: "
                    f"{type(probe).__name__}: {redact(probe)}); fix the metric") from None
            return
        self.health.worked()

    def probe(self, example: dspy.Example | None = None) -> None:
        """Check, before any LM call, what cannot misfire: the metric takes 2 or 3 positional arguments.

        Its return values are judged on real predictions (`__call__`): a metric may read output fields
        the labels lack, compare differently named fields, or score examples without labels.
        """
        try:
            signature = inspect.signature(self.metric)
        except (TypeError, ValueError):
            return
        try:
            signature.bind(example, None)
            return
        except TypeError:
            pass
        try:
            signature.bind(example, None, None)
        except TypeError:
            raise TypeError(f"the metric must accept (example, prediction) or (example, prediction, trace); "
                            f"its signature is {signature}") from None

    def __call__(self, example, prediction, trace=None):
        try:
            value = self._score(example, prediction, trace)
        except Exception as exc:
            with self._lock:
                self.failures += 1
                failures = self.failures
            logger.warning("metric raised on an example (%d in this candidate): %s: %s", failures,
                           type(exc).__name__, redact(exc))
            self._judge_broken(example, prediction, trace, exc)
            if failures > self.max_failures:
                raise TooManyMetricFailures(f"the metric raised on {failures} examples (max_metric_failures="
                                            f"{self.max_failures})") from exc
            return 0.0
        if _number(value) is not None:
            self.health.worked()
        if trace is not None:
            return value
        try:
            return _as_score(value)
        except TypeError as exc:  # a user bug every candidate would hit: stop the run (see MetaSearch.compile)
            raise BadMetricValue(str(exc)) from None


def _check_finite(value: Any) -> None:
    """A NaN or infinite score would poison every comparison (NaN > x is False): refuse it as a failure."""
    number = _number(value)
    if number is None:
        return  # not a number at all: `_as_score` stops the run on it
    try:
        finite = math.isfinite(number)
    except OverflowError:  # an int too large for a float (10**400): float() of it fails (DSPy: a silent 0)
        raise ValueError("the metric returned a number too large for a float, not a finite score") from None
    if not finite:
        raise ValueError(f"the metric returned {value!r:.80}, not a finite score")


def _as_score(value: Any) -> float:
    number = _number(value)
    if number is None:
        raise TypeError(f"the metric must return a number or bool, got {type(value).__name__}: {value!r:.80}")
    return float(number)


def _number(value: Any) -> Any:
    """The number a metric value stands for, or None: what DSPy's `Evaluate` can sum.

    A bool or real number (numpy's too), a one-element numpy array, or either of these as the value's
    ``score`` (``dspy.Prediction(score=..., feedback=...)``, as GEPA metrics return).
    """
    for candidate in (value, getattr(value, "score", None)):
        if isinstance(candidate, numbers.Real):  # bool, int, float, numpy ints and floats
            return candidate
        if _is_numpy_number(candidate):
            return candidate.item()  # numpy.bool_ (no `numbers.Real`), numpy.array([0.5])
    return None


def _is_numpy_number(value: Any) -> bool:
    """A numpy bool, number or one-element array of them, read without importing numpy."""
    return type(value).__module__ == "numpy" and getattr(getattr(value, "dtype", None), "kind", "") in "biuf" \
        and getattr(value, "size", None) == 1
