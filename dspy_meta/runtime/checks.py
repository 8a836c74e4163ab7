"""Input checks of a meta-optimization run: data, program inputs, and the user's metric."""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

import dspy

from dspy_meta.errors import TooManyMetricFailures
from dspy_meta.runtime.redact import redact

logger = logging.getLogger(__name__)

__all__ = ["GuardedMetric", "forward_inputs", "data_hash"]


def forward_inputs(student: dspy.Module) -> set[str]:
    """Named parameters the program's forward requires (none when it takes **kwargs only)."""
    try:
        parameters = inspect.signature(student.forward).parameters.values()
    except (TypeError, ValueError):
        return set()
    return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.default is p.empty}


def data_hash(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, default=repr) if not isinstance(data, list) else \
        json.dumps([example.toDict() if isinstance(example, dspy.Example) else repr(example) for example in data],
                   sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class GuardedMetric:
    """The user's metric, checked: a non-number is an error; an exception counts the example as failed.

    After `max_failures` raising examples the next one raises, failing the candidate being scored.
    """

    def __init__(self, metric: Callable, max_failures: int):
        self.metric = metric
        self.max_failures = max_failures
        self.failures = 0
        self._lock = threading.Lock()
        self.__name__ = getattr(metric, "__name__", "metric")

    def reset(self) -> None:
        """Start counting failures afresh (once per candidate)."""
        with self._lock:
            self.failures = 0

    def probe(self, example: dspy.Example) -> None:
        """Score a perfect prediction built from the example's labels, before any LM call."""
        perfect = dspy.Prediction(**example.labels().toDict())
        try:
            value = self.metric(example, perfect, None)
        except Exception as exc:
            raise TypeError(f"the metric raised on a prediction equal to the example's labels: "
                            f"{type(exc).__name__}: {exc}") from exc
        score = _as_score(value)
        if not math.isfinite(score):
            raise TypeError(f"the metric returned {score!r} on a prediction equal to the example's labels; "
                            "scores must be finite numbers")

    def __call__(self, example, prediction, trace=None):
        try:
            value = self.metric(example, prediction, trace)
            _check_finite(value)
        except Exception as exc:
            with self._lock:
                self.failures += 1
                failures = self.failures
            logger.warning("metric raised on an example (%d in this candidate): %s: %s", failures,
                           type(exc).__name__, redact(exc))
            if failures > self.max_failures:
                raise TooManyMetricFailures(f"the metric raised on {failures} examples (max_metric_failures="
                                            f"{self.max_failures})") from exc
            return 0.0
        return _as_score(value) if trace is None else value


def _check_finite(value: Any) -> None:
    """A NaN or infinite score would poison every comparison (NaN > x is False): refuse it as a failure."""
    number = value if isinstance(value, (int, float)) else getattr(value, "score", None)
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError(f"the metric returned {number!r}, not a finite score")


def _as_score(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    score = getattr(value, "score", None)  # dspy.Prediction(score=..., feedback=...) as GEPA metrics return
    if isinstance(score, (int, float)):
        return float(score)
    raise TypeError(f"the metric must return a number or bool, got {type(value).__name__}: {value!r:.80}")
