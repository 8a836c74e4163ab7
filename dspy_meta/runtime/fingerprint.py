"""What identifies a run's inputs on disk: LMs without credentials, and the code of the metric and program.

A checkpoint or a finished result is reused only when these match, so a changed metric, program
class, LM or setting is noticed instead of silently mixed with old work.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import marshal
from collections.abc import Mapping
from typing import Any

from dspy_meta.runtime.redact import is_secret_setting, redact

__all__ = ["lm_identity", "code_hash", "class_code_hash", "changed_keys", "digest"]


def digest(data: Any) -> str:
    """A short hash of JSON-able data (keys sorted)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def lm_identity(lm) -> str:
    """Model and settings of an LM, without credentials (fingerprints are written to disk)."""
    settings = {k: v for k, v in sorted(getattr(lm, "kwargs", {}).items()) if not is_secret_setting(k)}
    return redact(f"{getattr(lm, 'model', type(lm).__name__)} {settings}")


def _code_text(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        if code is not None:  # no source file (a notebook cell, exec'd code): the bytecode and constants
            return repr((marshal.dumps(code.co_code), code.co_consts, code.co_names))
        return getattr(obj, "__qualname__", repr(type(obj)))


def code_hash(fn: Any) -> str:
    """A hash of a callable's code: a function's source (its bytecode when no source is found), a
    partial's function and arguments, or a callable object's class (every class of its own in the MRO)."""
    if isinstance(fn, functools.partial):
        return digest([code_hash(fn.func), repr(fn.args), repr(sorted(fn.keywords.items()))])
    if inspect.isfunction(fn) or inspect.ismethod(fn):
        return digest(_code_text(inspect.unwrap(getattr(fn, "__func__", fn))))
    return class_code_hash(type(fn))


def _class_text(cls: type) -> list:
    """The source of each function a class defines (methods, properties, class and static methods), by name.

    Not `inspect.getsource(cls)`: it finds a class by name, so two classes of one name (defined in a
    function, or redefined in a notebook) would look the same.
    """
    texts = [cls.__qualname__]
    for name, value in sorted(vars(cls).items()):
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            value = value.fget
        if inspect.isfunction(value):
            texts.append((name, _code_text(value)))
    return texts


def class_code_hash(cls: type, skip_packages: tuple[str, ...] = ("dspy", "builtins")) -> str:
    """A hash of the code of `cls` and of every base class outside `skip_packages` (DSPy's own
    classes change with DSPy's version, which the LM settings and results already reflect)."""
    return digest([_class_text(base) for base in cls.__mro__
                   if base.__module__.split(".")[0] not in skip_packages or base is cls])


def changed_keys(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The keys whose values differ between two fingerprints."""
    return sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
