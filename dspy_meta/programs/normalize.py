"""Output normalization: deterministic clean-up of the program's answer fields, from a fixed menu."""

from __future__ import annotations

import re

import dspy

from dspy_meta.programs.base import REASONING_FIELDS, TransformedProgram, register_transform

__all__ = ["Normalize", "NORMALIZERS"]

# Each step is a fixed function of the text; a plan only chooses which run, in which order.
NORMALIZERS = {
    "strip": str.strip,
    "collapse_spaces": lambda text: " ".join(text.split()),
    "lowercase": str.lower,
    "strip_quotes": lambda text: text.strip().strip("\"'`"),
    "strip_trailing_period": lambda text: text.rstrip().removesuffix("."),
    "after_answer_label": lambda text: re.split(r"(?i)\banswer\s*:", text)[-1].strip(),
    "first_line": lambda text: text.strip().splitlines()[0] if text.strip() else text,
}


@register_transform
class Normalize(TransformedProgram):
    kind = "normalize"
    description = (f"Clean up the answer fields with fixed steps, in order; `steps` is a comma-separated list of "
                   f"{sorted(NORMALIZERS)} (no extra LM calls).")
    params = {"steps": (str, 1, 200, "strip,collapse_spaces")}

    @classmethod
    def check_params(cls, params):
        settings = super().check_params(params)
        steps = [s.strip() for s in settings["steps"].split(",") if s.strip()]
        unknown = [s for s in steps if s not in NORMALIZERS]
        if unknown or not steps:
            raise ValueError(f"normalize steps must come from {sorted(NORMALIZERS)}, got {unknown or steps}")
        return {"steps": ",".join(steps)}

    def forward(self, **inputs):
        prediction = self.program(**inputs)
        fields = dict(prediction.items())
        for name, value in fields.items():
            if name not in REASONING_FIELDS and isinstance(value, str):
                for step in self.settings["steps"].split(","):
                    value = NORMALIZERS[step](value)
                fields[name] = value
        return dspy.Prediction(**fields)
