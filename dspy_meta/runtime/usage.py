"""LM usage per level (program, optimizer, meta), hard usage limits, and stop signals.

`UsageMeter.attach(lm)` returns a metered copy of an LM: each finished call is counted
(calls, input/output tokens, cost where litellm knows it) as DSPy writes it to the LM's
history; each new call first checks the run's `UsageLimits`; a permanent provider error
(bad key, unknown model) becomes a stop signal, and so does an outage (every call failing the same
way: `dspy_meta.runtime.outage`). The metered copy's methods are in `dspy_meta.runtime.metered_lm`;
the caller's LM object is not changed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Annotated, Any, ClassVar

import dspy
from pydantic import Field
from dspy.utils.exceptions import (
    LMAuthError, LMBillingError, LMConfigurationError, LMUnsupportedModelError, is_retryable_lm_error,
)

from dspy_meta.errors import BudgetExhausted, PermanentLMError, RunHalted
from dspy_meta.runtime.calls import DEFAULT_RATE_LIMIT_WAIT_S
from dspy_meta.runtime.memo import CallMemo
from dspy_meta.runtime.metered_lm import CALL_PLACES, METERED
from dspy_meta.runtime.outage import OutageWatch
from dspy_meta.runtime.schema import StrictModel, validated

__all__ = ["LEVELS", "LevelUsage", "UsageLimits", "UsageMeter", "guard_meters"]

LEVELS = ("program", "optimizer", "meta")
_PERMANENT_ERRORS = (LMAuthError, LMBillingError, LMConfigurationError, LMUnsupportedModelError)


@dataclass
class LevelUsage:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None  # None when the provider reports no price (local and scripted LMs)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LevelUsage:
        return cls(**data)

    def minus(self, other: LevelUsage) -> LevelUsage:
        cost = None if self.cost is None else self.cost - (other.cost or 0.0)
        return LevelUsage(self.calls - other.calls, self.input_tokens - other.input_tokens,
                          self.output_tokens - other.output_tokens, cost)

    def plus(self, other: LevelUsage) -> LevelUsage:
        cost = None if self.cost is None and other.cost is None else (self.cost or 0.0) + (other.cost or 0.0)
        return LevelUsage(self.calls + other.calls, self.input_tokens + other.input_tokens,
                          self.output_tokens + other.output_tokens, cost)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


_Cap = Annotated[int | None, Field(default=None, ge=0, strict=True)]


class UsageLimits(StrictModel):
    """Hard caps on LM use; None means no cap. Tokens count input plus output.

    When a cap is reached no new call starts: the run stops and returns the best
    program so far. Calls already in flight finish, so a cap is exceeded by at most
    the calls running in parallel at that moment.
    """

    _what: ClassVar[str] = "usage limit"

    program_calls: _Cap = None
    optimizer_calls: _Cap = None
    meta_calls: _Cap = None
    total_calls: _Cap = None
    program_tokens: _Cap = None
    optimizer_tokens: _Cap = None
    meta_tokens: _Cap = None
    total_tokens: _Cap = None
    total_cost: Annotated[float | None, Field(default=None, ge=0, strict=False)] = None  # dollars, where litellm knows the price

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UsageLimits:
        return validated(cls, data, "usage limit")

    def exceeded(self, usage: Mapping[str, LevelUsage]) -> str | None:
        """A sentence naming the first cap reached, or None."""
        for level in LEVELS:
            level_usage = usage[level]
            for kind, value in (("calls", level_usage.calls), ("tokens", level_usage.tokens)):
                cap = getattr(self, f"{level}_{kind}")
                if cap is not None and value >= cap:
                    return f"{level} {kind} limit {cap} reached ({value} used)"
        totals = {"calls": sum(u.calls for u in usage.values()), "tokens": sum(u.tokens for u in usage.values()),
                  "cost": sum(u.cost or 0.0 for u in usage.values())}
        for kind, value in totals.items():
            cap = getattr(self, f"total_{kind}")
            if cap is not None and value >= cap:
                return f"total {kind} limit {cap} reached ({value:g} used)"
        return None


class _Guard:
    """Shared by a run's meters: checks the limits across all levels before each call."""

    def __init__(self, limits: UsageLimits | None, meters: Mapping[str, UsageMeter]):
        self.limits = limits
        self.meters = meters
        self.halted: str | None = None
        self._admit = threading.Lock()  # checking the limits and taking a place is one step
        self.outages = {level: OutageWatch() for level in LEVELS}  # each level's failed calls in a row

    def check_halted(self) -> None:
        if self.halted is not None:
            raise RunHalted(self.halted)

    def check(self) -> None:
        self.check_halted()
        if self.limits is None:
            return
        reason = self.limits.exceeded({level: meter.snapshot(pending=True) for level, meter in self.meters.items()})
        if reason:
            raise BudgetExhausted(reason)

    def admit(self, meter: UsageMeter) -> None:
        """Check the limits and let one call of `meter`'s level through, holding its place until it ends:
        calls in flight count against the limits, so concurrent callers cannot overshoot them."""
        with self._admit:
            self.check()
            meter.hold()


