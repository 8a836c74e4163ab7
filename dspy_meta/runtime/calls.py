"""How one LM request is made: within a per-call timeout, and with patience for rate limits.

`call_within(timeout, fn)` runs `fn` in a daemon thread carrying the caller's context (dspy.context)
and gives up after `timeout` seconds with `LMCallTimeout`: a call that never returns cannot hang a
run (the abandoned thread ends with its call; being a daemon, it never blocks the interpreter's exit).
When it gives up it also sets the call's `cancelled()` event: an engine that can (the local llama.cpp
engines) stops work on the abandoned request at its next token, so the requests after it do not wait
behind generations nobody reads.

`RateLimitPatience` decides how long to wait after DSPy's own retries of a rate-limited request gave
up (DSPy waits about 1 + 2 + 4 seconds): the provider's Retry-After when it gave one, else 8, 16, 32, 60,
60, ... seconds, until `max_wait_s` (default 300 s) have been spent waiting on that request; then the
outage ends the run.
"""

from __future__ import annotations

import contextvars
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from dspy.utils.exceptions import LMRateLimitError

from dspy_meta.errors import LMCallTimeout

__all__ = ["call_within", "cancelled", "check_call_timeout", "RateLimitPatience", "is_rate_limit", "DEFAULT_CALL_TIMEOUT_S",
           "DEFAULT_RATE_LIMIT_WAIT_S"]

DEFAULT_CALL_TIMEOUT_S = 600.0
DEFAULT_RATE_LIMIT_WAIT_S = 300.0

_sleep = time.sleep  # tests replace it to observe the waits without waiting


def check_call_timeout(timeout: Any) -> None:
    """Refuse a call_timeout that is not a positive number of seconds a thread can wait (or None: no limit).

    An infinite (or NaN, or too large) one would be accepted and then fail every LM call with
    OverflowError: `threading.Event.wait` takes at most `threading.TIMEOUT_MAX` seconds.
    """
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not 0 < timeout <= threading.TIMEOUT_MAX):
        raise ValueError(f"call_timeout must be a positive, finite number of seconds (at most "
                         f"{threading.TIMEOUT_MAX:g}) or None for no limit, got {timeout!r}")


_CANCELLED: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("dspy_meta_call_cancelled",
                                                                                   default=None)


def cancelled() -> threading.Event | None:
    """The event `call_within` sets when it gives up on the LM call this thread makes (None: no timeout)."""
    return _CANCELLED.get()


def call_within(timeout: float | None, fn: Callable[[], Any]) -> Any:
    """`fn()`, or `LMCallTimeout` when it has not returned after `timeout` seconds (None: no limit)."""
    if timeout is None:
        return fn()
    outcome: list = []
    done, cancel = threading.Event(), threading.Event()
    context = contextvars.copy_context()

    def call() -> Any:
        _CANCELLED.set(cancel)
        return fn()

    def run() -> None:
        try:
            outcome.append((True, context.run(call)))
        except BaseException as exc:  # noqa: BLE001 -- handed back to the caller's thread
            outcome.append((False, exc))
        finally:
            done.set()

    threading.Thread(target=run, name="dspy-meta-lm-call", daemon=True).start()
    if not done.wait(timeout):
        cancel.set()  # the engine may stop generating for it (see the module doc)
        raise LMCallTimeout(f"the LM call did not return within {timeout:g} s (call_timeout)")
    ok, value = outcome[0]
    if ok:
        return value
    raise value


def is_rate_limit(error: BaseException) -> bool:
    cause = getattr(error, "__cause__", None)
    return isinstance(error, LMRateLimitError) or isinstance(cause, LMRateLimitError)


class RateLimitPatience:
    """The waits after a request stayed rate-limited through DSPy's retries (see the module doc)."""

    def __init__(self, max_wait_s: float = DEFAULT_RATE_LIMIT_WAIT_S):
        self.max_wait_s = max_wait_s
        self.waited = 0.0
        self.attempt = 0

    def wait(self, error: BaseException) -> bool:
        """Sleep before the next try and return True, or return False when patience is spent."""
        hint = getattr(error, "retry_after", None)
        if hint is None and getattr(error, "__cause__", None) is not None:
            hint = getattr(error.__cause__, "retry_after", None)
        try:
            hint = float(hint) if hint is not None else None
        except (TypeError, ValueError):
            hint = None
        delay = hint if hint is not None and math.isfinite(hint) and hint > 0 else min(8.0 * 2 ** self.attempt, 60.0)
        if self.waited + delay > self.max_wait_s:
            return False
        self.attempt += 1
        self.waited += delay
        _sleep(delay)
        return True
