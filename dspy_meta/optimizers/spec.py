"""`OptimizerSpec`: one inner optimizer as serializable data (kind, hyperparameters, prompts)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import dspy
from dspy.teleprompt import Teleprompter

from dspy_meta.optimizers.base import get_kind
from dspy_meta.optimizers.prompts import PromptSet, PromptTemplate

__all__ = ["OptimizerSpec"]

_SPEC_KEYS = {"kind", "params", "prompts", "label"}


@dataclass(frozen=True, eq=False)
class OptimizerSpec:
    """An inner optimizer: its kind, its validated hyperparameters and its own prompts.

    Create with `OptimizerSpec.create("copro", breadth=4)` (defaults filled in, prompts
    read from the installed DSPy) or `OptimizerSpec.from_json(text)`. Specs are
    immutable; `with_prompts` and `with_params` return new ones.
    """

    kind: str
    params: Mapping[str, Any]
    prompts: PromptSet
    label: str | None = None

    def __post_init__(self):
        kind = get_kind(self.kind)
        object.__setattr__(self, "params", MappingProxyType(kind.validate_params(self.params)))
        prompts = self.prompts
        if not isinstance(prompts, PromptSet):
            prompts = PromptSet({name: _as_template(name, p) for name, p in dict(prompts or {}).items()})
        object.__setattr__(self, "prompts", kind.validate_prompts(prompts))
        if self.label is not None and not isinstance(self.label, str):
            raise ValueError("label must be a string")

    # -- construction --------------------------------------------------------
    @classmethod
    def create(cls, kind: str, *, prompts: Mapping[str, PromptTemplate] | None = None,
               label: str | None = None, **params: Any) -> OptimizerSpec:
        return cls(kind=kind, params=params, prompts=PromptSet(prompts), label=label)

    def with_prompts(self, **prompts: PromptTemplate | str) -> OptimizerSpec:
        """Replace some prompts; a plain string replaces only the instruction text."""
        updates = {}
        for name, value in prompts.items():
            if name not in self.prompts:
                raise ValueError(f"{self.kind} has no prompt {name!r}; known: {sorted(self.prompts)}")
            if isinstance(value, str):
                value = PromptTemplate(value, self.prompts[name].field_descriptions)
            updates[name] = value
        return OptimizerSpec(self.kind, self.params, self.prompts.replace(**updates), self.label)

    def with_params(self, **params: Any) -> OptimizerSpec:
        return OptimizerSpec(self.kind, {**self.params, **params}, self.prompts, self.label)

    # -- serialization -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = {"kind": self.kind, "params": dict(self.params), "prompts": self.prompts.to_dict()}
        if self.label is not None:
            data["label"] = self.label
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OptimizerSpec:
        if not isinstance(data, Mapping):
            raise ValueError(f"an optimizer spec must be an object, got {type(data).__name__}")
        unknown = set(data) - _SPEC_KEYS
        if unknown:
            raise ValueError(f"unknown optimizer spec key(s) {sorted(unknown)}; allowed: {sorted(_SPEC_KEYS)}")
        if "kind" not in data:
            raise ValueError("an optimizer spec needs a 'kind'")
        params = data.get("params", {})
        if not isinstance(params, Mapping):
            raise ValueError("'params' must be an object")
        prompts = data.get("prompts", {})
        if not isinstance(prompts, Mapping):
            raise ValueError("'prompts' must be an object")
        return cls(kind=data["kind"], params=params,
                   prompts=PromptSet({name: _as_template(name, p) for name, p in prompts.items()}),
                   label=data.get("label"))

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> OptimizerSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"optimizer spec is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def save(self, path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json(indent=2))

    @classmethod
    def load(cls, path) -> OptimizerSpec:
        with open(path, encoding="utf-8") as f:
            return cls.from_json(f.read())

    def fingerprint(self) -> str:
        """Stable hash of kind, params and prompts (the label is ignored)."""
        data = self.to_dict()
        data.pop("label", None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def __eq__(self, other) -> bool:
        return isinstance(other, OptimizerSpec) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __repr__(self) -> str:
        name = f"{self.label!r}, " if self.label else ""
        return f"OptimizerSpec({name}{self.kind!r}, {dict(self.params)!r})"

    # -- running -------------------------------------------------------------
    def build(
        self,
        metric: Callable,
        *,
        prompt_model: dspy.BaseLM | None = None,
        task_model: dspy.BaseLM | None = None,
        num_threads: int | None = None,
        seed: int = 0,
        teacher_settings: dict | None = None,
    ) -> Teleprompter:
        """A real DSPy Teleprompter that sends this spec's prompts to `prompt_model`.

        `task_model` is the program's LM (None: the LM of the calling context);
        `prompt_model` is the optimizer's own LM (None: the task LM). `teacher_settings` (DSPy settings
        such as ``lm=...``) apply where the optimizer bootstraps demos; kinds that do not bootstrap ignore it.
        """
        if not callable(metric):
            raise TypeError(f"metric must be callable, got {type(metric).__name__}")
        extra = {"teacher_settings": teacher_settings} if teacher_settings else {}  # kinds written before it
        return get_kind(self.kind).build(
            self.params, self.prompts, metric=metric, prompt_model=prompt_model,
            task_model=task_model, num_threads=num_threads, seed=seed, **extra,
        )

    def run(self, student: dspy.Module, *, trainset: list, valset: list | None = None, metric: Callable,
            teacher: dspy.Module | None = None, **build_kwargs: Any) -> dspy.Module:
        """Build and compile in one call; returns the optimized program."""
        teleprompter = self.build(metric, **build_kwargs)
        extra = {"teacher": teacher} if teacher is not None else {}
        return get_kind(self.kind).compile(teleprompter, student, trainset=trainset, valset=valset, **extra)


def _as_template(name: str, value: Any) -> PromptTemplate:
    if isinstance(value, PromptTemplate):
        return value
    try:
        return PromptTemplate.from_dict(value)
    except ValueError as exc:
        raise ValueError(f"prompt {name!r}: {exc}") from None
