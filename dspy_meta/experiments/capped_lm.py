"""A metered LM with a hard call cap, for running DSPy's own optimizers under the same budget as ours.

`capped(lm, meter)` returns a copy of `lm` whose class is a subclass of the original (``isinstance``
checks still hold) that, before each call, checks ``meter.cap`` and raises `CallCapReached` once
`meter.calls` has reached it, and after each call counts it. What counts as a call is what the
project's meta-optimizers count under ``usage_limits={"program_calls": N}``: a request that reached
the model (DSPy cache hits are free), one per ``lm(...)`` call (``n`` samples count once; their
tokens all count). `meter.requests` counts every ``lm(...)`` call, cache hits included: that is
the inference-cost measure (calls per test example).

Copies made by DSPy (``lm.copy(rollout_id=...)``) are shallow and share the meter.
`CallCapReached` is a `BaseException`, like `KeyboardInterrupt`, so that the ``except Exception``
blocks of DSPy's evaluator and optimizers cannot swallow it and keep optimizing on failed scores.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import dspy

from dspy_meta.runtime.subclass import SubclassFactory

__all__ = ["CallCapReached", "CallMeter", "capped", "fresh_dspy_cache"]


class CallCapReached(BaseException):
    """A capped LM was asked for one call more than its cap allows."""


@dataclass
class _Counts:
    calls: int = 0
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


class CallMeter:
    """Counts one level's calls and tokens; with `cap`, refuses the call after the cap is reached."""

    def __init__(self, level: str, cap: int | None = None):
        if cap is not None and (not isinstance(cap, int) or cap < 0):
            raise ValueError(f"cap must be a non-negative integer or None, got {cap!r}")
        self.level = level
        self.cap = cap
        self.cap_hit = False  # a call was refused
        self._counts = _Counts()
        self._in_flight = 0  # calls admitted but not yet counted: concurrent callers cannot overshoot the cap
        self._reserved = threading.local()  # whether this thread's admitted call still holds its place
        self._lock = threading.Lock()

    def __copy__(self):  # LM copies share their meter
        return self

    def __deepcopy__(self, memo):
        return self

    def before_call(self) -> None:
        """Admit one call (it holds a place under the cap until it is counted or ends), or refuse it."""
        with self._lock:
            if self.cap is not None and self._counts.calls + self._in_flight >= self.cap:
                self.cap_hit = True
                raise CallCapReached(f"{self.level} LM call cap {self.cap} reached ({self._counts.calls} used)")
            self._counts.requests += 1
            self._in_flight += 1
            self._reserved.held = True

    def after_call(self) -> None:
        """The admitted call ended: free its place if `record` did not already count it."""
        with self._lock:
            self._free_place()

    def _free_place(self) -> None:
        """This thread's admitted call gives up its place (under the lock)."""
        if getattr(self._reserved, "held", False):
            self._in_flight -= 1
            self._reserved.held = False

    def record(self, entry: dict) -> None:
        usage = entry.get("usage") or {}
        if getattr(entry.get("response"), "cache_hit", False) or not usage:
            return  # a DSPy cache hit: no model call, no tokens
        with self._lock:
            self._free_place()  # its place becomes a counted call
            self._counts.calls += 1
            self._counts.input_tokens += int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
            self._counts.output_tokens += int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)

    @property
    def calls(self) -> int:
        with self._lock:
            return self._counts.calls

    @property
    def requests(self) -> int:
        with self._lock:
            return self._counts.requests

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            c = self._counts
            return {"calls": c.calls, "requests": c.requests, "input_tokens": c.input_tokens,
                    "output_tokens": c.output_tokens}


def _capped_methods(base: type) -> dict:
    def __call__(self, *args, **kwargs):
        meter = self._dspy_meta_call_meter
        meter.before_call()
        try:
            return base.__call__(self, *args, **kwargs)
        finally:
            meter.after_call()

    async def acall(self, *args, **kwargs):
        meter = self._dspy_meta_call_meter
        meter.before_call()
        try:
            return await base.acall(self, *args, **kwargs)
        finally:
            meter.after_call()

    def update_history(self, entry):
        self._dspy_meta_call_meter.record(entry)
        base.update_history(self, entry)

    return {"__call__": __call__, "acall": acall, "update_history": update_history}


_CAPPED = SubclassFactory(_capped_methods)


def capped(lm: dspy.BaseLM, meter: CallMeter) -> dspy.BaseLM:
    """A copy of `lm` that `meter` counts (and caps, when it has a cap); `lm` itself is unchanged.

    Counting happens where DSPy writes the LM's history, so it needs ``disable_history=False``
    (DSPy's default; the comparison sets it explicitly).
    """
    wrapped = _CAPPED.copy_of(lm, copier=lambda original: original.copy())
    wrapped._dspy_meta_call_meter = meter
    return wrapped


class fresh_dspy_cache:
    """Within the block, DSPy's response cache is a new, empty, in-memory one.

    Each optimizer run then starts as it would for a new user (identical requests within the run
    are answered once, nothing is reused from other methods or seeds), so call counts do not
    depend on the order of the runs. Not thread-safe: it swaps the global ``dspy.cache``.
    """

    def __enter__(self):
        from dspy.clients.cache import Cache

        self._saved = dspy.cache
        dspy.cache = Cache(enable_disk_cache=False, enable_memory_cache=True, disk_cache_dir=None)
        return dspy.cache

    def __exit__(self, *exc):
        dspy.cache = self._saved
        return False
