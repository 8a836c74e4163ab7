"""The program a compile returns: a fresh copy of the student with the found program's state.

DSPy's optimizers return ``student.deepcopy()`` with only predictor state changed: the user's class, the
user's LM objects, and demos that are `dspy.Example` objects (as bootstrapping leaves them). State copied
through ``dump_state``/``load_state`` comes back with plain-dict demos (and their values serialized), so
the demos are copied here from the found program's predictors themselves.
"""

from __future__ import annotations

import copy
from typing import Any

import dspy

from dspy_meta.programs.base import rebuild, structure_of
from dspy_meta.runtime.program_state import copy_program_state

__all__ = ["keeps_student_class", "returned_program", "as_example"]


def keeps_student_class(student: dspy.Module, program: dspy.Module) -> bool:
    """Whether `program` honours the drop-in contract for `student`: the same class and structure, and the
    same named predictors (so its ``save()`` loads into a fresh ``type(student)()``)."""
    return (type(program) is type(student) and structure_of(program) == structure_of(student)
            and [name for name, _ in program.named_predictors()] == [name for name, _ in student.named_predictors()])


def as_example(demo: Any) -> Any:
    """A demo as DSPy's optimizers leave it: a `dspy.Example` (a copy; a dict becomes one)."""
    if isinstance(demo, dspy.Example):
        try:
            return copy.deepcopy(demo)
        except Exception:  # noqa: BLE001 -- a value that cannot be deep-copied: a shallow copy
            return demo.copy()
    if isinstance(demo, dict):
        return dspy.Example(**demo)
    return demo


def returned_program(student: dspy.Module, program: dspy.Module) -> dspy.Module:
    """A fresh copy of `student` (with `program`'s structure around it, if it has other structure) holding
    `program`'s predictor state: instructions and field prefixes, and its demos as `dspy.Example` copies.
    Each predictor keeps the student's LM (the user's object)."""
    target = copy_program_state(rebuild(student, structure_of(program)), program)
    found = dict(program.named_predictors())
    for name, predictor in target.named_predictors():
        predictor.demos = [as_example(demo) for demo in found[name].demos]
    return target
