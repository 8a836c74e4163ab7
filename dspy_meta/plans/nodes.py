"""Composite optimizers as declarative plans, and their strict JSON parser.

A plan is a tree of three node types:

- ``{"op": "optimize", "kind": K, "params": {...}, "prompts": {...}}`` runs one inner
  optimizer (``{"op": "optimize", "ref": NAME}`` uses a named spec from a library,
  optionally with ``"params"`` overrides);
- ``{"op": "sequence", "steps": [...]}`` feeds each step the program the previous one returned;
- ``{"op": "best_of", "branches": [...]}`` runs every branch from the same program and
  keeps the one that scores best on validation.

Plans are written by an LLM, so parsing is strict: every unknown key, kind, bad
value, and every plan over the size limits is rejected with its JSON path.
Nothing in a plan is executed as code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

from dspy_meta._validation import check_keys
from dspy_meta.optimizers.spec import OptimizerSpec

__all__ = ["PlanLimits", "PlanError", "OptimizeStep", "Sequence", "BestOf", "PlanNode", "parse_plan", "plan_to_json",
           "plan_from_dict", "PLAN_SCHEMA"]


class PlanError(ValueError):
    """An invalid plan; the message names the JSON path of the problem."""


@dataclass(frozen=True)
class PlanLimits:
    """Size and content limits of a plan.

    `refs_only` allows only ``{"op": "optimize", "ref": ...}`` steps (optimizers from the library);
    `cap_overrides` lets a ref's ``params`` lower numeric budgets but never raise them or change
    other settings. The meta structure optimizer uses both, so an LLM-written plan cannot spend
    more per step than the optimizers it was given.
    """

    max_depth: int = 4
    max_steps: int = 8  # optimize nodes in the whole plan
    max_branches: int = 4
    refs_only: bool = False
    cap_overrides: bool = False


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
class Sequence:
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


PlanNode = Union[OptimizeStep, Sequence, BestOf]


def _grouped(node: PlanNode) -> str:
    return f"({node.describe()})" if isinstance(node, Sequence) else node.describe()


def plan_to_json(node: PlanNode, **kwargs: Any) -> str:
    return json.dumps(node.to_dict(), **kwargs)


_FENCE = re.compile(r"^```(?:json)?\s*\n(.*)\n```\s*$", re.S)


def strip_json_fence(text: str) -> str:
    """LLM output with its surrounding whitespace and one optional ```json fence removed."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    return fenced.group(1) if fenced else stripped


def parse_plan(text: str, *, library: Mapping[str, OptimizerSpec] | None = None,
               limits: PlanLimits | None = None) -> PlanNode:
    """Parse and validate a plan from JSON text (a single ```json fence is allowed)."""
    if not isinstance(text, str):
        raise PlanError(f"plan must be JSON text, got {type(text).__name__}")
    try:
        data = json.loads(strip_json_fence(text))
    except json.JSONDecodeError as exc:
        raise PlanError(f"plan is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    return plan_from_dict(data, library=library, limits=limits)


def plan_from_dict(data: Any, *, library: Mapping[str, OptimizerSpec] | None = None,
                   limits: PlanLimits | None = None) -> PlanNode:
    """Validate a decoded plan; raises `PlanError` naming the first problem found."""
    limits = limits or PlanLimits()
    node = _parse_node(data, "plan", 1, library or {}, limits)
    count = sum(1 for _ in node.steps())
    if count > limits.max_steps:
        raise PlanError(f"plan has {count} optimize steps; at most {limits.max_steps} are allowed")
    return node


def _require_keys(data: Mapping, path: str, allowed: set[str], required: set[str]) -> None:
    check_keys(data, path, allowed, required, error=PlanError)


def _parse_node(data: Any, path: str, depth: int, library: Mapping[str, OptimizerSpec],
                limits: PlanLimits) -> PlanNode:
    if depth > limits.max_depth:
        raise PlanError(f"{path}: plan is nested deeper than {limits.max_depth} levels")
    if not isinstance(data, Mapping):
        raise PlanError(f"{path}: a plan node must be an object, got {type(data).__name__}")
    op = data.get("op")
    if op == "optimize":
        return _parse_optimize(data, path, library, limits)
    if op in ("sequence", "best_of"):
        key = "steps" if op == "sequence" else "branches"
        _require_keys(data, path, {"op", key}, {"op", key})
        children = data[key]
        if not isinstance(children, list) or not children:
            raise PlanError(f"{path}.{key}: must be a non-empty list")
        if op == "best_of" and not 2 <= len(children) <= limits.max_branches:
            raise PlanError(f"{path}.{key}: best_of needs 2 to {limits.max_branches} branches, got {len(children)}")
        nodes = tuple(_parse_node(child, f"{path}.{key}[{i}]", depth + 1, library, limits)
                      for i, child in enumerate(children))
        return Sequence(nodes) if op == "sequence" else BestOf(nodes)
    raise PlanError(f"{path}.op: must be one of ['optimize', 'sequence', 'best_of'], got {op!r}")


def _parse_optimize(data: Mapping, path: str, library: Mapping[str, OptimizerSpec],
                    limits: PlanLimits) -> OptimizeStep:
    if "ref" in data:
        _require_keys(data, path, {"op", "ref", "params"}, {"op", "ref"})
        ref = data["ref"]
        if not isinstance(ref, str) or ref not in library:
            raise PlanError(f"{path}.ref: unknown optimizer {ref!r}; available: {sorted(library)}")
        params = data.get("params", {})
        if not isinstance(params, Mapping):
            raise PlanError(f"{path}.params: must be an object")
        if limits.cap_overrides:
            _check_capped(params, library[ref], f"{path}.params")
        try:
            spec = library[ref].with_params(**params) if params else library[ref]
        except ValueError as exc:
            raise PlanError(f"{path}.params: {exc}") from None
        return OptimizeStep(spec, ref=ref)
    if limits.refs_only:
        raise PlanError(f"{path}: use an available optimizer by name, {{\"op\": \"optimize\", \"ref\": NAME}}; "
                        f"available: {sorted(library)}")
    _require_keys(data, path, {"op", "kind", "params", "prompts", "label"}, {"op", "kind"})
    try:
        spec = OptimizerSpec.from_dict({k: v for k, v in data.items() if k != "op"})
    except ValueError as exc:
        raise PlanError(f"{path}: {exc}") from None
    return OptimizeStep(spec)


def _check_capped(params: Mapping, spec: OptimizerSpec, path: str) -> None:
    for name, value in params.items():
        current = spec.params.get(name)
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if numeric and isinstance(current, (int, float)) and not isinstance(current, bool):
            if value > current:
                raise PlanError(f"{path}.{name}: may lower the optimizer's budget ({current}) but not raise it "
                                f"(got {value})")
        elif name in spec.params and value != current:
            raise PlanError(f"{path}.{name}: only numeric budgets may be overridden (keep {current!r})")


# JSON Schema of a plan, shown to the meta LM; `plan_from_dict` is the authority.
PLAN_SCHEMA: dict[str, Any] = {
    "$defs": {
        "node": {"oneOf": [
            {"type": "object", "required": ["op", "ref"], "additionalProperties": False,
             "properties": {"op": {"const": "optimize"}, "ref": {"type": "string"},
                            "params": {"type": "object"}}},
            {"type": "object", "required": ["op", "kind"], "additionalProperties": False,
             "properties": {"op": {"const": "optimize"}, "kind": {"type": "string"},
                            "params": {"type": "object"}, "prompts": {"type": "object"},
                            "label": {"type": "string"}}},
            {"type": "object", "required": ["op", "steps"], "additionalProperties": False,
             "properties": {"op": {"const": "sequence"},
                            "steps": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/node"}}}},
            {"type": "object", "required": ["op", "branches"], "additionalProperties": False,
             "properties": {"op": {"const": "best_of"},
                            "branches": {"type": "array", "minItems": 2, "items": {"$ref": "#/$defs/node"}}}},
        ]},
    },
    "$ref": "#/$defs/node",
}
