"""`GuardedMetric`: what a metric value scores; a non-finite one fails the example."""

import logging

import dspy
import numpy as np
import pytest

from dspy_meta.runtime.checks import GuardedMetric

EXAMPLE = dspy.Example(q="x", answer="X").with_inputs("q")


class _Echo(dspy.Module):  # no LM: what is scored is the metric's value alone
    def forward(self, q):
        return dspy.Prediction(answer=q.upper())


def _guarded_score(value) -> float:
    return GuardedMetric(lambda example, prediction: value, max_failures=0)(EXAMPLE, _Echo()(q="x"))


@pytest.mark.parametrize("value, score", [(np.array([0.5]), 0.5), (np.array([[True]]), 1.0),
                                          (dspy.Prediction(score=np.array([0.25])), 0.25)], ids=repr)
def test_a_one_element_array_is_scored_as_its_element(value, score):
    # DSPy's Evaluate sums the values: one element is its score (numpy 2 then fails to round the sum,
    # which MIPROv2 logs and goes on).
    assert _guarded_score(value) == score


@pytest.mark.parametrize("value", [np.float32("nan"), np.float32("inf"), np.array([np.inf]),
                                   dspy.Prediction(score=np.float32("nan")), 10**400],
                         ids=lambda value: repr(value)[:20])
def test_a_non_finite_value_fails_the_example(value, caplog):
    metric = GuardedMetric(lambda example, prediction: value, max_failures=10)
    with caplog.at_level(logging.WARNING, logger="dspy_meta"):
        score = metric(EXAMPLE, _Echo()(q="x"))
    assert score == 0.0 and metric.failures == 1
    assert any("not a finite score" in message for message in caplog.messages)
