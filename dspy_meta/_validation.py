"""Small checks shared by the parsers of untrusted or user-written mappings (plans, configs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def check_keys(data: Any, path: str, allowed: set[str], required: set[str] = frozenset(),
               error: type[Exception] = ValueError) -> Mapping:
    """`data` if it is a mapping with only `allowed` keys and all `required` ones; else `error` naming `path`."""
    if not isinstance(data, Mapping):
        raise error(f"{path}: must be an object, got {type(data).__name__}")
    unknown = set(data) - allowed
    if unknown:
        raise error(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    missing = required - set(data)
    if missing:
        raise error(f"{path}: missing key(s) {sorted(missing)}")
    return data
