"""The metered copy of an LM that `UsageMeter.attach` makes: each call is admitted under the run's limits,
made within the call timeout and the run's thread budget, counted, memoized, and judged when it fails
(a permanent error, an outage: `dspy_meta.runtime.outage`). The caller's LM object is not changed.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time

from dspy.utils.exceptions import LMInvalidRequestError

from dspy_meta.errors import PermanentLMError
from dspy_meta.runtime.calls import RateLimitPatience, call_within, is_rate_limit
from dspy_meta.runtime.subclass import SubclassFactory

__all__ = ["METERED", "CALL_PLACES"]


class _Places:
    """The places under the run's limits that one LM call holds, by meter. Each is given back once: when
    the call is counted (made, it is no longer in flight; counted as both, it would refuse a call too
    early and report one call too many) or when the call ends uncounted."""

    def __init__(self):
        self._meters: set = set()  # filled by `_admitted` before any other thread sees it
        self._lock = threading.Lock()

    def take(self, meter) -> bool:
        """Whether the call still held a place under `meter` (now given up)."""
        with self._lock:
            held = meter in self._meters
            self._meters.discard(meter)
            return held

    def give_back(self) -> None:
        with self._lock:
            meters, self._meters = self._meters, set()
        for meter in meters:
            meter.release()


# The places of the LM call being made; `call_within` carries it to the thread that records the call.
CALL_PLACES: contextvars.ContextVar[_Places | None] = contextvars.ContextVar("dspy_meta_call_places", default=None)


def _admitted(meters) -> _Places:
    """Let a call through every meter (each checks the run's limits and holds a place), or through none:
    when one refuses, the places already taken are given back and the refusal is raised."""
    places = _Places()
    try:
        for meter in meters:
            if meter.before_call():
                places._meters.add(meter)
    except BaseException:
        places.give_back()
        raise
    return places


def _watches(meters) -> list:
    """(meter, outage watch) once per watch: a branch's meter and the run's share the run's watch."""
    seen: dict[int, tuple] = {}
    for meter in meters:
        watch = meter.outage_watch()
        seen.setdefault(id(watch), (meter, watch))
    return list(seen.values())


def _per_request(error: BaseException) -> bool:
    """An error of this request, not of the LM (a prompt too long for the window, a request the provider
    refuses): many in a row are one candidate's problem, not an outage."""
    cause = getattr(error, "__cause__", None)
    if isinstance(error, LMInvalidRequestError) or isinstance(cause, LMInvalidRequestError):
        return True
    return "context window" in str(error).lower()


def _answered(meters) -> None:
    for _, watch in _watches(meters):
        watch.answer()


def _failed(meters, error: Exception) -> None:
    """Judge a failed call: a permanent error or an outage stops the run (`PermanentLMError`)."""
    for meter in meters:
        meter.after_error(error)
    if _per_request(error):
        return
    for meter, watch in _watches(meters):
        how = watch.failure(error)
        if how is not None:
            raise PermanentLMError(meter.level, error, how=how) from error


def _metered_methods(base: type) -> dict:
    """Methods of the metered subclass of an LM class: meter, guard and memoize calls."""
    def metered_call(self, args, kwargs):
        patience = None
        while True:
            places = _admitted(self._dspy_meta_meters)
            current = CALL_PLACES.set(places)
            try:
                with self._dspy_meta_slots or contextlib.nullcontext():
                    started = time.perf_counter()  # inside the slot: time waiting for a thread is not LM time
                    answer = call_within(self._dspy_meta_timeout, lambda: base.__call__(self, *args, **kwargs))
                    elapsed = time.perf_counter() - started
                for meter in self._dspy_meta_meters:
                    meter.add_seconds(elapsed)
                _answered(self._dspy_meta_meters)
                return answer
            except Exception as exc:
                for meter in self._dspy_meta_meters:
                    meter.count_failed()
                if is_rate_limit(exc):  # DSPy's retries gave up after ~7 s: wait longer, within a bound
                    patience = patience or RateLimitPatience(self._dspy_meta_rate_limit_wait)
                    if patience.wait(exc):
                        continue
                _failed(self._dspy_meta_meters, exc)
                raise
            finally:
                places.give_back()
                CALL_PLACES.reset(current)

    def __call__(self, *args, **kwargs):
        for meter in self._dspy_meta_meters:
            meter.check_halted()  # even an answer from the memo: a stopped run does no more work
        memo = self._dspy_meta_memo
        key = memo.key(self, args, kwargs) if memo is not None else None
        if key is None:
            return metered_call(self, args, kwargs)
        made = []
        answer = memo.get_or_call(key, lambda: made.append(True) or metered_call(self, args, kwargs))
        if not made:  # answered from the memo: the run goes on (its failed requests are not an outage)
            _answered(self._dspy_meta_meters)
        return answer

    async def acall(self, *args, **kwargs):
        places = _admitted(self._dspy_meta_meters)
        current = CALL_PLACES.set(places)
        try:
            answer = await base.acall(self, *args, **kwargs)
        except Exception as exc:
            for meter in self._dspy_meta_meters:
                meter.count_failed()
            _failed(self._dspy_meta_meters, exc)
            raise
        finally:
            places.give_back()
            CALL_PLACES.reset(current)
        _answered(self._dspy_meta_meters)
        return answer

    def update_history(self, entry):
        for meter in self._dspy_meta_meters:
            meter.record(entry)
        base.update_history(self, entry)

    def __deepcopy__(self, memo):
        # Run machinery, like the meters it holds: a copied program (a predictor's own LM) shares it.
        return self

    return {"__call__": __call__, "acall": acall, "update_history": update_history, "__deepcopy__": __deepcopy__}


METERED = SubclassFactory(_metered_methods)
