"""Strict pydantic models for user-written settings (budgets, usage limits, configs), with readable errors.

pydantic does the checking (strict types, no unknown keys); this module turns its errors into one
sentence that names the setting, says what it must be and what it got, so a user (or an LLM whose
output is fed back to it) can fix the input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from dspy_meta.errors import ConfigError

__all__ = ["StrictModel", "validated", "describe_error", "error_path", "invalid", "load_yaml"]

Model = TypeVar("Model", bound="StrictModel")


def error_path(loc: tuple, root: str = "") -> str:
    """pydantic's error location as a JSON path: ``('steps', 1, 'ref')`` -> ``plan.steps[1].ref``."""
    path = root
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def describe_error(error: Mapping[str, Any]) -> str:
    """What one pydantic error asks for, in words (without its location)."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be an integer"
    if kind in ("float_type", "float_parsing"):
        return "must be a number"
    if kind in ("string_type",):
        return "must be a string"
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false"
    if kind in ("dict_type", "model_type", "mapping_type"):
        return "must be a mapping"
    if kind in ("list_type",):
        return "must be a list"
    if kind == "greater_than_equal":
        what = "an integer" if isinstance(error.get("input"), int) else "a number"
        return f"must be {what} >= {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"must be <= {ctx.get('le')}"
    if kind == "too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else f"needs at least {ctx.get('min_length')} items"
    message = str(error.get("msg", kind)).removeprefix("Value error, ")
    return message[0].lower() + message[1:] if message else kind


class StrictModel(BaseModel):
    """A frozen model with strict types and no unknown keys, whose errors are `ConfigError` sentences.

    ``_what`` names the kind of setting in messages ("budget", "usage limit").
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    _what: ClassVar[str] = "setting"

    def __init__(self, **data: Any):
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(_sentence(type(self), exc)) from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def replace(self: Model, **changes: Any) -> Model:
        """A validated copy with `changes` applied."""
        return type(self)(**{**self.model_dump(), **changes})


def _sentence(model: type[StrictModel], exc: ValidationError) -> str:
    errors = exc.errors()
    unknown = [e["loc"][0] for e in errors if e["type"] == "extra_forbidden"]
    if unknown:
        known = sorted(model.model_fields)
        return f"unknown {model._what} key(s) {sorted(map(str, unknown))}; known: {known}"
    first = errors[0]
    return f"{model._what} {error_path(first['loc'])!r} {describe_error(first)}, got {first.get('input')!r}"


def validated(model: type[Model], data: Any, what: str | None = None) -> Model:
    """`model` built from a mapping (a `ConfigError` naming the problem otherwise)."""
    if isinstance(data, model):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{what or model._what} settings must be a mapping, got {type(data).__name__}")
    return model(**dict(data))


def invalid(kind: str, detail: str, *, at: str | None = None) -> PydanticCustomError:
    """A validator's error: `detail` is the finished sentence; `at` a sub-path below the field."""
    return PydanticCustomError(kind, "{detail}", {"detail": detail, **({"at": at} if at else {})})


class _AliasFound(Exception):
    pass


class _NoAliasLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing aliases (``*name``): settings have no use for them, and a few nested
    ones (a "billion laughs" document of a few hundred bytes) expand to more values than memory holds
    once the settings are validated, copied or logged."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _AliasFound(f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not allowed; "
                              "write the value out instead of an anchor (&name) and its aliases")
        return super().compose_node(parent, index)


def load_yaml(text: str, source: str) -> Any:
    """User-written YAML settings as Python data; a `ConfigError` naming `source` when it is not YAML or
    uses aliases."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 -- a SafeLoader subclass
    except _AliasFound as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
