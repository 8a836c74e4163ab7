"""Answer repeated predictor calls before DSPy formats them, and format the rest once per signature.

Inner optimizers score the same program on the same examples again and again (MIPROv2's
trials, bootstrapping, each candidate's validation). The LM-level `CallMemo` makes those
repeats free of LM calls, but DSPy still formats every request and parses every answer,
which costs about a millisecond of CPU per call and, in Python, holds the GIL. This memo
answers a predictor call whose LM, settings, signature, demos and inputs match an earlier
one with the earlier parsed outputs, before any formatting. It only memoizes requests made
of plain data (strings, numbers, lists, dicts); anything else goes to the adapter as usual.
Adapter callbacks (format/parse spans, e.g. MLflow's) fire only for calls that reach the adapter.

Calls that do reach the adapter share most of their messages: the system message depends on
the signature alone and the demo messages on the signature and demos, yet DSPy rebuilds both
for every example (a quarter to half of its CPU per call). With DSPy's own adapters they are
built once per signature (and demos) and reused; an adapter class of the user's (a subclass of
DSPy's) is left alone, since its formatting may depend on more than its arguments.
"""

from __future__ import annotations

import threading
from typing import Any

import cachetools
import dspy

from dspy_meta.runtime.subclass import SubclassFactory
from dspy_meta.runtime.memo import CallMemo, NotPlain, copy_answer, freeze, lm_identity

__all__ = ["AdapterMemo"]


def _as_dict(demo: Any) -> Any:
    return demo.toDict() if isinstance(demo, dspy.Example) else demo


def describe_signature(signature) -> tuple:
    """Instructions, and names, types (the objects: same-named types stay apart) and descriptions
    of the fields: what the adapter renders of a signature."""
    return signature.instructions, tuple((name, field.annotation, freeze(field.json_schema_extra or {}))
                                         for name, field in signature.fields.items())


def request_key(adapter, lm, lm_kwargs: dict, signature, demos: list, inputs: dict,
                memo: AdapterMemo | None = None) -> tuple | None:
    """A hashable key of everything the adapter's answer depends on; None when it is not plain data.

    A `memo` lends its caches of LM identities and signature descriptions.
    """
    try:
        identity = memo.answers.identity(lm) if memo is not None else lm_identity(lm)[0]
        described = memo.describe(signature) if memo is not None else describe_signature(signature)
        return (type(adapter), identity, freeze(lm_kwargs), described,
                freeze([_as_dict(d) for d in demos or []]), freeze(inputs))
    except (NotPlain, AttributeError, TypeError):  # not plain data, or an unusual LM / signature: no memo
        return None


def _formats_as_dspy(cls: type) -> bool:
    """Whether every class `cls` inherits from is one of DSPy's adapters: its system message is then a
    function of the signature, and its demo messages of the signature and demos. A subclass of the
    user's, whatever it overrides, may format from more (its own state), so it is not cached."""
    return all(c is object or c.__module__.startswith("dspy.adapters.") for c in cls.__mro__)


_MAX_CACHED = 4096  # formatted messages kept per adapter: a signature made anew per call must not pile up


class _LRU:
    """A bounded least-recently-used cache that threads may share (cachetools' is not thread-safe)."""

    def __init__(self, size: int = _MAX_CACHED):
        self._cache = cachetools.LRUCache(maxsize=size)
        self._lock = threading.Lock()

    def get(self, key) -> Any:
        with self._lock:
            return self._cache.get(key)

    def put(self, key, value) -> Any:
        with self._lock:
            self._cache[key] = value
        return value

    def __len__(self) -> int:
        return len(self._cache)


def _per_signature(cache: _LRU, signature, compute) -> Any:
    """`compute(signature)`, once per signature class and docstring (DSPy derives a new class for
    every change of fields; instructions can be set in place)."""
    entry = cache.get(signature)
    if entry is None or entry[0] is not signature.__doc__:
        entry = cache.put(signature, (signature.__doc__, compute(signature)))
    return entry[1]


def _memo_methods(base: type) -> dict:
    """Methods of the memoizing subclass of an adapter class."""
    def __call__(self, lm, lm_kwargs, signature, demos, inputs):
        memo = self._dspy_meta_memo
        key = request_key(self, lm, lm_kwargs, signature, demos, inputs, memo)
        if key is None:
            return base.__call__(self, lm, lm_kwargs, signature, demos, inputs)
        return memo.answers.get_or_call(
            key, lambda: base.__call__(self, lm, lm_kwargs, signature, demos, inputs))

    def format_system_message(self, signature) -> str:
        # Every example scored with a signature gets the same system message, and DSPy spends about a
        # quarter of a call's CPU rebuilding it (field types go through pydantic each time): once per class.
        return _per_signature(self._dspy_meta_system_messages, signature,
                              lambda sig: base.format_system_message(self, sig))

    def format_demos(self, signature, demos) -> list:
        # The same demos are formatted again for every example a program is scored on.
        try:
            key = (signature, freeze([_as_dict(d) for d in demos]))
        except NotPlain:
            return base.format_demos(self, signature, demos)
        cache = self._dspy_meta_demo_messages
        messages = cache.get(key)
        if messages is None:
            messages = cache.put(key, base.format_demos(self, signature, demos))
        return copy_answer(messages)

    methods = {"__call__": __call__}
    if _formats_as_dspy(base):
        methods.update(format_system_message=format_system_message, format_demos=format_demos)
    return methods


_MEMOIZING = SubclassFactory(_memo_methods)


class AdapterMemo:
    """Run-scoped parsed answers of predictor calls; `wrap` an adapter to use them."""

    def __init__(self):
        self.answers = CallMemo(checkpointed=False)
        self._signatures = _LRU()  # signature class -> (its docstring, description)

    def describe(self, signature) -> tuple:
        """`describe_signature`, cached per class (asked on every call)."""
        return _per_signature(self._signatures, signature, describe_signature)

    @property
    def hits(self) -> int:
        return self.answers.hits

    @staticmethod
    def cached_messages(adapter) -> dict[str, int]:
        """How many system messages and demo-message sets a wrapped adapter holds (they are bounded)."""
        return {"system": len(adapter._dspy_meta_system_messages), "demos": len(adapter._dspy_meta_demo_messages)}

    def wrap(self, adapter) -> Any:
        """A copy of `adapter` (same class to `isinstance`) that answers repeated calls from the memo."""
        wrapped = _MEMOIZING.copy_of(adapter)
        wrapped._dspy_meta_memo = self
        wrapped._dspy_meta_system_messages = _LRU()  # signature class -> (its docstring, system message)
        wrapped._dspy_meta_demo_messages = _LRU()  # (signature class, frozen demos) -> demo messages
        return wrapped
