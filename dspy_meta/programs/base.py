"""Program transforms: structure around (or instead of) the student, as validated data.

A transform is a `dspy.Module` built from the program so far and a few bounded parameters; the
meta structure search proposes them as plan nodes (``{"op": "transform", "kind": ..., "params": ...}``)
and nothing in them is code from an LLM. A transformed program is not the student's class: it is
a `TransformedProgram` that records its ``structure`` (kind, params, the structure inside), saves
with `save_program` and loads back with `load_program(path, student)`.
"""

from __future__ import annotations

import json
import os
from abc import abstractmethod
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import dspy

from dspy_meta.runtime.files import write_atomic

__all__ = ["TransformedProgram", "register_transform", "get_transform", "available_transforms", "structure_of",
           "rebuild", "save_program", "load_program", "vote", "answer_fields", "sample", "samples_of"]

_TRANSFORMS: dict[str, type[TransformedProgram]] = {}

# Output fields that carry the program's reasoning, not its answer: never voted on or normalized.
REASONING_FIELDS = frozenset({"reasoning", "rationale"})


def register_transform(cls: type[TransformedProgram]) -> type[TransformedProgram]:
    _TRANSFORMS[cls.kind] = cls
    return cls


def get_transform(kind: str) -> type[TransformedProgram]:
    try:
        return _TRANSFORMS[kind]
    except KeyError:
        raise ValueError(f"unknown transform {kind!r}; available: {available_transforms()}") from None


def available_transforms() -> list[str]:
    return sorted(_TRANSFORMS)


class TransformedProgram(dspy.Module):
    """A program with structure around it. Subclasses set `kind`, `params` (name -> (type, low, high,
    default)) and `calls_factor`, and implement `build`."""

    kind: ClassVar[str]
    description: ClassVar[str]
    params: ClassVar[dict[str, tuple[type, Any, Any, Any]]] = {}

    def __init__(self, program: dspy.Module, **params: Any):
        super().__init__()
        self.program = _visible(program)
        self.settings = self.check_params(params)
        self.build()

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """`params` with defaults filled in; ValueError naming a bad or unknown one."""
        unknown = sorted(set(params) - set(cls.params))
        if unknown:
            raise ValueError(f"transform {cls.kind!r} has no parameter(s) {unknown}; it has {sorted(cls.params)}")
        settings = {}
        for name, (kind, low, high, default) in cls.params.items():
            value = params.get(name, default)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
                raise ValueError(f"transform parameter {name!r} must be {kind.__name__}, got {value!r}")
            size = len(value) if kind is str else value
            # `not low <= size`, not `size < low`: NaN compares False with everything and must fail the check
            if low is not None and not low <= size or high is not None and not size <= high:
                bound = "length " if kind is str else ""
                raise ValueError(f"transform parameter {name!r} must have {bound}between {low} and {high}, "
                                 f"got {value!r:.80}")
            settings[name] = value
        return settings

    @classmethod
    def wrap(cls, program: dspy.Module, params: Mapping[str, Any]) -> TransformedProgram:
        return cls(program, **params)

    @classmethod
    def calls_factor(cls, settings: Mapping[str, Any]) -> tuple[int, int]:
        """(multiplier, extra calls) of the inner program's LM calls per example."""
        return 1, 0

    def build(self) -> None:
        """Create the submodules the transform needs (after `settings` is set)."""

    @abstractmethod
    def forward(self, **inputs):
        ...

    @property
    def structure(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": dict(self.settings), "inner": structure_of(self.program)}


def _visible(program: dspy.Module) -> dspy.Module:
    """`program` with its predictors visible to the wrapper's state: DSPy hides the predictors of a
    module marked compiled (an optimizer's result) from its parent's `named_parameters`."""
    if getattr(program, "_compiled", False):
        program._compiled = False
    return program


def structure_of(program: dspy.Module) -> dict[str, Any] | None:
    """The transforms around a program, outermost first (None for a plain program)."""
    return program.structure if isinstance(program, TransformedProgram) else None


def rebuild(student: dspy.Module, structure: dict[str, Any] | None) -> dspy.Module:
    """A copy of `student` with `structure` around it (state not loaded). `structure` is that of a program
    found from `student`: where it holds the student's own structure (a student that is itself a transformed
    program, compiled again), a copy of the student stands there, not the structure around it once more."""
    if structure is None or structure == structure_of(student):
        return student.deepcopy()
    if "members" in structure:  # an ensemble: one program per member
        return get_transform(structure["kind"])([rebuild(student, m) for m in structure["members"]])
    inner = rebuild(student, structure.get("inner"))
    return get_transform(structure["kind"]).wrap(inner, structure["params"])


def save_program(program: dspy.Module, path: str | os.PathLike) -> None:
    """Write a program's structure and state as one JSON file."""
    document = {"structure": structure_of(program), "state": program.dump_state()}
    write_atomic(Path(path), json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8"))


def load_program(path: str | os.PathLike, student: dspy.Module) -> dspy.Module:
    """A program saved with `save_program`, rebuilt around a fresh instance of the student's class."""
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    program = rebuild(student, document.get("structure"))
    program.load_state(document["state"])
    return program


def sample(program: dspy.Module, inputs: Mapping[str, Any], rollout: int, temperature: float) -> dspy.Prediction:
    """One prediction of `program` from rollout `rollout` of the calling context's LM (samples differ at
    temperature > 0, and each is cached apart)."""
    lm = dspy.settings.lm
    if lm is None:
        return program(**inputs)
    start = int(lm.kwargs.get("rollout_id") or 0)
    with dspy.context(lm=lm.copy(rollout_id=start + rollout, temperature=temperature)):
        return program(**inputs)


def samples_of(program: dspy.Module, inputs: Mapping[str, Any], count: int, temperature: float) -> list:
    return [sample(program, inputs, i, temperature) for i in range(count)]


def answer_fields(prediction: dspy.Prediction) -> dict[str, Any]:
    return {k: v for k, v in prediction.items() if k not in REASONING_FIELDS}


def _vote_key(prediction: dspy.Prediction) -> str:
    return json.dumps({k: " ".join(str(v).split()).lower() for k, v in answer_fields(prediction).items()},
                      sort_keys=True)


def vote(predictions: list[dspy.Prediction]) -> dspy.Prediction:
    """The prediction whose answer (fields other than reasoning, whitespace and case ignored) is the most
    common; ties go to the earliest."""
    if not predictions:
        raise ValueError("nothing to vote on")
    keys = [_vote_key(p) for p in predictions]
    counts = Counter(keys)
    best = max(counts.values())
    return predictions[next(i for i, k in enumerate(keys) if counts[k] == best)]
