"""A metric broken on every example, or a student whose forward always raises, is a clear error early
(issue 30, 13), not a baseline of 0.0 and a run that spends every call and returns the student."""

import math

import dspy
import pytest

from dspy_meta.errors import BadMetricValue, MetricError, RunFailed
from dspy_meta.runtime.checks import BROKEN_AFTER, GuardedMetric
from dspy_meta.runtime.scoring import ProgramFailed
from dspy_meta.testing.toy_task import Shout, shout_examples, shout_metric

from ..teleprompters.conftest import TINY, compile_toy, toy_engines

DATA = shout_examples(8), shout_examples(6, offset=8)


def _raises_everywhere(example, prediction, trace=None):
    return float(prediction.answer == example.label)  # examples have no `label`: AttributeError on each


def _nan_everywhere(example, prediction, trace=None):
    return math.nan


@pytest.mark.parametrize("metric, cause", [(_raises_everywhere, "AttributeError"), (_nan_everywhere, "nan")])
@pytest.mark.parametrize("threads", [None, 4])
def test_a_metric_broken_on_every_example_is_a_metric_error_early(metric, cause, threads):
    engines = toy_engines()
    with pytest.raises(MetricError, match=f"the metric fails on every example.*{cause}.*fix the metric"):
        compile_toy(engines, DATA, metric=metric, num_threads=threads)  # default max_metric_failures=10
    # before: the baseline was recorded as 0.0, ~80 program calls were spent and the student came back
    assert len(engines[0].calls) < 30


def test_a_metric_that_raises_only_on_wrong_answers_is_not_broken():
    def strict(example, prediction, trace=None):
        if prediction.answer != example.answer:
            raise ValueError("cannot compare")
        return 1.0

    results = compile_toy(toy_engines(), DATA, metric=strict).meta_results_
    assert results.best_score == 1.0


class _Broken(Shout):
    def forward(self, word):
        answer = self.answer(word=word)
        return answer.missing_field  # every call raises AttributeError, after its LM call


@pytest.mark.parametrize("threads", [None, 4])
def test_a_student_whose_forward_always_raises_fails_the_run_naming_the_cause(threads):
    from dspy_meta import MetaTeleprompter

    engines = toy_engines()
    teleprompter = MetaTeleprompter(shout_metric, budget=TINY, seed=0, display_progress=False, num_threads=threads,
                                    task_model=engines[0].as_lm(), prompt_model=engines[1].as_lm(),
                                    meta_model=engines[2].as_lm(), max_bootstrapped_demos=1, max_labeled_demos=0)
    # Alone, the baseline is scored first; beside it, an inner optimizer's bootstrapping may reach DSPy's
    # max_errors first, which ends the run with the program's own error, as MIPROv2 does.
    expected = RunFailed if threads is None else (RunFailed, AttributeError)
    with pytest.raises(expected, match=r"missing_field") as failure:
        teleprompter.compile(_Broken(), trainset=DATA[0], valset=DATA[1])
    if isinstance(failure.value, RunFailed):
        assert "the program raised on every example" in str(failure.value) and "AttributeError" in str(failure.value)


def test_guarded_metric_judges_a_broken_metric_across_branches():
    metric = GuardedMetric(_raises_everywhere, max_failures=100)
    examples = shout_examples(BROKEN_AFTER)
    prediction = dspy.Prediction(answer="APPLE", reasoning="r")
    branch = metric.branch()
    for example in examples[:-1]:
        assert branch(example, prediction) == 0.0
    with pytest.raises(BadMetricValue, match="fails on every example"):
        metric(examples[-1], prediction)  # the run's count, kept by every branch


def test_guarded_metric_stops_judging_once_the_metric_scored():
    calls = []

    def counted(example, prediction, trace=None):
        calls.append(prediction.answer)
        return shout_metric(example, prediction)

    metric = GuardedMetric(lambda e, p, t=None: counted(e, p) if p.answer == e.answer else math.nan, 100)
    example = shout_examples(1)[0]
    assert metric(example, dspy.Prediction(answer="wrong")) == 0.0  # NaN: failed, then scored corrected
    assert calls == ["APPLE"] and metric.health.works
    assert metric(example, dspy.Prediction(answer="wrong")) == 0.0 and calls == ["APPLE"]  # no more probes


def test_an_unlabelled_example_is_not_judged():
    metric = GuardedMetric(_nan_everywhere, max_failures=100)
    example = dspy.Example(word="a").with_inputs("word")
    for _ in range(BROKEN_AFTER + 1):
        assert metric(example, dspy.Prediction(answer="A")) == 0.0


def test_program_failed_is_a_run_failed_and_a_stop_signal():
    from dspy_meta.errors import StopRun

    assert issubclass(ProgramFailed, RunFailed) and issubclass(ProgramFailed, StopRun)
