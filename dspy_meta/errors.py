"""Every error dspy-meta raises, under one root.

`DspyMetaError` is the root. Each error also keeps its built-in base (a bad plan is still a
`ValueError`, a failed run a `RuntimeError`), so ``except ValueError`` clauses keep working.
The root derives from `BaseException` only so that the run's stop signals can be errors of the
package too: they must pass through the ``except Exception`` blocks of DSPy's evaluator and of
the inner optimizers, as `KeyboardInterrupt` does. Everything else is an `Exception` as usual.
"""

from __future__ import annotations

__all__ = ["DspyMetaError", "ConfigError", "PlanError", "RunFailed", "RunDirError", "StaleResults", "LMCallTimeout",
           "LocalModelError", "BenchmarkDataError", "StopRun", "BudgetExhausted", "PermanentLMError", "RunHalted",
           "TooManyMetricFailures", "BadMetricValue", "MetricError", "StudyMismatch"]


class DspyMetaError(BaseException):
    """Root of every error of dspy-meta (catch this to catch them all)."""


class ConfigError(DspyMetaError, ValueError):
    """An invalid experiment config, budget or usage limit; the message names the key."""


class PlanError(DspyMetaError, ValueError):
    """An invalid plan; the message names the JSON path of the problem."""


class RunFailed(DspyMetaError, RuntimeError):
    """The run stopped on an error retrying cannot fix; finished work is in the run_dir checkpoint."""


class RunDirError(DspyMetaError, ValueError):
    """A run_dir (checkpoint folder) that belongs to other settings or whose manifest is unreadable;
    the message names the file or what changed."""


class StaleResults(DspyMetaError, ValueError):
    """An experiment's output folder holds results of other settings (rerun with ``--force`` to recompute)."""


class StudyMismatch(DspyMetaError, ValueError):
    """An Optuna study that is not this run's: another run's settings, or a worker whose student, data, metric
    or LMs differ from the driver's; the message names what differs."""


class LMCallTimeout(DspyMetaError, TimeoutError):
    """One LM call did not return within the run's per-call timeout; the call counts as failed."""


class LocalModelError(DspyMetaError, RuntimeError):
    """A local model's weights could not be found, assembled or verified."""


class BenchmarkDataError(DspyMetaError, RuntimeError):
    """A benchmark file could not be fetched or failed its checksum."""


class StopRun(DspyMetaError):
    """Ends a meta-optimization run from deep inside DSPy code (a BaseException, see the module doc)."""


class BudgetExhausted(StopRun):
    """A usage limit was reached; the run stops cleanly with the best program so far."""


class PermanentLMError(StopRun):
    """An LM failed in a way retrying cannot fix (authentication, billing, unknown model),
    or stayed unavailable after DSPy's retries (rate limits, timeouts, connection errors)."""

    def __init__(self, level: str, error: BaseException, *, how: str = "failed permanently"):
        from dspy_meta.runtime.redact import redact  # the runtime depends on this module, not the reverse

        super().__init__(f"the {level} LM {how}: {type(error).__name__}: {redact(error)}")
        self.level = level
        self.error = error


class RunHalted(StopRun):
    """Another part of the run, running alongside, stopped it."""


class TooManyMetricFailures(DspyMetaError):
    """The metric raised on more examples than allowed; fails the candidate being scored.

    A BaseException so that DSPy's evaluator, which turns exceptions into zero scores, lets it through.
    """


class MetricError(DspyMetaError, TypeError):
    """The metric returned something that is not a score (a number, a bool, or an object with a ``score``)."""


class BadMetricValue(StopRun):
    """Inside a run: the metric returned a non-number on a real prediction; the run stops with `MetricError`."""
