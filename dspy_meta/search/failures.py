"""Which errors raised while a candidate runs are the candidate's failure, and which end the whole run.

A candidate that fails is recorded with its reason and the search goes on. Two kinds of error are not the
candidate's: the run was stopped (an interrupt, a sibling's usage limit, Python shutting down), and the
program failed ``max_errors`` times while an inner optimizer bootstrapped demos. DSPy's `BootstrapFewShot`
raises the last such error once the count reaches ``max_errors`` (its own, else DSPy's ``max_errors``
setting, which `MetaTeleprompter(max_errors=...)` sets for the run), and MIPROv2 lets it end its compile;
a meta run does the same.
"""

from __future__ import annotations

from dspy_meta.errors import RunHalted, StopRun
from dspy_meta.runtime.redact import redact

__all__ = ["BootstrapErrors", "raise_if_not_the_candidates", "raised_while_bootstrapping"]


class BootstrapErrors(StopRun):
    """The program failed ``max_errors`` times while demos were bootstrapped; `error` is the last failure
    (what `MetaSearch.compile` raises, as MIPROv2's compile does)."""

    def __init__(self, error: BaseException):
        super().__init__(f"max_errors reached while bootstrapping demos: {type(error).__name__}: {redact(error)}")
        self.error = error


def _interpreter_stopping(exc: BaseException) -> bool:
    """Whether an error comes from Python shutting down (after Ctrl-C), not from the candidate."""
    return isinstance(exc, RuntimeError) and "interpreter shutdown" in str(exc)


def raised_while_bootstrapping(exc: BaseException) -> bool:
    """Whether `exc` left DSPy's `BootstrapFewShot._bootstrap_one_example`: there a program error is caught
    and counted, and only the one that reaches ``max_errors`` is raised on. (The run's own stop signals and
    `TooManyMetricFailures` are no `Exception`: they pass through that catch uncounted, and are not this.)"""
    if not isinstance(exc, Exception):
        return False
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "_bootstrap_one_example" and \
                frame.f_globals.get("__name__") == "dspy.teleprompt.bootstrap":
            return True
        tb = tb.tb_next
    return False


def raise_if_not_the_candidates(exc: BaseException, halted: str | None) -> None:
    """Raise the run-level stop an error raised by a running candidate means; return when it is the
    candidate's own failure (`halted`: why the run was stopped, None while it runs)."""
    if halted is not None or _interpreter_stopping(exc):
        raise RunHalted(halted or "the interpreter is shutting down") from exc  # nothing is recorded
    if raised_while_bootstrapping(exc):
        raise BootstrapErrors(exc) from exc
