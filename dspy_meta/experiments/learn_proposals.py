"""The meta LM's part in a learning run: rewrite an inner optimizer's own prompts so that they transfer.

Within one compile (`dspy_meta.search.proposals.ProposeOptimizerPrompts`) the meta LM aligns an optimizer
with the one task at hand. A learning run (`dspy_meta.experiments.learn`) asks for the opposite: prompts
that make the optimizer propose better instructions for a small program model on *every* kind of task,
judged by the optimizer's mean gain over its stock self across the learning tasks. The answer is parsed
and validated (`parse_prompt_proposal`), never executed; an invalid one is asked again once, with the
reason as feedback.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.utils.exceptions import AdapterParseError

from dspy_meta.errors import LMCallTimeout
from dspy_meta.optimizers.base import get_kind
from dspy_meta.optimizers.spec import OptimizerSpec
from dspy_meta.runtime.redact import redact
from dspy_meta.search.proposals import parse_prompt_proposal, render_examples, render_json

__all__ = ["ProposeTransferablePrompts", "PromptProposal", "propose_transferable_prompts",
           "render_task_examples", "render_learning_history"]

EXAMPLE_CHARS = 400        # each rendered example is cut to this
PROMPT_CHARS_SHOWN = 700   # each prompt of a history entry is cut to this (the meta LM's context is small)
HISTORY_SHOWN = 4          # the best entries of the history, and the latest trial when it is not among them
HISTORY_CHARS = 6000       # and no more than this in all (kinds with many prompts: fewer entries)


class ProposeTransferablePrompts(dspy.Signature):
    """You are a meta-optimizer. A prompt optimizer improves the instruction of a small language-model program
    by sending its own prompts (listed in `current_prompts`) to a language model. You rewrite those prompts
    once, and the rewritten optimizer will then be used on MANY tasks, including tasks nobody has seen yet:
    it must propose better instructions for a small program model whatever the task is.

    The examples come from several different tasks. Do not tailor the prompts to any one of them. Study what
    the tasks have in common and where they differ, and what a small model needs from an instruction on any
    task: the exact answer format asked for (the expected answers show it), a short procedure to follow, and
    the pitfalls to avoid. Then rewrite the optimizer's prompts so that the instructions it proposes say
    these things for whatever task it is given, keeping each prompt's role and the inputs it refers to.

    The history lists the prompt sets tried so far with their objective: the mean gain in validation accuracy,
    across the tasks, of the program the optimizer produced over the program stock prompts produced (higher is
    better; 0 is the stock optimizer), and the gain on each task. Keep what raised the objective on most tasks,
    move away from what lowered it.

    Give `optimizer_guidance`: a short paragraph addressed to the optimizer on how to write instructions that
    work for a small model on any task; it is added to every prompt you do not rewrite. Optionally return
    rewritten prompts in `new_prompts`, a JSON object mapping prompt names (a subset of those in
    `current_prompts`) to their complete new text, or {} for none. Do not invent new prompt names."""

    task_examples: str = dspy.InputField(desc="A few training examples of each learning task, task by task.")
    optimizer_description: str = dspy.InputField(desc="What the optimizer does with its prompts.")
    current_prompts: str = dspy.InputField(desc="JSON object: prompt name -> text, of the best optimizer so far.")
    history: str = dspy.InputField(desc="Prompt sets tried so far, with their objective and per-task gains.")
    feedback: str = dspy.InputField(desc="Why the previous proposal was rejected, if it was.")
    analysis: str = dspy.OutputField(desc="What the tasks share and where they differ; what every instruction "
                                          "for a small model must say.")
    optimizer_guidance: str = dspy.OutputField(
        desc="Guidance for the optimizer: how to write instructions that work for a small model on any task.")
    new_prompts: str = dspy.OutputField(desc="JSON object: prompt name -> complete new prompt text, or {}.")


@dataclass(frozen=True)
class PromptProposal:
    """What asking produced: the new spec (None when every attempt was rejected), the analysis, the rejections."""

    spec: OptimizerSpec | None
    analysis: str = ""
    rejections: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.spec is not None, "analysis": self.analysis, "rejections": list(self.rejections),
                "repairs": list(self.repairs)}


def render_task_examples(train_sets: Mapping[str, tuple[str, Sequence[dspy.Example]]], k: int,
                         rng: random.Random) -> str:
    """`k` training examples of each task (name -> (description, examples)), task by task."""
    blocks = []
    for name, (description, examples) in train_sets.items():
        blocks.append(f"=== Task {name}: {description}\n{render_examples(examples, k, rng, EXAMPLE_CHARS)}")
    return "\n\n".join(blocks)


def render_learning_history(entries: Sequence[Mapping[str, Any]]) -> str:
    """The trials so far (``trial``, ``objective``, ``per_task_gain``, ``params``, ``prompts``: name -> text),
    best first: the `HISTORY_SHOWN` best, and the latest one when it is not among them, as many of those as
    fit in `HISTORY_CHARS` (the best one always)."""
    if not entries:
        return "none yet"
    ranked = sorted(entries, key=lambda e: (-e["objective"], e["trial"]))
    shown = ranked[:HISTORY_SHOWN]
    latest = max(entries, key=lambda e: e["trial"])
    if latest not in shown:
        shown.append(latest)
    blocks = []
    for entry in shown:
        gains = ", ".join(f"{task} {gain:+.3f}" for task, gain in entry["per_task_gain"].items())
        prompts = {name: text[:PROMPT_CHARS_SHOWN] for name, text in entry["prompts"].items()}
        label = "stock prompts" if entry["trial"] == 0 else f"trial {entry['trial']}"
        block = (f"{label}: objective {entry['objective']:+.3f} (per task: {gains}); params "
                 f"{json.dumps(entry['params'], sort_keys=True)}\n{render_json(prompts)}")
        if blocks and sum(map(len, blocks)) + len(block) > HISTORY_CHARS:
            continue
        blocks.append(block)
    return "\n\n".join(blocks)


def propose_transferable_prompts(meta_lm: dspy.BaseLM, current: OptimizerSpec, *, task_examples: str,
                                 history: str, key: str, attempts: int = 2) -> PromptProposal:
    """Ask `meta_lm` to rewrite `current`'s prompts for transfer; up to `attempts` tries, each rejection's
    reason fed back to the next. `key` seeds the samples (a rollout id per attempt): a resumed run asks the
    same question the same way. LM failures other than an unparseable or timed-out answer propagate."""
    feedback, rejections = "none", []
    description = get_kind(current.kind).description
    shown = render_json({name: template.instructions for name, template in current.prompts.items()})
    for attempt in range(attempts):
        lm = meta_lm.copy(rollout_id=zlib.crc32(f"{key}:{attempt}".encode()), temperature=1.0)
        try:
            with dspy.context(lm=lm):
                prediction = dspy.Predict(ProposeTransferablePrompts)(
                    task_examples=task_examples, optimizer_description=description, current_prompts=shown,
                    history=history, feedback=feedback)
        except (AdapterParseError, LMCallTimeout) as exc:
            reason = f"no usable answer ({type(exc).__name__}: {redact(exc)})"
        else:
            repairs: list[str] = []
            try:  # the meta LM's output is untrusted: anything invalid is a rejection, with its reason
                updates = parse_prompt_proposal(prediction.get("new_prompts", ""), current.prompts,
                                                guidance=prediction.get("optimizer_guidance", ""), repairs=repairs)
                spec = current.with_prompts(**updates)
            except (ValueError, TypeError, KeyError) as exc:
                reason = redact(exc)
            else:
                return PromptProposal(spec, str(prediction.get("analysis") or ""), rejections, repairs)
        rejections.append(reason)
        feedback = f"Your previous proposal was rejected: {reason}"
    return PromptProposal(None, "", rejections)
