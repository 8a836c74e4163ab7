"""When a run's LM is out: every call of a level failing the same way is an outage, not a bad candidate.

DSPy's own retries handle a rate limit or a dropped connection, and `UsageMeter.after_error` turns what
they gave up on (and permanent errors: a bad key, an unknown model) into a stop signal. What DSPy does not
classify reached the search as a failed example: a server that accepts and never answers (every call ends
in `LMCallTimeout`), or an engine that raises an error of its own on every request. Each example then scored
0 and the run spent its whole budget on calls that could not succeed. `OutageWatch` counts, per level of
a run, the calls that failed in a row with the same error (its class and its cause's class): `FIRST_CALLS`
of them before the level's LM ever answered, or `IN_A_ROW` after it did, end the run (`PermanentLMError`,
which the compile reports as `RunFailed`). Any answer starts the count afresh.
"""

from __future__ import annotations

import threading

__all__ = ["OutageWatch", "FIRST_CALLS", "IN_A_ROW"]

FIRST_CALLS = 5  # failures of the same kind, and no answer yet: the LM is dead (or never was reachable)
IN_A_ROW = 20  # failures of the same kind in a row after answers: it died during the run


def _kind(error: BaseException) -> tuple[type, type | None]:
    cause = getattr(error, "__cause__", None)
    return type(error), type(cause) if cause is not None else None


class OutageWatch:
    """One level's run of failed calls (see the module doc); shared by the level's meters of one run."""

    def __init__(self, first_calls: int | None = None, in_a_row: int | None = None):
        self.first_calls = FIRST_CALLS if first_calls is None else first_calls  # read now: tests may change them
        self.in_a_row = IN_A_ROW if in_a_row is None else in_a_row
        self.answered = 0  # calls of the level that returned an answer
        self._kind: tuple | None = None
        self._streak = 0
        self._lock = threading.Lock()

    def answer(self) -> None:
        """A call returned: the LM is up."""
        with self._lock:
            self.answered += 1
            self._kind, self._streak = None, 0

    def failure(self, error: BaseException) -> str | None:
        """Count a failed call; how the level failed (for `PermanentLMError`'s message) when it is an outage."""
        kind = _kind(error)
        with self._lock:
            self._streak = self._streak + 1 if kind == self._kind else 1
            self._kind = kind
            streak, answered = self._streak, self.answered
        if not answered and streak >= self.first_calls:
            return f"failed the same way on each of its first {streak} calls (none answered)"
        if answered and streak >= self.in_a_row:
            return f"failed the same way on {streak} calls in a row"
        return None
