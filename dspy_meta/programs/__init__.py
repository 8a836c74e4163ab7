"""Program transforms the structure search may propose: structure around the student, as data."""

from dspy_meta.programs import decompose, ensemble, normalize, self_consistency, verify  # noqa: F401 -- registers
from dspy_meta.programs.base import (
    TransformedProgram, available_transforms, get_transform, load_program, rebuild, save_program, structure_of,
)
from dspy_meta.programs.result import keeps_student_class, returned_program

__all__ = ["TransformedProgram", "available_transforms", "get_transform", "load_program", "rebuild",
           "save_program", "structure_of", "keeps_student_class", "returned_program"]
