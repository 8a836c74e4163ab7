"""Verify and retry: sample answers until an LM check accepts one (DSPy's BestOfN idea, with an LLM
verifier as reward, since no label exists at inference time)."""

from __future__ import annotations

import dspy

from dspy_meta.programs.base import TransformedProgram, answer_fields, register_transform, sample

__all__ = ["VerifyAndRetry"]


class CheckAnswer(dspy.Signature):
    """Check whether the proposed answer is a correct and complete answer to the task input. Be strict:
    reject answers with the wrong format, extra text, or mistakes."""

    task_input: str = dspy.InputField(desc="The task's input fields.")
    proposed_answer: str = dspy.InputField(desc="The answer to check.")
    correct: bool = dspy.OutputField(desc="True only if the answer is correct.")


@register_transform
class VerifyAndRetry(TransformedProgram):
    kind = "verify_and_retry"
    description = ("Answer, let an LM check the answer, and sample again (at most `attempts` answers) until the "
                   "check accepts one; else keep the first (up to 2 x `attempts` calls per example).")
    params = {"attempts": (int, 2, 5, 3), "temperature": (float, 0.1, 1.5, 0.7)}

    @classmethod
    def calls_factor(cls, settings):
        return 2 * settings["attempts"], 0

    def build(self) -> None:
        self.check = dspy.Predict(CheckAnswer)

    def forward(self, **inputs):
        first = None
        for attempt in range(self.settings["attempts"]):
            # The first answer is the program's own; later ones are fresh samples.
            prediction = self.program(**inputs) if attempt == 0 else \
                sample(self.program, inputs, attempt, self.settings["temperature"])
            first = first or prediction
            verdict = self.check(task_input=str(inputs), proposed_answer=str(answer_fields(prediction)))
            if verdict.correct is True:
                return prediction
        return first