class UsageMeter:
    """Counts one level's LM calls; `attach` returns a metered copy of an LM.

    Counting happens where DSPy writes history; DSPy cache hits (no usage) are not
    counted. A provider that reports no usage at all is therefore not counted either. DSPy's
    ``disable_history=True`` also turns counting off; the meta-optimizers turn history on
    for their run.
    """

    def __init__(self, level: str, parent: UsageMeter | None = None):
        self.level = level
        self.parent = parent  # a branch's meter: usage replayed from a checkpoint counts for the run too
        self.guard: _Guard | None = None
        self._usage = LevelUsage()
        self._seconds = 0.0  # wall time inside this level's LM requests, summed over threads (not checkpointed)
        self._in_flight = 0  # calls admitted by the run's guard and not yet ended
        self._lock = threading.Lock()
        self._outage = OutageWatch()  # used only without a run's guard

    def attach(self, lm: dspy.BaseLM, memo: CallMemo | None = None,
               slots: contextlib.AbstractContextManager | None = None, *, call_timeout: float | None = None,
               rate_limit_wait: float | None = None) -> dspy.BaseLM:
        """A metered copy of `lm`; with a `memo`, identical requests are answered once per run.

        `slots` (a context manager held around each request: a semaphore, or a `PrioritySlots`
        slot) caps the requests in flight at once, across every LM that shares it: one thread
        budget for the whole run, however deeply evaluations nest. An LM already metered keeps
        its meters, memo, slots and timeouts and adds this meter. `call_timeout`: seconds one request
        may take (None: no limit); `rate_limit_wait`: seconds to keep waiting on a rate-limited request
        after DSPy's retries (see `dspy_meta.runtime.calls`).
        """
        outer = tuple(getattr(lm, "_dspy_meta_meters", ()))  # an LM metered by a caller keeps its meters
        # Our own copy changes class; the user's LM object and DSPy's classes stay as they are.
        metered = METERED.copy_of(lm, copier=lambda original: original.copy())
        # DSPy's copy starts an empty history; the user's LM object records the calls made with it, as with MIPROv2.
        metered.history = lm.history
        metered._dspy_meta_meters = (*outer, self)
        metered._dspy_meta_memo = memo if memo is not None else getattr(lm, "_dspy_meta_memo", None)
        metered._dspy_meta_slots = slots if slots is not None else getattr(lm, "_dspy_meta_slots", None)
        metered._dspy_meta_timeout = call_timeout if call_timeout is not None else getattr(lm, "_dspy_meta_timeout",
                                                                                           None)
        metered._dspy_meta_rate_limit_wait = rate_limit_wait if rate_limit_wait is not None else getattr(
            lm, "_dspy_meta_rate_limit_wait", DEFAULT_RATE_LIMIT_WAIT_S)
        return metered

    def root_guard(self) -> _Guard | None:
        """The run's guard (a branch's meter reaches it through its parents)."""
        meter = self
        while meter.parent is not None:
            meter = meter.parent
        return meter.guard

    def halt_run(self, cause: BaseException) -> None:
        """From now on, every LM call of the run raises `RunHalted`: a part of the run stopped it,
        and the parts running alongside stop at their next call instead of finishing their work."""
        guard = self.root_guard()
        if guard is not None and guard.halted is None:
            guard.halted = f"stopped alongside: {cause}"

    def outage_watch(self) -> OutageWatch:
        """The run's count of this level's failed calls in a row (`dspy_meta.runtime.outage`)."""
        guard = self.root_guard()
        return guard.outages[self.level] if guard is not None and self.level in guard.outages else self._outage

    def before_call(self) -> bool:
        """Check the run's limits before a call; True when the call now holds a place under them."""
        if self.guard is None:
            return False
        self.guard.admit(self)
        return True

    def hold(self) -> None:
        with self._lock:
            self._in_flight += 1

    @property
    def in_flight(self) -> int:
        """Calls admitted by the run's guard that have not ended yet."""
        with self._lock:
            return self._in_flight

    def release(self) -> None:
        """A call admitted by the guard ended uncounted (or was refused by another meter)."""
        with self._lock:
            self._in_flight -= 1

    def _count_call(self) -> None:
        """Count one call (under the lock): the call's place under the limits, if it holds one, ends with it."""
        self._usage.calls += 1
        places = CALL_PLACES.get()
        if places is not None and places.take(self):
            self._in_flight -= 1

    def check_halted(self) -> None:
        if self.guard is not None:
            self.guard.check_halted()

    def count_failed(self) -> None:
        """Count a call that failed (it may have cost the provider work, and a cap must stop a run whose
        calls all fail); its tokens are unknown."""
        with self._lock:
            self._count_call()

    def after_error(self, error: Exception) -> None:
        cause = getattr(error, "__cause__", None)
        if isinstance(error, _PERMANENT_ERRORS) or isinstance(cause, _PERMANENT_ERRORS):
            raise PermanentLMError(self.level, error) from error
        # DSPy's LM layer already retried these with backoff: what reaches us is an outage.
        if is_retryable_lm_error(error) or (isinstance(cause, Exception) and is_retryable_lm_error(cause)):
            raise PermanentLMError(self.level, error, how="is unavailable after retries") from error

    def record(self, entry: dict) -> None:
        usage = entry.get("usage") or {}
        # DSPy's cache hits reach the history with empty usage (and possibly the original cost): free.
        if getattr(entry.get("response"), "cache_hit", False) or not usage:
            return
        cost = entry.get("cost")
        with self._lock:
            self._count_call()
            self._usage.input_tokens += int(usage.get("prompt_tokens") or 0)
            self._usage.output_tokens += int(usage.get("completion_tokens") or 0)
            if cost is not None:
                self._usage.cost = (self._usage.cost or 0.0) + float(cost)

    def add(self, usage: LevelUsage) -> None:
        """Count usage recorded earlier (a resumed run replays its checkpoints)."""
        if self.parent is not None:
            self.parent.add(usage)
        with self._lock:
            self._usage.calls += usage.calls
            self._usage.input_tokens += usage.input_tokens
            self._usage.output_tokens += usage.output_tokens
            if usage.cost is not None:
                self._usage.cost = (self._usage.cost or 0.0) + usage.cost

    def add_seconds(self, seconds: float) -> None:
        with self._lock:
            self._seconds += seconds

    @property
    def seconds(self) -> float:
        """Seconds spent inside this level's LM requests (answers from the run's memo cost none)."""
        with self._lock:
            return self._seconds

    def snapshot(self, *, pending: bool = False) -> LevelUsage:
        """Usage so far; with `pending`, calls in flight count as made (what the limits are checked on)."""
        with self._lock:
            usage = LevelUsage(**asdict(self._usage))
            if pending:
                usage.calls += self._in_flight
            return usage


def guard_meters(meters: Mapping[str, UsageMeter], limits: UsageLimits | None) -> None:
    """Make every meter check `limits` against the usage of all levels before each call."""
    guard = _Guard(limits, meters)
    for meter in meters.values():
        meter.guard = guard

