"""Program state without the LM objects: predictor-level LMs (`program.set_lm`) stay the objects they are.

DSPy's ``dump_state`` serializes a predictor's LM and ``load_state`` rebuilds it from that JSON, which
drops ``api_base`` and ``api_key`` and fails for an engine without ``dump_state``. What an optimizer
changes (instructions, field prefixes, demos) is copied here; each predictor keeps its own LM.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import dspy

__all__ = ["program_state", "load_program_state", "copy_program_state", "with_predictor_lms"]


def _without_lm(predictor) -> Any:
    shallow = copy.copy(predictor)
    shallow.lm = None
    return shallow


def program_state(program: dspy.Module) -> dict[str, Any]:
    """``program.dump_state()`` with every predictor's ``lm`` left out (plain JSON data)."""
    return {name: _without_lm(predictor).dump_state() for name, predictor in program.named_predictors()}


def load_program_state(program: dspy.Module, state: dict[str, Any]) -> dspy.Module:
    """Load `program_state` output into `program`; each predictor keeps the LM it has."""
    for name, predictor in program.named_predictors():
        lm = predictor.lm
        predictor.load_state({**state[name], "lm": None})
        predictor.lm = lm
    return program


def copy_program_state(target: dspy.Module, source: dspy.Module) -> dspy.Module:
    """Give `target` the predictor state of `source` (same structure); `target`'s LMs stay in place."""
    return load_program_state(target, program_state(source))


def with_predictor_lms(program: dspy.Module, wrap: Callable[[dspy.BaseLM], dspy.BaseLM]) -> dspy.Module:
    """A deep copy of `program` whose predictor-level LMs are ``wrap(lm)`` (metered copies, say).

    The LM objects are not deep-copied: an LM holds clients and engines that must stay shared.
    """
    lms = [predictor.lm for predictor in program.predictors()]
    memo = {id(lm): lm for lm in lms if lm is not None}
    try:
        clone = copy.deepcopy(program, memo)
    except Exception:  # noqa: BLE001 -- an attribute that cannot be deep-copied: DSPy's own fallback copy
        clone = program.deepcopy()
    wrapped: dict[int, dspy.BaseLM] = {}
    for predictor in clone.predictors():
        if predictor.lm is not None:
            key = id(predictor.lm)
            if key not in wrapped:
                wrapped[key] = wrap(predictor.lm)
            predictor.lm = wrapped[key]
    return clone
