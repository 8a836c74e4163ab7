"""An optimizer's own prompts, as data.

A `PromptTemplate` is the learnable part of one Signature an inner optimizer sends
to its LM: the instruction text and the descriptions of its fields. The field
names and types stay those of the Signature (the optimizer's code reads them), so
a template can only rewrite text, never change the interface.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import dspy

__all__ = ["PromptTemplate", "PromptSet"]

MAX_PROMPT_CHARS = 8000


@dataclass(frozen=True)
class PromptTemplate:
    """Instruction text and field descriptions of one optimizer Signature."""

    instructions: str
    field_descriptions: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.instructions, str) or not self.instructions.strip():
            raise ValueError("a prompt's instructions must be a non-empty string")
        if len(self.instructions) > MAX_PROMPT_CHARS:
            raise ValueError(f"a prompt's instructions must be at most {MAX_PROMPT_CHARS} characters")
        descriptions = dict(self.field_descriptions)
        for name, text in descriptions.items():
            if not isinstance(name, str) or not isinstance(text, str):
                raise ValueError(f"field description {name!r} must map a field name to a string")
        object.__setattr__(self, "field_descriptions", MappingProxyType(descriptions))

    @classmethod
    def from_signature(cls, signature: type[dspy.Signature]) -> PromptTemplate:
        """Read the current text of a Signature (e.g. the one installed with DSPy)."""
        descriptions = {}
        for name, info in signature.fields.items():
            desc = (info.json_schema_extra or {}).get("desc")
            # DSPy fills a missing desc with "${name}"; that is a placeholder, not a prompt.
            if isinstance(desc, str) and desc and desc != f"${{{name}}}":
                descriptions[name] = desc
        return cls(instructions=signature.instructions, field_descriptions=descriptions)

    def apply(self, signature: type[dspy.Signature], *, strict: bool = True) -> type[dspy.Signature]:
        """A copy of `signature` carrying this text.

        With ``strict``, describing a field the signature lacks is an error; without it
        such descriptions are skipped (for signatures whose fields vary by settings).
        Results are cached: DSPy copies the whole signature for every field it updates, and
        optimizers rebuild the same signatures for every proposal.
        """
        unknown = set(self.field_descriptions) - set(signature.fields)
        if unknown and strict:
            raise ValueError(f"prompt describes fields {sorted(unknown)} that {signature.__name__} does not have")
        key = (_signature_key(signature), self.instructions, tuple(sorted(self.field_descriptions.items())))
        with _APPLIED_LOCK:
            cached = _APPLIED.get(key)
        if cached is not None:
            return cached
        updated = signature.with_instructions(self.instructions)
        for name, desc in self.field_descriptions.items():
            if name in signature.fields:
                updated = updated.with_updated_fields(name, desc=desc)
        with _APPLIED_LOCK:
            if len(_APPLIED) >= _APPLIED_MAX:
                _APPLIED.clear()
            _APPLIED[key] = updated
        return updated

    def to_dict(self) -> dict[str, Any]:
        return {"instructions": self.instructions, "field_descriptions": dict(self.field_descriptions)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PromptTemplate:
        if not isinstance(data, Mapping):
            raise ValueError(f"a prompt must be an object, got {type(data).__name__}")
        unknown = set(data) - {"instructions", "field_descriptions"}
        if unknown:
            raise ValueError(f"unknown prompt keys {sorted(unknown)}")
        descriptions = data.get("field_descriptions", {})
        if not isinstance(descriptions, Mapping):
            raise ValueError("field_descriptions must be an object")
        return cls(instructions=data.get("instructions"), field_descriptions=descriptions)


_APPLIED: dict[tuple, type[dspy.Signature]] = {}
_APPLIED_LOCK = threading.Lock()
_APPLIED_MAX = 1024


def _signature_key(signature: type[dspy.Signature]) -> tuple:
    """What makes two signatures interchangeable: name, instructions, fields and their settings.

    (Generated signature classes are rebuilt per call, so identity is not a usable key.)
    """
    return (signature.__name__, signature.instructions,
            tuple((name, repr(info.annotation), repr(sorted((info.json_schema_extra or {}).items())))
                  for name, info in signature.fields.items()))


class PromptSet(Mapping):
    """Immutable mapping of stable prompt names to templates."""

    def __init__(self, prompts: Mapping[str, PromptTemplate] | None = None):
        self._prompts = dict(prompts or {})
        for name, prompt in self._prompts.items():
            if not isinstance(prompt, PromptTemplate):
                raise TypeError(f"prompt {name!r} must be a PromptTemplate, got {type(prompt).__name__}")

    def __getitem__(self, name: str) -> PromptTemplate:
        return self._prompts[name]

    def __iter__(self):
        return iter(self._prompts)

    def __len__(self) -> int:
        return len(self._prompts)

    def __eq__(self, other) -> bool:
        return isinstance(other, Mapping) and dict(self) == dict(other)

    def __hash__(self):
        return hash(tuple(sorted((k, v.instructions) for k, v in self._prompts.items())))

    def __repr__(self) -> str:
        return f"PromptSet({sorted(self._prompts)})"

    def replace(self, **updates: PromptTemplate) -> PromptSet:
        unknown = set(updates) - set(self._prompts)
        if unknown:
            raise KeyError(f"unknown prompt names {sorted(unknown)}; known: {sorted(self._prompts)}")
        return PromptSet({**self._prompts, **updates})

    def to_dict(self) -> dict[str, Any]:
        return {name: prompt.to_dict() for name, prompt in self._prompts.items()}
