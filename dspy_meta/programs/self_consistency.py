"""Self-consistency: sample the program several times and answer by majority vote."""

from __future__ import annotations

from dspy_meta.programs.base import TransformedProgram, register_transform, samples_of, vote

__all__ = ["SelfConsistency"]


@register_transform
class SelfConsistency(TransformedProgram):
    kind = "self_consistency"
    description = ("Sample the program `samples` times at `temperature` and answer with the most common answer "
                   "(costs `samples` times the calls per example).")
    params = {"samples": (int, 2, 9, 5), "temperature": (float, 0.1, 1.5, 0.7)}

    @classmethod
    def calls_factor(cls, settings):
        return settings["samples"], 0

    def forward(self, **inputs):
        return vote(samples_of(self.program, inputs, self.settings["samples"], self.settings["temperature"]))
