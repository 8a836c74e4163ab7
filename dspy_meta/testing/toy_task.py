"""A tiny task whose scripted program LM rewards specific instructions and demos.

The program shouts words back: the answer to ``"apple"`` is ``"APPLE"``. The
scripted *program* LM answers correctly only when its instruction mentions
`MAGIC_WORD` (or, with `demos_help`, when it sees few-shot demos), so a test can
tell exactly which optimizer changed what.
"""

from __future__ import annotations

import dspy

from dspy_meta.testing.scripted_lm import ScriptedCall

__all__ = ["MAGIC_WORD", "Shout", "shout_metric", "shout_examples", "shout_program_responder"]

MAGIC_WORD = "UPPERCASE"
_WORDS = ["apple", "river", "stone", "cloud", "tiger", "maple", "ocean", "piano", "lemon", "candle",
          "forest", "silver", "garden", "rocket", "window", "planet", "bridge", "pepper", "winter", "castle"]


class Shout(dspy.Module):
    """One-predictor program: answer a word in upper case."""

    def __init__(self):
        super().__init__()
        self.answer = dspy.ChainOfThought("word -> answer")

    def forward(self, word):
        return self.answer(word=word)


def shout_examples(n: int = 20, offset: int = 0) -> list[dspy.Example]:
    words = [_WORDS[(offset + i) % len(_WORDS)] + ("" if (offset + i) < len(_WORDS) else str(offset + i))
             for i in range(n)]
    return [dspy.Example(word=w, answer=w.upper()).with_inputs("word") for w in words]


def shout_metric(example, prediction, trace=None) -> float:
    return float(str(getattr(prediction, "answer", "")).strip() == example.answer)


def shout_program_responder(call: ScriptedCall, *, demos_help: bool = True) -> dict:
    """Program-LM behaviour: correct with the magic word (or demos), else lower case."""
    word = call.inputs.get("word", "")
    has_demos = sum(1 for role, _ in call.messages if role == "assistant") > 0
    correct = MAGIC_WORD in call.instructions or (demos_help and has_demos)
    return {"reasoning": "Shout it.", "answer": word.upper() if correct else word.lower()}
