"""Composite optimizers as declarative plans, and their strict JSON parser.

A plan is a tree of three node types:

- ``{"op": "optimize", "kind": K, "params": {...}, "prompts": {...}}`` runs one inner
  optimizer (``{"op": "optimize", "ref": NAME}`` uses a named spec from a library,
  optionally with ``"params"`` overrides);
- ``{"op": "sequence", "steps": [...]}`` feeds each step the program the previous one returned
  (`Sequential`);
- ``{"op": "best_of", "branches": [...]}`` runs every branch from the same program and
  keeps the one that scores best on validation.

Plans are written by an LLM, so parsing is strict: every unknown key, kind, bad
value, and every plan over the size limits is rejected with its JSON path. The grammar
lives in `dspy_meta.plans.schema` (pydantic models); this module holds the validated
plan objects. Nothing in a plan is executed as code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

from pydantic import TypeAdapter, ValidationError

from dspy_meta.errors import PlanError
from dspy_meta.optimizers.spec import OptimizerSpec
from dspy_meta.plans.schema import EnsembleModel, NodeModel, OptimizeModel, SequenceModel, TransformModel, plan_error

__all__ = ["PlanLimits", "PlanError", "OptimizeStep", "Sequential", "BestOf", "TransformStep", "Ensemble", "PlanNode",
           "calls_factor", "parse_plan",
           "plan_to_json", "plan_from_dict", "plan_json_schema", "strip_json_fence"]


@dataclass(frozen=True)
class PlanLimits:
    """Size and content limits of a plan.

    `refs_only` allows only ``{"op": "optimize", "ref": ...}`` steps (optimizers from the library);
    `cap_overrides` lets a ref's ``params`` lower numeric budgets but never raise them or change
    other settings. The meta structure optimizer uses both, so an LLM-written plan cannot spend
    more per step than the optimizers it was given. `structure` allows transform and ensemble nodes; without
    it a plan's program is always the student's class with the student's predictors (plans of optimize,
    sequence and best_of nodes only).
    """

    max_depth: int = 4
    max_steps: int = 8  # optimize nodes in the whole plan
    max_branches: int = 4
    refs_only: bool = False
    cap_overrides: bool = False
    max_calls_factor: int = 12  # inference LM calls per example, as a multiple of the student's
    structure: bool = True  # transform and ensemble nodes allowed (they change the program's class)


@dataclass(frozen=True)
class OptimizeStep:
    spec: OptimizerSpec
    ref: str | None = None  # library name it came from, kept for readability

    def to_dict(self) -> dict[str, Any]:
        return {"op": "optimize", **self.spec.to_dict()}

    def describe(self) -> str:
        return self.ref or self.spec.label or self.spec.kind

    def steps(self):
        yield self


@dataclass(frozen=True)
class Sequential:
    nodes: tuple[PlanNode, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"op": "sequence", "steps": [n.to_dict() for n in self.nodes]}

    def describe(self) -> str:
        return " -> ".join(_grouped(n) for n in self.nodes)

    def steps(self):
        for node in self.nodes:
            yield from node.steps()


@dataclass(frozen=True)
class BestOf:
    nodes: tuple[PlanNode, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"op": "best_of", "branches": [n.to_dict() for n in self.nodes]}

    def describe(self) -> str:
        return "best_of(" + " | ".join(n.describe() for n in self.nodes) + ")"

    def steps(self):
        for node in self.nodes:
            yield from node.steps()


@dataclass(frozen=True)
class TransformStep:
    """Structure around the program so far (`dspy_meta.programs`): self-consistency, verification, ..."""

    kind: str
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"op": "transform", "kind": self.kind, "params": dict(self.params)}

    def describe(self) -> str:
        shown = {k: (v if not isinstance(v, str) or len(v) <= 24 else v[:21] + "...") for k, v in self.params.items()}
        return f"{self.kind}({', '.join(f'{k}={v}' for k, v in shown.items())})"

    def steps(self):
        return iter(())


@dataclass(frozen=True)
class Ensemble:
    """Every member plan runs from the same program; their programs answer together by vote."""

    nodes: tuple[PlanNode, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"op": "ensemble", "members": [n.to_dict() for n in self.nodes]}

    def describe(self) -> str:
        return "ensemble(" + " | ".join(n.describe() for n in self.nodes) + ")"

    def steps(self):
        for node in self.nodes:
            yield from node.steps()


PlanNode = Union[OptimizeStep, Sequential, BestOf, TransformStep, Ensemble]


def calls_factor(node: PlanNode) -> tuple[int, int]:
    """Inference LM calls per example of the plan's program, as ``(m, e)``: ``m * student calls + e``
    (an upper bound where a best_of's choice is not known yet)."""
    if isinstance(node, OptimizeStep):
        return 1, 0
    if isinstance(node, TransformStep):
        from dspy_meta.programs import get_transform

        transform = get_transform(node.kind)
        return transform.calls_factor(transform.check_params(node.params))
    factors = [calls_factor(child) for child in node.nodes]
    if isinstance(node, Sequential):
        total = (1, 0)
        for m, e in factors:
            total = (m * total[0], m * total[1] + e)
        return total
    if isinstance(node, Ensemble):
        return sum(m for m, _ in factors), sum(e for _, e in factors)
    return max(m for m, _ in factors), max(e for _, e in factors)


def _grouped(node: PlanNode) -> str:
    return f"({node.describe()})" if isinstance(node, Sequential) else node.describe()


def plan_to_json(node: PlanNode, **kwargs: Any) -> str:
    return json.dumps(node.to_dict(), **kwargs)


_FENCE = re.compile(r"^```(?:json)?\s*\n(.*)\n```\s*$", re.S)


def strip_json_fence(text: str) -> str:
    """LLM output with its surrounding whitespace and one optional ```json fence removed."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    return fenced.group(1) if fenced else stripped


def parse_plan(text: str, *, library: Mapping[str, OptimizerSpec] | None = None,
               limits: PlanLimits | None = None, repairs: list[str] | None = None) -> PlanNode:
    """Parse and validate a plan from JSON text (a single ```json fence is allowed).

    With a `repairs` list, near-valid plans are repaired instead of refused (a budget raised over its cap
    is lowered to the cap) and each repair is described in the list.
    """
    if not isinstance(text, str):
        raise PlanError(f"plan must be JSON text, got {type(text).__name__}")
    try:
        data = json.loads(strip_json_fence(text))
    except json.JSONDecodeError as exc:
        raise PlanError(f"plan is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise PlanError("plan is nested too deeply to parse") from None
    return plan_from_dict(data, library=library, limits=limits, repairs=repairs)


def _named_ops_repaired(data: Any, library: Mapping[str, OptimizerSpec], repairs: list[str], path: str) -> Any:
    """`data` with nodes that put a name where the op goes repaired: ``{"op": "bootstrap_fewshot"}`` (a
    library optimizer) becomes ``{"op": "optimize", "ref": ...}`` and ``{"op": "normalize", ...}`` (a
    transform) ``{"op": "transform", "kind": ...}``; small meta LMs write both. Nothing else changes."""
    from dspy_meta.plans.schema import OPS
    from dspy_meta.programs import available_transforms

    if isinstance(data, list):
        return [_named_ops_repaired(item, library, repairs, f"{path}[{i}]") for i, item in enumerate(data)]
    if not isinstance(data, dict):
        return data
    fixed = {key: _named_ops_repaired(value, library, repairs, f"{path}.{key}") for key, value in data.items()}
    op = fixed.get("op")
    if not isinstance(op, str) or op in OPS:
        return fixed
    if op in library and "ref" not in fixed and "kind" not in fixed:
        repairs.append(f'{path}: "op": "{op}" read as {{"op": "optimize", "ref": "{op}"}}')
        return {**fixed, "op": "optimize", "ref": op}
    if op in available_transforms() and op != "ensemble" and "kind" not in fixed:
        repairs.append(f'{path}: "op": "{op}" read as {{"op": "transform", "kind": "{op}"}}')
        return {**fixed, "op": "transform", "kind": op}
    return fixed


def plan_from_dict(data: Any, *, library: Mapping[str, OptimizerSpec] | None = None,
                   limits: PlanLimits | None = None, repairs: list[str] | None = None) -> PlanNode:
    """Validate a decoded plan; raises `PlanError` naming the first problem found (see `parse_plan`
    for `repairs`)."""
    limits = limits or PlanLimits()
    _check_depth(data, "plan", 1, limits.max_depth)  # before pydantic, which recurses without a bound
    if repairs is not None:
        data = _named_ops_repaired(data, library or {}, repairs, "plan")
    try:
        model = _NODE.validate_python(data, context={"library": library or {}, "limits": limits, "repairs": repairs})
    except ValidationError as exc:
        raise plan_error(exc) from None
    except RecursionError:  # a value nested without bound inside params or prompts
        raise PlanError("plan: a value is nested too deeply") from None
    node = _from_model(model)
    count = sum(1 for _ in node.steps())
    if count > limits.max_steps:
        raise PlanError(f"plan has {count} optimize steps; at most {limits.max_steps} are allowed")
    multiple, extra = calls_factor(node)
    if multiple + extra > limits.max_calls_factor:
        raise PlanError(f"plan would make {multiple} x the program's LM calls + {extra} per example; at most "
                        f"{limits.max_calls_factor} x are allowed (fewer samples, attempts or members)")
    return node


def plan_json_schema() -> dict[str, Any]:
    """JSON Schema of a plan's dict form, generated from the models in `dspy_meta.plans.schema`."""
    return _NODE.json_schema()


def _check_depth(data: Any, path: str, depth: int, max_depth: int) -> None:
    if depth > max_depth:
        raise PlanError(f"{path}: plan is nested deeper than {max_depth} levels")
    if isinstance(data, Mapping):
        for key in ("steps", "branches", "members"):
            children = data.get(key)
            if isinstance(children, list):
                for i, child in enumerate(children):
                    _check_depth(child, f"{path}.{key}[{i}]", depth + 1, max_depth)


def _from_model(model) -> PlanNode:
    if isinstance(model, OptimizeModel):
        return OptimizeStep(model.spec, ref=model.ref)
    if isinstance(model, TransformModel):
        return TransformStep(model.kind, model.settings)
    if isinstance(model, EnsembleModel):
        return Ensemble(tuple(_from_model(child) for child in model.members))
    children = tuple(_from_model(child) for child in (model.steps if isinstance(model, SequenceModel)
                                                      else model.branches))
    return Sequential(children) if isinstance(model, SequenceModel) else BestOf(children)


_NODE = TypeAdapter(NodeModel)
