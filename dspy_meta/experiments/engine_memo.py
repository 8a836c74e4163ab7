"""An engine-level memo for deterministic requests: saves wall time, changes no count.

`MemoEngine` wraps a DSPy engine (``complete(Request) -> Response``) and answers a request it
has answered before with the same `Response`, when the request is deterministic (temperature 0
or unset; the local llama.cpp engine is then deterministic). It sits *below* DSPy: DSPy still
sees an ordinary model response with its usage, so call and token counts, caps and the DSPy cache
behave exactly as without it; only the recomputation is skipped. The comparison uses it so that,
e.g., every method's evaluation of the unoptimized program on validation is computed once per
process; wall times are then lower than a cold run's (the comparison's README section says so).
"""

from __future__ import annotations

import threading

import dspy

__all__ = ["MemoEngine", "memo_lm"]


class MemoEngine:
    def __init__(self, engine):
        self.engine = engine
        self.hits = 0
        self._answers: dict[str, object] = {}
        self._lock = threading.Lock()

    def complete(self, request):
        temperature = request.config.temperature
        if temperature not in (None, 0, 0.0):
            return self.engine.complete(request)
        key = repr((request.system, request.messages, request.config))
        with self._lock:
            if key in self._answers:
                self.hits += 1
                return self._answers[key]
        response = self.engine.complete(request)
        with self._lock:
            self._answers[key] = response
        return response

    def stream(self, request):
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        close = getattr(self.engine, "close", None)
        if close is not None:
            close()


def memo_lm(model: str, **kwargs) -> dspy.BaseLM:
    """`dspy_meta.lm.make_lm(model, **kwargs)`, with a `MemoEngine` around a local model's engine
    (other LMs are returned as `make_lm` builds them)."""
    from dspy_meta.lm import make_lm

    return make_lm(model, engine_wrapper=MemoEngine, **kwargs)
