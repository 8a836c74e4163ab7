"""A tiny task whose scripted program LM rewards specific instructions and demos.

The program shouts words back: the answer to ``"apple"`` is ``"APPLE"``. The
scripted *program* LM answers correctly only when its instruction mentions
`MAGIC_WORD` (or, with `demos_help`, when it sees few-shot demos), so a test can
tell exactly which optimizer changed what.
"""

from __future__ import annotations

import dspy

from dspy_meta.testing.scripted_lm import ScriptedCall

__all__ = ["MAGIC_WORD", "Shout", "shout_metric", "shout_examples", "shout_program_responder",
           "shout_optimizer_responder", "aligning_meta_responder"]

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


def shout_optimizer_responder(call: ScriptedCall) -> dict:
    """Optimizer-LM behaviour: proposes the magic instruction only when *its own* prompt talks about shouting.

    So an inner optimizer helps only after the meta prompt optimizer has aligned its prompts with the task.
    """
    aligned = "shout" in call.instructions.lower()
    instruction = f"Repeat the word in {MAGIC_WORD}." if aligned else "Answer the question carefully."
    return {"proposed_instruction": instruction, "proposed_prefix_for_output_field": "Answer:",
            "new_instruction": instruction, "observations": "Single words.", "summary": "Single lower-case words.",
            "program_description": "Answers a word.", "module_description": "The only module."}


def aligning_meta_responder(call: ScriptedCall) -> dict:
    """Meta-LM behaviour: tells each optimizer prompt that the task is shouting; proposes copro -> bootstrap."""
    import json

    if "new_prompts" in call.output_fields:
        current = json.loads(call.inputs.get("current_prompts", "{}") or "{}")
        new = {name: f"{text} The task: shout each word back in capitals." for name, text in current.items()}
        return {"task_analysis": "Words must be repeated in upper case.", "new_prompts": json.dumps(new)}
    plan = {"op": "sequence", "steps": [{"op": "optimize", "ref": "copro"},
                                        {"op": "optimize", "ref": "bootstrap_fewshot"}]}
    return {"analysis": "Fix the instruction, then add demos.", "plan": json.dumps(plan)}
