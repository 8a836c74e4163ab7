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

# What `type()` itself puts in every class namespace.
_TYPE_ATTRIBUTES = frozenset(vars(type("_Probe", (), {})))


class SubclassFactory:
    """Makes (once per class) and applies the subclass whose methods `methods(base)` returns."""

    def __init__(self, methods: Callable[[type], dict[str, Any]]):
        self._methods = methods
        self._classes: dict[type, type] = {}
        self._lock = threading.Lock()

    def subclass(self, base: type) -> type:
        with self._lock:
            if base not in self._classes:
                namespace = {**self._methods(base), "__module__": base.__module__, "__doc__": base.__doc__}
                subclass = type(base.__name__, (base,), namespace)
                # A base's __init_subclass__ may re-decorate inherited methods on the new class (DSPy's
                # Adapter wraps format/parse with its callbacks): drop those, so each runs once, as in base.
                # Only methods: what a metaclass records for the class itself (ABC's caches) stays.
                for name in set(vars(subclass)) - set(namespace) - _TYPE_ATTRIBUTES:
                    if callable(getattr(base, name, None)) and callable(vars(subclass)[name]):
                        delattr(subclass, name)
                self._classes[base] = subclass
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
