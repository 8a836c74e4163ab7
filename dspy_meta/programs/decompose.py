"""Decomposition: analyse first, then answer with the analysis (two chained predictors)."""

from __future__ import annotations

import dspy

from dspy_meta.programs.base import TransformedProgram, register_transform, structure_of

__all__ = ["Decompose"]

DEFAULT_ANALYSIS = ("Analyse the input before anyone answers: say what kind of problem it is, the rule or "
                    "procedure that solves it, and the mistakes to avoid. Do not give the final answer.")


@register_transform
class Decompose(TransformedProgram):
    kind = "decompose"
    description = ("Split the program's one predictor into two chained ones: `analysis` (an instruction, up to "
                   "500 characters) writes an analysis of the input, then the original predictor answers with it "
                   "(one more call per example). Only for single-predictor programs.")
    params = {"analysis": (str, 10, 500, DEFAULT_ANALYSIS)}

    @classmethod
    def calls_factor(cls, settings):
        return 1, 1

    def build(self) -> None:
        if structure_of(self.program) is not None:
            raise ValueError("decompose must come before the other transforms (it replaces the predictor)")
        predictors = self.program.predictors()
        if len(predictors) != 1:
            raise ValueError(f"decompose needs a program with one predictor, this one has {len(predictors)}")
        signature = predictors[0].signature
        inputs = {name: field for name, field in signature.input_fields.items()}
        analyze = dspy.Signature({**inputs, "analysis": dspy.OutputField(desc="The analysis.")},
                                 self.settings["analysis"])
        self.analyze = dspy.Predict(analyze)
        # The original predictor's signature (reasoning included, if it had one), instructions and demos.
        self.answer = dspy.Predict(signature.prepend(
            "analysis", dspy.InputField(desc="An analysis of the input, written beforehand."), str))
        self.answer.demos = list(predictors[0].demos)
        self._inputs = list(inputs)
        self.program = None  # replaced by the two predictors: its state must not be saved twice

    def forward(self, **inputs):
        missing = [name for name in self._inputs if name not in inputs]
        if missing:
            raise ValueError(f"decompose: the program's inputs {missing} were not given")
        analysis = self.analyze(**{name: inputs[name] for name in self._inputs}).analysis
        return self.answer(analysis=analysis, **{name: inputs[name] for name in self._inputs})
