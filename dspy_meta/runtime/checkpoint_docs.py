"""What each checkpoint document of a run_dir must hold, checked when it is read back (`check_document`).

A document edited by hand, written by another version or damaged on disk must not reach the resumed run:
a score of ``"1.0"`` (a string) or a call count of ``"5"`` crashed the resume with a TypeError deep in the
search, and a NaN score was accepted (it poisons every comparison). Each known kind has a model with strict
types (JSON numbers only, finite, counts non-negative integers); fields the model does not name are left
alone (later versions may add some). `RunStore.get` sets a document that fails its model aside, naming the
field, and the work is done again.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dspy_meta.runtime.schema import describe_error, error_path

__all__ = ["check_document", "DOCUMENTS"]

_Finite = Annotated[float, Field(allow_inf_nan=False)]
_Count = Annotated[int, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class _Usage(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    calls: _Count = 0
    input_tokens: _Count = 0
    output_tokens: _Count = 0
    cost: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None


class _Document(_Model):
    key: str
    usage: dict[str, _Usage]
    memo: list[list[Any]] = []

    @field_validator("memo")
    @classmethod
    def _pairs(cls, memo: list[list[Any]]) -> list[list[Any]]:
        if any(len(pair) != 2 or not isinstance(pair[0], str) for pair in memo):
            raise ValueError("must be [request key, answer] pairs")
        return memo


class _Baseline(_Document):
    value: _Finite | None
    per_example: list[_Finite] | None = None


class _Candidate(_Document):
    score: _Finite | None
    reason: str
    calls_per_example: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    example_scores: list[_Finite] | None = None
    structure: Any = None
    program_state: dict[str, Any] | None


class _Proposal(_Document):
    value: dict[str, Any]


class _Unfinished(_Model):
    key: str
    usage: dict[str, _Usage]


DOCUMENTS: dict[str, type[BaseModel]] = {"baseline": _Baseline, "candidates": _Candidate, "proposals": _Proposal,
                                         "unfinished": _Unfinished}


def check_document(kind: str, data: dict[str, Any]) -> str | None:
    """Why a document of `kind` cannot be used (naming the field), or None; kinds without a model pass."""
    model = DOCUMENTS.get(kind)
    if model is None:
        return None
    try:
        model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = error_path(first["loc"]) or "the document"
        if first["type"] == "missing":
            return f"field {where!r} is missing"
        return f"field {where!r} {describe_error(first)}, got {first.get('input')!r:.80}"
    return None
