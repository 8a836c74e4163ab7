"""Answer repeated predictor calls before DSPy formats them.

Inner optimizers score the same program on the same examples again and again (MIPROv2's
trials, bootstrapping, each candidate's validation). The LM-level `CallMemo` makes those
repeats free of LM calls, but DSPy still formats every request and parses every answer,
which costs about a millisecond of CPU per call and, in Python, holds the GIL. This memo
answers a predictor call whose LM, settings, signature, demos and inputs match an earlier
one with the earlier parsed outputs, before any formatting. It only memoizes requests made
of plain data (strings, numbers, lists, dicts); anything else goes to the adapter as usual.
"""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

import dspy

from dspy_meta.meta.usage import CallMemo

__all__ = ["AdapterMemo"]

_PLAIN = (str, int, float, bool, type(None))


def _plain(value: Any) -> bool:
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _as_dict(demo: Any) -> Any:
    return demo.toDict() if isinstance(demo, dspy.Example) else demo


def request_key(adapter, lm, lm_kwargs: dict, signature, demos: list, inputs: dict) -> tuple | None:
    """A hashable key of everything the adapter's answer depends on; None when it is not plain data."""
    demos = [_as_dict(d) for d in demos or []]
    if not (_plain(lm_kwargs) and _plain(inputs) and _plain(demos)):
        return None
    fields = []
    for name, field in signature.fields.items():
        extra = field.json_schema_extra or {}
        if not _plain(extra):
            return None
        # The annotation object itself, not its name: two types with one name stay apart.
        fields.append((name, json.dumps(extra, sort_keys=True), field.annotation))
    lm_identity = CallMemo.key(lm, (), {})
    if lm_identity is None:
        return None
    return (type(adapter), lm_identity, json.dumps(lm_kwargs, sort_keys=True), signature.instructions,
            tuple(fields), json.dumps(demos, sort_keys=True), json.dumps(inputs, sort_keys=True))


_MEMO_CLASSES: dict[type, type] = {}
_MEMO_CLASSES_LOCK = threading.Lock()


def _memo_class(base: type) -> type:
    """A subclass of the adapter's class whose calls go through the memo (one per adapter class)."""
    with _MEMO_CLASSES_LOCK:
        if base not in _MEMO_CLASSES:
            def __call__(self, lm, lm_kwargs, signature, demos, inputs):
                key = request_key(self, lm, lm_kwargs, signature, demos, inputs)
                if key is None:
                    return base.__call__(self, lm, lm_kwargs, signature, demos, inputs)
                return self._dspy_meta_answers.get_or_call(
                    key, lambda: base.__call__(self, lm, lm_kwargs, signature, demos, inputs))

            _MEMO_CLASSES[base] = type(base.__name__, (base,), {
                "__call__": __call__, "__module__": base.__module__, "__doc__": base.__doc__})
        return _MEMO_CLASSES[base]


class AdapterMemo:
    """Run-scoped parsed answers of predictor calls; `wrap` an adapter to use them."""

    def __init__(self):
        self.answers = CallMemo(checkpointed=False)

    @property
    def hits(self) -> int:
        return self.answers.hits

    def wrap(self, adapter) -> Any:
        """A copy of `adapter` (same class to `isinstance`) that answers repeated calls from the memo."""
        base = type(adapter).__mro__[1] if hasattr(adapter, "_dspy_meta_answers") else type(adapter)
        wrapped = copy.copy(adapter)
        wrapped.__class__ = _memo_class(base)
        wrapped._dspy_meta_answers = self.answers
        return wrapped
