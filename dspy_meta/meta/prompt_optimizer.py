"""Meta prompt optimizer (paper section 3.2, Appendix A.1): rewrite an inner optimizer's own prompts."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import dspy

from dspy_meta.meta.budget import MetaBudget
from dspy_meta.meta.prompts import ProposeOptimizerPrompts, render_examples, render_json
from dspy_meta.meta.search import MetaSearch, SearchContext
from dspy_meta.optimizers.base import get_kind
from dspy_meta.optimizers.prompts import PromptSet, PromptTemplate
from dspy_meta.optimizers.spec import OptimizerSpec
from dspy_meta.plans.nodes import OptimizeStep, strip_json_fence

logger = logging.getLogger(__name__)

__all__ = ["MetaPromptOptimizer", "parse_prompt_proposal", "optimize_prompts", "with_guidance"]



GUIDANCE_HEADER = "Task-specific guidance:"
MAX_GUIDANCE_CHARS = 2000


def with_guidance(template: PromptTemplate, guidance: str) -> PromptTemplate:
    """`template` with its task-guidance paragraph replaced by `guidance` (earlier guidance is dropped)."""
    text = template.instructions.split(f"\n\n{GUIDANCE_HEADER}", 1)[0]
    return PromptTemplate(f"{text}\n\n{GUIDANCE_HEADER} {guidance}", template.field_descriptions)


def parse_prompt_proposal(text: str, current: PromptSet, *, guidance: str = "") -> dict[str, PromptTemplate]:
    """Validate the meta LM's proposal; raises ValueError with the reason.

    `text` (`new_prompts`) is a JSON object mapping known prompt names to new text (or to
    ``{"instructions": ..., "field_descriptions": ...}`` for fields the prompt already
    describes); empty or ``{}`` means no rewrite. `guidance` (`task_guidance`) replaces the
    guidance paragraph of every current prompt not rewritten (accepted rewrites are kept).
    At least one prompt must actually change.
    """
    stripped = strip_json_fence(str(text or ""))
    try:
        data = json.loads(stripped) if stripped else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"new_prompts is not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ValueError("new_prompts must be a JSON object of prompt name -> text")
    unknown = set(data) - set(current)
    if unknown:
        raise ValueError(f"unknown prompt name(s) {sorted(unknown)}; known: {sorted(current)}")
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
    guidance = " ".join(str(guidance or "").split())
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


def optimize_prompts(ctx: SearchContext, name: str, spec: OptimizerSpec, *, steps: int, num_examples: int,
                     attempts: int = 2) -> tuple[OptimizerSpec, float | None]:
    """Initialize, then `steps` rounds of propose / update. Returns the best spec and its score."""
    stage = f"prompt:{name}"
    initial = ctx.evaluate(OptimizeStep(spec, ref=name), f"initial:{name}", best_before=None)
    best_spec, best_score = spec, initial.score
    if not spec.prompts:
        return best_spec, best_score  # nothing to rewrite (e.g. BootstrapFewShot)
    history = [(spec.prompts, initial.score)]
    description = get_kind(spec.kind).description
    for step in range(steps):
        def request(feedback: str, rng):
            return dspy.Predict(ProposeOptimizerPrompts)(
                task_examples=render_examples(ctx.trainset, num_examples, rng),
                optimizer_description=description,
                current_prompts=render_json({k: t.instructions for k, t in best_spec.prompts.items()}),
                history=_render_history(history),
                feedback=feedback,
            )

        def parse(proposal):
            return parse_prompt_proposal(proposal.get("new_prompts", ""), best_spec.prompts,
                                         guidance=proposal.get("task_guidance", ""))

        answer = ctx.propose(stage, f"prompt:{name}:{step}", request, parse, attempts, best_score)
        if answer is None:
            continue
        proposal, updates = answer
        candidate = best_spec.with_prompts(**updates)
        record = ctx.evaluate(OptimizeStep(candidate, ref=name), stage, best_before=best_score,
                              analysis=str(proposal.task_analysis or ""))
        history.append((candidate.prompts, record.score))
        if record.accepted and record.score is not None:
            best_spec, best_score = candidate, record.score
    return best_spec, best_score


def _render_history(history) -> str:
    ranked = sorted(history, key=lambda item: -1.0 if item[1] is None else item[1])
    blocks = []
    for prompts, score in ranked:
        shown = "failed to run" if score is None else f"{score:.3f}"
        blocks.append(f"score: {shown}\n{render_json({k: t.instructions for k, t in prompts.items()})}")
    return "\n\n".join(blocks)


class MetaPromptOptimizer(MetaSearch):
    """Rewrite one inner optimizer's own prompts to fit the task.

    Each step the meta LM sees sampled training examples, the best prompts so far and
    the history of (prompts, score), and proposes new prompts; the inner optimizer runs
    with them, and the candidate is kept only if its program beats the best so far on
    the (same) validation examples. `compile` returns the best program;
    ``meta_results_.best_optimizer`` is the learned `OptimizerSpec`.

    Args:
        optimizer: the inner optimizer's spec (default: COPRO with the budget's breadth/depth).
        See `MetaSearch` for the others.
    """

    def __init__(self, metric: Callable, optimizer: OptimizerSpec | None = None, **kwargs):
        super().__init__(metric, **kwargs)
        self.optimizer = optimizer

    def _planned_candidates(self, budget: MetaBudget) -> int:
        return 1 + budget.prompt_steps

    def _fingerprint(self, budget: MetaBudget) -> dict:
        return {"optimizer_spec": self.optimizer.to_dict() if self.optimizer else None}

    def _validate_settings(self, budget: MetaBudget) -> None:
        if self.optimizer is not None and not isinstance(self.optimizer, OptimizerSpec):
            raise TypeError(f"optimizer must be an OptimizerSpec, got {type(self.optimizer).__name__}")

    def _run_search(self, ctx: SearchContext, budget: MetaBudget) -> None:
        spec = self.optimizer or OptimizerSpec.create("copro", breadth=budget.copro_breadth, depth=budget.copro_depth)
        name = spec.label or spec.kind
        best, _ = optimize_prompts(ctx, name, spec, steps=budget.prompt_steps, num_examples=budget.num_examples,
                                   attempts=budget.proposal_attempts)
        ctx.results.best_optimizers[name] = best.to_dict()
