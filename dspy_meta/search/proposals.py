"""Everything between the search and the meta LM, in one place: its prompts (the Signatures), how
their inputs are rendered, how its answers are parsed, and the `Proposer` that asks it.

The meta LM's outputs are untrusted: they are parsed and validated here and never executed. An
answer that fails is a `Rejection` whose reason is fed back to the next attempt.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dspy
from dspy.utils.exceptions import AdapterParseError

from dspy_meta.errors import LMCallTimeout
from dspy_meta.optimizers.base import get_kind
from dspy_meta.optimizers.prompts import PromptSet, PromptTemplate
from dspy_meta.optimizers.spec import OptimizerSpec
from dspy_meta.plans.nodes import (
    BestOf, Ensemble, OptimizeStep, PlanLimits, PlanNode, Sequential, TransformStep, strip_json_fence,
)
from dspy_meta.plans.schema import plan_grammar
from dspy_meta.runtime.factory import Runtime
from dspy_meta.runtime.redact import redact
from dspy_meta.runtime.usage import LevelUsage
from dspy_meta.search.candidates import Rejection

__all__ = ["ProposeOptimizerPrompts", "ProposeCompositeOptimizer", "ProposeCompositeOptimizerKeepingClass",
           "composite_request", "Proposer", "Proposal", "render_examples",
           "render_json", "parse_prompt_proposal", "with_guidance", "with_repairs", "feedback_or_note",
           "render_prompt_history", "describe_library",
           "compact_plan", "render_tried_plans", "plan_format"]

GUIDANCE_HEADER = "Task-specific guidance:"
MAX_GUIDANCE_CHARS = 2000
_MAX_PLANS_SHOWN = 6


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
    in `current_prompts`) to their complete new text, or {} for none. Do not invent new prompt names.

    Worked example (another task: dates such as "3 days after 2021-02-27" -> "2021-03-02"):
    task_analysis: Date arithmetic; the answer is one ISO date. Errors come from month lengths and leap years.
    task_guidance: The program adds or subtracts days from a date. A good instruction says to count day by
    day across month ends (February has 28 days, 29 in leap years) and to answer with the date alone, as
    YYYY-MM-DD, with no sentence around it.
    new_prompts: {}"""

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
    parameters with "params". Return `plan` as a single JSON object following `plan_format` exactly.

    Worked example (a task whose short answers must match exactly; optimizers "bootstrap" and "copro"):
    analysis: Demos teach the answer format best, and a normalization step removes the words around it.
    plan: {"op": "sequence", "steps": [{"op": "optimize", "ref": "bootstrap"},
           {"op": "transform", "kind": "normalize", "params": {"steps": "strip,after_answer_label"}}]}"""

    task_examples: str = dspy.InputField(desc="Randomly sampled training examples of the task.")
    available_optimizers: str = dspy.InputField(desc="Optimizers a plan may use: name, what it does, parameters.")
    plan_format: str = dspy.InputField(desc="The JSON grammar of a plan, with an example.")
    tried_plans: str = dspy.InputField(desc="Plans tried so far with their validation scores (higher is better).")
    feedback: str = dspy.InputField(desc="Why the previous proposal was rejected, if it was.")
    analysis: str = dspy.OutputField(desc="What the task needs and why the proposed plan should work.")
    plan: str = dspy.OutputField(desc="The new plan as one JSON object.")


# The same request where plans may not change the program's structure (`PlanLimits.structure` off): its
# worked example uses optimizers only, so the meta LM is not shown a transform it may not use.
ProposeCompositeOptimizerKeepingClass = ProposeCompositeOptimizer.with_instructions(
    ProposeCompositeOptimizer.instructions.split("Worked example", 1)[0]
    + 'Worked example (a task whose short answers must match exactly; optimizers "bootstrap" and "copro"):\n'
    + "analysis: An instruction that names the answer format comes first; demos then show it on real inputs.\n"
    + 'plan: {"op": "sequence", "steps": [{"op": "optimize", "ref": "copro"}, {"op": "optimize", "ref": "bootstrap"}]}')


def composite_request(limits: PlanLimits) -> type[dspy.Signature]:
    """The Signature that asks for a plan under `limits`."""
    return ProposeCompositeOptimizer if getattr(limits, "structure", True) else ProposeCompositeOptimizerKeepingClass


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


# -- prompt proposals ------------------------------------------------------------------------
def with_guidance(template: PromptTemplate, guidance: str) -> PromptTemplate:
    """`template` with its task-guidance paragraph replaced by `guidance` (earlier guidance is dropped)."""
    text = template.instructions.split(f"\n\n{GUIDANCE_HEADER}", 1)[0]
    return PromptTemplate(f"{text}\n\n{GUIDANCE_HEADER} {guidance}", template.field_descriptions)


def parse_prompt_proposal(text: str, current: PromptSet, *, guidance: str = "",
                          repairs: list[str] | None = None) -> dict[str, PromptTemplate]:
    """Validate the meta LM's proposal; raises ValueError with the reason.

    `text` (`new_prompts`) is a JSON object mapping known prompt names to new text (or to
    ``{"instructions": ..., "field_descriptions": ...}`` for fields the prompt already
    describes); empty or ``{}`` means no rewrite. `guidance` (`task_guidance`) replaces the
    guidance paragraph of every current prompt not rewritten (accepted rewrites are kept).
    At least one prompt must actually change. With a `repairs` list, rewrites of prompt names the
    optimizer does not have are dropped (and said there) when the rest of the proposal still changes
    something, rather than refusing the whole proposal (small meta LMs invent names such as ``sort_words``).
    """
    stripped = strip_json_fence(str(text or ""))
    try:
        data = json.loads(stripped) if stripped else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"new_prompts is not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ValueError("new_prompts must be a JSON object of prompt name -> text")
    guidance = " ".join(str(guidance or "").split())
    unknown = set(data) - set(current)
    if unknown:
        message = f"unknown prompt name(s) {sorted(unknown)}; known: {sorted(current)}"
        if repairs is None or not (guidance or set(data) - unknown):
            raise ValueError(message)
        data = {name: value for name, value in data.items() if name not in unknown}
        repairs.append(f"dropped the rewrite of {message}")
    updates = {}
    for name, value in data.items():
        old = current[name]
        if isinstance(value, str):
            if not value.strip():
                raise ValueError(f"prompt {name!r} is empty")
            template = PromptTemplate(value.strip(), old.field_descriptions)
        elif isinstance(value, dict):
            template = PromptTemplate.from_dict({"field_descriptions": dict(old.field_descriptions), **value})
            extra = set(template.field_descriptions) - set(old.field_descriptions)
            if extra:
                raise ValueError(f"prompt {name!r} describes fields {sorted(extra)} it does not have")
        else:
            raise ValueError(f"prompt {name!r} must be a string, got {type(value).__name__}")
        if template != old:
            updates[name] = template
    if len(guidance) > MAX_GUIDANCE_CHARS:
        raise ValueError(f"task_guidance is longer than {MAX_GUIDANCE_CHARS} characters")
    if guidance:
        for name, template in current.items():
            if name not in updates:
                guided = with_guidance(template, guidance)
                if guided != template:
                    updates[name] = guided
    if not updates:
        raise ValueError("the proposal repeats the current prompts and gives no new task guidance")
    return updates


def with_repairs(analysis: str, repairs: list[str], what: str) -> tuple[str, str]:
    """(the analysis with the repairs appended, the note telling the meta LM at its next step), for a
    proposal that was repaired before it ran; ("", analysis unchanged) when nothing was repaired."""
    if not repairs:
        return analysis, ""
    said = "; ".join(repairs)
    return f"{analysis} [repaired: {said}]".strip(), f"Your previous {what} was repaired before it ran: {said}"


def feedback_or_note(feedback: str, note: str) -> str:
    """What the meta LM is told: why its previous attempt was refused, else how its last proposal was repaired."""
    return feedback if feedback != "none" or not note else note


def render_prompt_history(history: list[tuple[PromptSet, float | None]]) -> str:
    ranked = sorted(history, key=lambda item: -1.0 if item[1] is None else item[1])
    blocks = []
    for prompts, score in ranked:
        shown = "failed to run" if score is None else f"{score:.3f}"
        blocks.append(f"score: {shown}\n{render_json({k: t.instructions for k, t in prompts.items()})}")
    return "\n\n".join(blocks)


# -- plan proposals --------------------------------------------------------------------------
def compact_plan(node: PlanNode) -> dict:
    """A plan as the meta LM should see it: optimizers by name and parameters, not full prompts."""
    if isinstance(node, OptimizeStep):
        if node.ref:
            return {"op": "optimize", "ref": node.ref, "params": dict(node.spec.params)}
        return {"op": "optimize", "kind": node.spec.kind, "params": dict(node.spec.params)}
    if isinstance(node, TransformStep):
        return node.to_dict()
    op, key = {Sequential: ("sequence", "steps"), BestOf: ("best_of", "branches"),
               Ensemble: ("ensemble", "members")}[type(node)]
    return {"op": op, key: [compact_plan(child) for child in node.nodes]}


def describe_library(library: Mapping[str, OptimizerSpec]) -> str:
    blocks = []
    for name, spec in library.items():
        kind = get_kind(spec.kind)
        params = "\n".join(f"    {p}: {schema.describe()}" for p, schema in kind.params.items())
        blocks.append(f"- {name} (kind {spec.kind}): {kind.description}\n  current params: "
                      f"{render_json(dict(spec.params))}\n  params:\n{params}")
    return "\n".join(blocks)


def plan_format(library: Mapping[str, OptimizerSpec], limits: PlanLimits) -> str:
    """The plan grammar (generated from the plan models) with an example over the library's names."""
    names = list(library)
    example = {"op": "sequence", "steps": [{"op": "optimize", "ref": names[0]},
                                           {"op": "best_of", "branches": [
                                               {"op": "optimize", "ref": names[-1]},
                                               {"op": "optimize", "ref": names[0], "params": {}}]}]}
    return plan_grammar(names, limits, example)


