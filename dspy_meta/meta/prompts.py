"""The meta-optimizers' own prompts, in one readable place.

These Signatures are what the meta LM receives. Their outputs are untrusted: the
proposers parse and validate them (see `proposals.py`) and never execute them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

import dspy

__all__ = ["ProposeOptimizerPrompts", "ProposeCompositeOptimizer", "render_examples", "render_json"]


class ProposeOptimizerPrompts(dspy.Signature):
    """You are a meta-optimizer. An LLM-based prompt optimizer improves the prompts of a language-model
    program. The optimizer itself works by sending its own prompts (listed in `current_prompts`) to a language
    model. Those prompts were written to be general purpose, so they say nothing about the task at hand.

    First study the task examples and analyse the task: its input format, the output it expects, what makes it
    hard, and which mistakes a program is likely to make. Then rewrite the optimizer's prompts so that the
    instructions the optimizer proposes are aligned with this type of task: tell the optimizer what kind of
    task it is optimizing for, what a good instruction for it must cover (format, reasoning procedure,
    pitfalls), and keep each prompt's role and the inputs it refers to. Learn from the history: keep what
    scored well, move away from what did not.

    Give `task_guidance`: a short paragraph addressed to the optimizer that says what kind of task it is
    optimizing for and what a good instruction for it must say; it is added to every prompt you do not rewrite.
    Optionally return rewritten prompts in `new_prompts`, a JSON object mapping prompt names (a subset of those
    in `current_prompts`) to their complete new text, or {} for none. Do not invent new prompt names."""

    task_examples: str = dspy.InputField(desc="Randomly sampled training examples of the task.")
    optimizer_description: str = dspy.InputField(desc="What the optimizer does with its prompts.")
    current_prompts: str = dspy.InputField(desc="JSON object: prompt name -> text, of the best optimizer so far.")
    history: str = dspy.InputField(
        desc="Prompt sets tried so far with the validation score of the program each produced (higher is better).")
    feedback: str = dspy.InputField(desc="Why the previous proposal was rejected, if it was.")
    task_analysis: str = dspy.OutputField(desc="The type of task, its format, and what makes it hard.")
    task_guidance: str = dspy.OutputField(
        desc="Guidance for the optimizer about this task: what a good instruction for it must say.")
    new_prompts: str = dspy.OutputField(desc="JSON object: prompt name -> complete new prompt text, or {}.")


class ProposeCompositeOptimizer(dspy.Signature):
    """You are a meta-optimizer that designs composite optimizers for a language-model program. A composite
    optimizer is a plan that combines the available optimizers: a `sequence` runs steps one after another,
    each on the program the previous step returned; a `best_of` runs branches from the same program and keeps
    the one that scores best on validation. Different optimizers change different things (instructions,
    few-shot demos), so their order and combination matter.

    Study the task examples and the scores of the plans tried so far, reason about which combination suits
    this task, and propose one new plan that is likely to score higher than the best so far. Prefer referring
    to the available optimizers by name with {"op": "optimize", "ref": NAME}; you may override their numeric
    parameters with "params". Return `plan` as a single JSON object following `plan_format` exactly."""

    task_examples: str = dspy.InputField(desc="Randomly sampled training examples of the task.")
    available_optimizers: str = dspy.InputField(desc="Optimizers a plan may use: name, what it does, parameters.")
    plan_format: str = dspy.InputField(desc="The JSON grammar of a plan, with an example.")
    tried_plans: str = dspy.InputField(desc="Plans tried so far with their validation scores (higher is better).")
    feedback: str = dspy.InputField(desc="Why the previous proposal was rejected, if it was.")
    analysis: str = dspy.OutputField(desc="What the task needs and why the proposed plan should work.")
    plan: str = dspy.OutputField(desc="The new plan as one JSON object.")


def render_json(data: Any) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False)


def render_examples(examples: Sequence[dspy.Example], k: int, rng: random.Random, max_chars: int = 600) -> str:
    """`k` examples drawn with `rng`, inputs and labels, each cut to `max_chars`."""
    chosen = rng.sample(list(examples), min(k, len(examples)))
    blocks = []
    for i, example in enumerate(chosen, start=1):
        inputs = example.inputs().toDict()
        labels = example.labels().toDict()
        text = render_json({"inputs": inputs, "expected": labels})
        blocks.append(f"Example {i}:\n{text[:max_chars]}")
    return "\n\n".join(blocks)
