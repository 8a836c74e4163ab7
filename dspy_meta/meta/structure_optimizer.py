"""Meta structure optimizer (paper section 3.3, Appendix A.2): compose optimizers into better plans."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import dspy

from dspy_meta.meta.budget import MetaBudget
from dspy_meta.meta.prompts import ProposeCompositeOptimizer, render_examples, render_json
from dspy_meta.meta.search import MetaSearch, SearchContext
from dspy_meta.optimizers.base import get_kind
from dspy_meta.optimizers.spec import OptimizerSpec
from dspy_meta.plans.nodes import OptimizeStep, PlanLimits, PlanNode, Sequence as SequenceNode, parse_plan

logger = logging.getLogger(__name__)

__all__ = ["MetaStructureOptimizer", "optimize_structure", "as_library"]

_MAX_PLANS_SHOWN = 6


def as_library(optimizers: Mapping[str, OptimizerSpec] | Sequence[OptimizerSpec]) -> dict[str, OptimizerSpec]:
    """Name the input optimizers: a mapping is kept; a list is named by label or kind (``copro_2`` on clashes)."""
    if isinstance(optimizers, Mapping):
        library = dict(optimizers)
    else:
        library = {}
        for spec in optimizers:
            if not isinstance(spec, OptimizerSpec):
                raise TypeError(f"input optimizers must be OptimizerSpec objects, got {type(spec).__name__}")
            base = spec.label or spec.kind
            name, n = base, 2
            while name in library:
                name, n = f"{base}_{n}", n + 1
            library[name] = spec
    for name, spec in library.items():
        if not isinstance(spec, OptimizerSpec):
            raise TypeError(f"input optimizer {name!r} must be an OptimizerSpec, got {type(spec).__name__}")
    if not library:
        raise ValueError("at least one input optimizer is needed")
    return library


def compact(node: PlanNode) -> dict:
    """A plan as the meta LM should see it: optimizers by name and parameters, not full prompts."""
    if isinstance(node, OptimizeStep):
        if node.ref:
            return {"op": "optimize", "ref": node.ref, "params": dict(node.spec.params)}
        return {"op": "optimize", "kind": node.spec.kind, "params": dict(node.spec.params)}
    key = "steps" if isinstance(node, SequenceNode) else "branches"
    return {"op": "sequence" if isinstance(node, SequenceNode) else "best_of",
            key: [compact(child) for child in node.nodes]}


def _describe_library(library: Mapping[str, OptimizerSpec]) -> str:
    blocks = []
    for name, spec in library.items():
        kind = get_kind(spec.kind)
        params = "\n".join(f"    {p}: {schema.describe()}" for p, schema in kind.params.items())
        blocks.append(f"- {name} (kind {spec.kind}): {kind.description}\n  current params: "
                      f"{render_json(dict(spec.params))}\n  params:\n{params}")
    return "\n".join(blocks)


def _plan_format(library: Mapping[str, OptimizerSpec], limits: PlanLimits) -> str:
    names = list(library)
    example = {"op": "sequence", "steps": [{"op": "optimize", "ref": names[0]},
                                           {"op": "best_of", "branches": [
                                               {"op": "optimize", "ref": names[-1]},
                                               {"op": "optimize", "ref": names[0], "params": {}}]}]}
    return (
        'A node is one of:\n'
        '  {"op": "optimize", "ref": NAME, "params": {...optional: lower numeric budgets only}}\n'
        '  {"op": "sequence", "steps": [node, ...]}\n'
        f'  {{"op": "best_of", "branches": [node, node, ...]}}  (2 to {limits.max_branches} branches)\n'
        f"At most {limits.max_steps} optimize nodes and {limits.max_depth} levels of nesting. No other keys.\n"
        f"Available names: {names}\nExample:\n{render_json(example)}"
    )


def optimize_structure(ctx: SearchContext, library: Mapping[str, OptimizerSpec], *, steps: int, num_examples: int,
                       attempts: int = 2, limits: PlanLimits | None = None) -> tuple[PlanNode | None, float | None]:
    """Initialize with each input optimizer, then `steps` proposals of composite plans.

    By default proposed plans may only name the input optimizers and lower their budgets
    (`PlanLimits(refs_only=True, cap_overrides=True)`).
    """
    limits = limits or PlanLimits(refs_only=True, cap_overrides=True)
    tried: list[tuple[PlanNode, float | None]] = []
    best_plan, best_score = None, None
    # The inputs are independent: run side by side, then judged in order, each against those before it.
    inputs = [(name, OptimizeStep(spec, ref=name)) for name, spec in library.items()]
    records = ctx.run_branches(inputs, lambda branch, item: branch.evaluate(
        item[1], f"structure-init:{item[0]}", best_before=None))
    for (_, plan), record in zip(inputs, records, strict=True):
        record.judge(best_score)
        tried.append((plan, record.score))
        if record.accepted:
            best_plan, best_score = plan, record.score
    for step in range(steps):
        def request(feedback: str, rng):
            return dspy.Predict(ProposeCompositeOptimizer)(
                task_examples=render_examples(ctx.trainset, num_examples, rng),
                available_optimizers=_describe_library(library),
                plan_format=_plan_format(library, limits),
                tried_plans=_render_tried(tried),
                feedback=feedback,
            )

        def parse(proposal):
            return parse_plan(str(proposal.plan or ""), library=library, limits=limits)

        answer = ctx.propose("structure", f"structure:{step}", request, parse, attempts, best_score)
        if answer is None:
            continue
        proposal, plan = answer
        record = ctx.evaluate(plan, "structure", best_before=best_score, analysis=str(proposal.analysis or ""))
        tried.append((plan, record.score))
        if record.accepted:
            best_plan, best_score = plan, record.score
    return best_plan, best_score


def _render_tried(tried: list[tuple[PlanNode, float | None]]) -> str:
    ranked = sorted(tried, key=lambda item: -1.0 if item[1] is None else item[1])
    shown = ranked[-_MAX_PLANS_SHOWN:]
    return "\n".join(f"score {'failed' if s is None else f'{s:.3f}'}: {render_json(compact(p))}" for p, s in shown)


class MetaStructureOptimizer(MetaSearch):
    """Find a composite of the input optimizers that produces a better program.

    Initialize by running each input optimizer; then the meta LM proposes composite
    plans (JSON, validated strictly; a rejected plan's reason is fed back to it), each
    is run and scored on validation, and the best is kept.

    Args:
        optimizers: the input optimizer specs, as a list or a name -> spec mapping.
        limits: size limits for proposed plans.
        See `MetaSearch` for the others.
    """

    def __init__(self, metric: Callable, optimizers: Mapping[str, OptimizerSpec] | Sequence[OptimizerSpec],
                 *, limits: PlanLimits | None = None, **kwargs):
        super().__init__(metric, **kwargs)
        self.optimizers = optimizers
        self.limits = limits

    def _validate_settings(self, budget: MetaBudget) -> None:
        as_library(self.optimizers)

    def _planned_candidates(self, budget: MetaBudget) -> int:
        return len(as_library(self.optimizers)) + budget.structure_steps

    def _fingerprint(self, budget: MetaBudget) -> dict:
        return {"inputs": {name: spec.to_dict() for name, spec in as_library(self.optimizers).items()},
                "limits": repr(self.limits)}

    def _run_search(self, ctx: SearchContext, budget: MetaBudget) -> None:
        library = as_library(self.optimizers)
        optimize_structure(ctx, library, steps=budget.structure_steps, num_examples=budget.num_examples,
                           attempts=budget.proposal_attempts, limits=self.limits)
        ctx.results.best_optimizers.update({name: spec.to_dict() for name, spec in library.items()})

