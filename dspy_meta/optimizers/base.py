"""The abstract base of inner-optimizer kinds, their hyperparameter schema and registry.

A *kind* knows one DSPy optimizer: which hyperparameters it takes (with types and
ranges, so an LLM-written plan can be validated), which Signatures it sends to its
own LM (its learnable prompts), and how to build a Teleprompter that uses given
prompts. Adding an optimizer means writing one small `OptimizerKind` subclass.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import dspy
from dspy.teleprompt import Teleprompter

from dspy_meta.optimizers.prompts import PromptSet
from dspy_meta.runtime.scoring import lm_scope  # noqa: F401 -- the kinds' LM scope, re-exported

__all__ = ["Param", "OptimizerKind", "register_kind", "get_kind", "available_kinds", "lm_scope"]

_TYPE_NAMES = {int: "an integer", float: "a number", bool: "a boolean", str: "a string"}


@dataclass(frozen=True)
class Param:
    """Schema of one hyperparameter: type, default, and allowed range or choices."""

    type: type
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    nullable: bool = False
    help: str = ""

    def validate(self, name: str, value: Any) -> Any:
        """Return `value` (ints widened to float where a float is expected) or raise ValueError."""
        if value is None:
            if self.nullable:
                return None
            raise ValueError(f"parameter {name!r} may not be null")
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        # bool is a subclass of int; a plan that says `"breadth": true` is wrong.
        if not isinstance(value, self.type) or (self.type is not bool and isinstance(value, bool)):
            raise ValueError(f"parameter {name!r} must be {_TYPE_NAMES.get(self.type, self.type.__name__)}, "
                             f"got {value!r}")
        if self.type is float and not math.isfinite(value):
            raise ValueError(f"parameter {name!r} must be finite, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"parameter {name!r} must be one of {list(self.choices)}, got {value!r}")
        if self.low is not None and value < self.low:
            raise ValueError(f"parameter {name!r} must be >= {self.low}, got {value!r}")
        if self.high is not None and value > self.high:
            raise ValueError(f"parameter {name!r} must be <= {self.high}, got {value!r}")
        return value

    def describe(self) -> str:
        """One line for humans and for the meta LM."""
        bits = [_TYPE_NAMES.get(self.type, self.type.__name__)]
        if self.choices is not None:
            bits.append(f"one of {list(self.choices)}")
        if self.low is not None or self.high is not None:
            bits.append(f"in [{self.low}, {self.high}]")
        if self.nullable:
            bits.append("or null")
        bits.append(f"default {self.default!r}")
        text = ", ".join(bits)
        return f"{text}. {self.help}" if self.help else text


class OptimizerKind(ABC):
    """One DSPy optimizer, described well enough to validate, build and run it."""

    name: ClassVar[str]
    description: ClassVar[str]
    params: ClassVar[Mapping[str, Param]] = {}

    @abstractmethod
    def default_prompts(self) -> PromptSet:
        """The optimizer's own prompts as shipped with the installed DSPy."""

    @abstractmethod
    def build(
        self,
        params: Mapping[str, Any],
        prompts: PromptSet,
        *,
        metric: Callable,
        prompt_model: dspy.BaseLM | None,
        task_model: dspy.BaseLM | None,
        num_threads: int | None,
        seed: int,
        teacher_settings: dict | None = None,
    ) -> Teleprompter:
        """A Teleprompter configured with `params` that sends `prompts` to `prompt_model`.

        `teacher_settings` (DSPy settings such as ``lm=...``) apply where the optimizer bootstraps demos.
        """

    def compile(self, teleprompter: Teleprompter, student: dspy.Module, *, trainset: list,
                valset: list | None, teacher: dspy.Module | None = None) -> dspy.Module:
        """Run a built teleprompter (`teacher`: the program demos are bootstrapped with, where the
        optimizer bootstraps); kinds whose `compile` takes no valset or no teacher override this."""
        return teleprompter.compile(student, trainset=trainset, valset=valset, teacher=teacher)

    def validate_params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """All parameters, defaults filled in; unknown names and bad values raise ValueError."""
        params = dict(params or {})
        unknown = set(params) - set(self.params)
        if unknown:
            raise ValueError(f"unknown parameter(s) {sorted(unknown)} for optimizer kind {self.name!r}; "
                             f"known: {sorted(self.params)}")
        return {name: schema.validate(name, params.get(name, schema.default))
                for name, schema in self.params.items()}

    def validate_prompts(self, prompts: Mapping[str, Any] | None) -> PromptSet:
        """Defaults overlaid with `prompts`; unknown prompt names raise ValueError."""
        defaults = self.default_prompts()
        prompts = dict(prompts or {})
        unknown = set(prompts) - set(defaults)
        if unknown:
            raise ValueError(f"unknown prompt name(s) {sorted(unknown)} for optimizer kind {self.name!r}; "
                             f"known: {sorted(defaults)}")
        return defaults.replace(**prompts) if prompts else defaults


_REGISTRY: dict[str, OptimizerKind] = {}


def register_kind(kind: OptimizerKind) -> OptimizerKind:
    """Make `kind` available to specs and plans under `kind.name`."""
    if not getattr(kind, "name", None):
        raise ValueError("an optimizer kind needs a non-empty name")
    _REGISTRY[kind.name] = kind
    return kind


def get_kind(name: str) -> OptimizerKind:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown optimizer kind {name!r}; available: {available_kinds()}") from None


def available_kinds() -> list[str]:
    return sorted(_REGISTRY)
