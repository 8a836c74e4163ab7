"""Ensemble: several found programs answer, and the most common answer wins."""

from __future__ import annotations

import dspy

from dspy_meta.programs.base import TransformedProgram, _visible, register_transform, vote

__all__ = ["Ensemble"]


@register_transform
class Ensemble(TransformedProgram):
    kind = "ensemble"
    description = "Run 2 to 4 programs (plans) on each input and answer with their most common answer."

    def __init__(self, members: list[dspy.Module]):
        dspy.Module.__init__(self)
        if not 2 <= len(members) <= 4:
            raise ValueError(f"an ensemble needs 2 to 4 members, got {len(members)}")
        self.members = [_visible(member) for member in members]
        self.settings = {}

    def forward(self, **inputs):
        return vote([member(**inputs) for member in self.members])

    @property
    def structure(self):
        from dspy_meta.programs.base import structure_of

        return {"kind": self.kind, "params": {}, "members": [structure_of(m) for m in self.members]}
