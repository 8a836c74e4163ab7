import inspect

import pytest

import dspy_meta
from dspy_meta import errors
from dspy_meta.plans import parse_plan

ERRORS = [cls for _, cls in inspect.getmembers(errors, inspect.isclass) if cls.__module__ == errors.__name__]


def test_every_error_of_the_package_derives_from_the_root_and_is_exported():
    assert len(ERRORS) == len(errors.__all__)
    for cls in ERRORS:
        assert issubclass(cls, dspy_meta.DspyMetaError)
        assert getattr(dspy_meta, cls.__name__) is cls


@pytest.mark.parametrize("name, builtin", [("ConfigError", ValueError), ("PlanError", ValueError),
                                           ("RunFailed", RuntimeError), ("LocalModelError", RuntimeError),
                                           ("BenchmarkDataError", RuntimeError), ("MetricError", TypeError)])
def test_errors_keep_their_builtin_base(name, builtin):
    assert issubclass(getattr(errors, name), builtin)


def test_stop_signals_pass_through_except_exception():
    # DSPy's evaluator and the inner optimizers catch Exception: a stop signal must not be swallowed there.
    for cls in (errors.StopRun, errors.BudgetExhausted, errors.RunHalted, errors.TooManyMetricFailures,
                errors.BadMetricValue):
        assert not issubclass(cls, Exception)


def test_package_code_raises_its_own_errors():
    with pytest.raises(dspy_meta.DspyMetaError):
        parse_plan("{")
    with pytest.raises(dspy_meta.ConfigError, match="unknown usage limit key"):
        dspy_meta.UsageLimits.from_dict({"dollars": 1})
    with pytest.raises(ValueError, match="'prompt_steps' must be an integer >= 0"):
        dspy_meta.MetaBudget(prompt_steps=-1)
