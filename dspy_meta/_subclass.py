"""Add behaviour to a user's object (an LM, an adapter) without changing it or DSPy's classes.

A copy of the object gets a subclass of its class that overrides a few methods; `isinstance`
checks still hold. One subclass is made per original class, on first use.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["SubclassFactory"]


class SubclassFactory:
    """Makes (once per class) and applies the subclass whose methods `methods(base)` returns."""

    def __init__(self, methods: Callable[[type], dict[str, Any]]):
        self._methods = methods
        self._classes: dict[type, type] = {}
        self._lock = threading.Lock()

    def subclass(self, base: type) -> type:
        with self._lock:
            if base not in self._classes:
                self._classes[base] = type(base.__name__, (base,), {
                    **self._methods(base), "__module__": base.__module__, "__doc__": base.__doc__})
            return self._classes[base]

    def wraps(self, obj: Any) -> bool:
        """Whether `obj` already has one of this factory's subclasses."""
        with self._lock:
            return type(obj) in self._classes.values()

    def copy_of(self, obj: Any, copier: Callable[[Any], Any] = copy.copy) -> Any:
        """A copy of `obj` with the subclass of its original class (an object already wrapped by this
        factory gets the same subclass, not a subclass of it)."""
        base = type(obj).__mro__[1] if self.wraps(obj) else type(obj)
        wrapped = copier(obj)
        wrapped.__class__ = self.subclass(base)
        return wrapped