def render_tried_plans(tried: list[tuple[PlanNode, float | None]]) -> str:
    ranked = sorted(tried, key=lambda item: -1.0 if item[1] is None else item[1])
    shown = ranked[-_MAX_PLANS_SHOWN:]
    return "\n".join(f"score {'failed' if s is None else f'{s:.3f}'}: {render_json(compact_plan(p))}"
                     for p, s in shown)


# -- asking the meta LM ----------------------------------------------------------------------
@dataclass(frozen=True)
class Proposal:
    """A valid answer of the meta LM: the prediction, what `parse` made of it, and what asking cost."""

    prediction: dspy.Prediction
    parsed: Any
    usage: dict[str, LevelUsage]


@dataclass(frozen=True)
class Proposer:
    """Asks the run's meta LM for proposals, with retries, checkpointed answers and seeded sampling."""

    runtime: Runtime
    trainset: list
    seed: int

    def examples(self, k: int, rng: random.Random) -> str:
        return render_examples(self.trainset, k, rng)

    def meta_lm_for(self, key: str) -> dspy.BaseLM:
        """The meta LM with a rollout id per proposal: diverse samples without turning the cache off. The copy
        writes to the meta LM's history (DSPy's copies start their own), so its requests show there."""
        meta_lm = self.runtime.meta_lm
        lm = meta_lm.copy(rollout_id=zlib.crc32(f"{self.seed}:{key}".encode()), temperature=1.0)
        lm.history = meta_lm.history
        return lm

    def propose(self, stage: str, lineage: str, key: str, request: Callable[[str, random.Random], Any],
                parse: Callable[[Any], Any], attempts: int) -> tuple[Proposal | None, list[Rejection]]:
        """Ask up to `attempts` times; returns the first valid proposal (or None) and the rejections before it.

        `request(feedback, rng)` makes the LM call (its answer is checkpointed, so a resumed run does
        not ask again); `parse` validates it and raises on anything invalid; each invalid answer's
        reason is fed back to the next attempt. The rng is derived from the proposal's key, so
        resuming does not shift later samples.
        """
        feedback, rejections = "none", []
        for attempt in range(attempts):
            attempt_key = f"{key}:{attempt}"

            def ask():
                rng = random.Random(f"{self.seed}:{attempt_key}")
                try:
                    with dspy.context(lm=self.meta_lm_for(attempt_key)):
                        return {"outputs": dict(request(feedback, rng).items())}
                except (AdapterParseError, LMCallTimeout) as exc:  # no usable answer: a rejected proposal
                    return {"error": f"{type(exc).__name__}: {redact(exc)}"}

            before = self.runtime.usage()
            answer = self.runtime.checkpointed("proposals", attempt_key, ask)
            usage = {level: u.minus(before[level]) for level, u in self.runtime.usage().items()}
            try:
                if "error" in answer:
                    raise ValueError(answer["error"])
                prediction = dspy.Prediction(**answer["outputs"])
                return Proposal(prediction, parse(prediction), usage), rejections
            except Exception as exc:  # the meta LM's output is untrusted: any failure is a rejection
                reason = redact(exc)
                rejections.append(Rejection(stage, f"invalid proposal: {reason}", lineage,
                                            retried=attempt + 1 < attempts, usage=usage))
                feedback = f"Your previous proposal was rejected: {reason}"
        return None, rejections
