"""Answer repeated predictor calls before DSPy formats them.

Inner optimizers score the same program on the same examples again and again (MIPROv2's
trials, bootstrapping, each candidate's validation). The LM-level `CallMemo` makes those
repeats free of LM calls, but DSPy still formats every request and parses every answer,
which costs about a millisecond of CPU per call and, in Python, holds the GIL. This memo
answers a predictor call whose LM, settings, signature, demos and inputs match an earlier
one with the earlier parsed outputs, before any formatting. It only memoizes requests made
of plain data (strings, numbers, lists, dicts); anything else goes to the adapter as usual.
Adapter callbacks (format/parse spans, e.g. MLflow's) fire only for calls that reach the adapter.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import dspy

from dspy_meta._subclass import SubclassFactory
from dspy_meta.meta.usage import CallMemo, is_client_setting

__all__ = ["AdapterMemo"]

_SCALARS = (int, float, bool, type(None))


class _NotPlain(Exception):
    pass


def _freeze(value: Any) -> Any:
    """A hashable, type-exact copy of plain data (True, 1 and 1.0 stay apart); raises _NotPlain."""
    kind = type(value)
    if kind is str:
        return value
    if kind in _SCALARS:
        return (kind.__name__, value)
    if kind is list or kind is tuple:
        return (kind.__name__, *(_freeze(v) for v in value))
    if kind is dict:
        if not all(type(k) is str for k in value):
            raise _NotPlain
        return ("dict", *sorted((k, _freeze(v)) for k, v in value.items()))
    raise _NotPlain


def _as_dict(demo: Any) -> Any:
    return demo.toDict() if isinstance(demo, dspy.Example) else demo


def _lm_identity(lm) -> tuple:
    # As in the LM-level memo: model, endpoint and request settings, not credentials or client objects.
    kwargs = getattr(lm, "kwargs", None) or {}
    settings = {k: v for k, v in kwargs.items() if not is_client_setting(k)}
    engine = getattr(lm, "engine", None)
    try:  # the engine object itself: two engines serving one model name stay apart (nothing is persisted)
        hash(engine)
    except TypeError:
        engine = type(engine)
    server = kwargs.get("api_base") or kwargs.get("base_url")  # in memory only, never persisted
    return (getattr(lm, "model", None), engine, server, _freeze(settings))


_FIELDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FIELDS_LOCK = threading.Lock()


def _fields(signature) -> tuple:
    """Names, types (the objects: same-named types stay apart) and descriptions of a signature's
    fields. Cached per signature class: DSPy derives a new class for every change of fields."""
    with _FIELDS_LOCK:
        cached = _FIELDS.get(signature)
    if cached is None:
        cached = tuple((name, field.annotation, _freeze(field.json_schema_extra or {}))
                       for name, field in signature.fields.items())
        with _FIELDS_LOCK:
            _FIELDS[signature] = cached
    return cached


def request_key(adapter, lm, lm_kwargs: dict, signature, demos: list, inputs: dict) -> tuple | None:
    """A hashable key of everything the adapter's answer depends on; None when it is not plain data."""
    try:
        return (type(adapter), _lm_identity(lm), _freeze(lm_kwargs), signature.instructions, _fields(signature),
                _freeze([_as_dict(d) for d in demos or []]), _freeze(inputs))
    except (_NotPlain, AttributeError, TypeError):  # not plain data, or an unusual LM / signature: no memo
        return None


def _memo_methods(base: type) -> dict:
    """Methods of the memoizing subclass of an adapter class."""
    def __call__(self, lm, lm_kwargs, signature, demos, inputs):
        key = request_key(self, lm, lm_kwargs, signature, demos, inputs)
        if key is None:
            return base.__call__(self, lm, lm_kwargs, signature, demos, inputs)
        return self._dspy_meta_answers.get_or_call(
            key, lambda: base.__call__(self, lm, lm_kwargs, signature, demos, inputs))

    return {"__call__": __call__}


_MEMOIZING = SubclassFactory(_memo_methods)


class AdapterMemo:
    """Run-scoped parsed answers of predictor calls; `wrap` an adapter to use them."""

    def __init__(self):
        self.answers = CallMemo(checkpointed=False)

    @property
    def hits(self) -> int:
        return self.answers.hits

    def wrap(self, adapter) -> Any:
        """A copy of `adapter` (same class to `isinstance`) that answers repeated calls from the memo."""
        wrapped = _MEMOIZING.copy_of(adapter)
        wrapped._dspy_meta_answers = self.answers
        return wrapped
