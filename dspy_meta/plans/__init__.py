"""Composite optimizers as validated declarative plans."""

from dspy_meta.plans.composite import CompositeOptimizer, StepRecord
from dspy_meta.plans.nodes import (
    BestOf, OptimizeStep, PlanError, PlanLimits, PlanNode, Sequential, parse_plan, plan_from_dict, plan_json_schema,
    plan_to_json,
)
from dspy_meta.plans.schema import plan_grammar

__all__ = ["CompositeOptimizer", "StepRecord", "BestOf", "OptimizeStep", "PlanError", "PlanLimits", "PlanNode",
           "Sequential", "parse_plan", "plan_from_dict", "plan_json_schema", "plan_to_json", "plan_grammar"]
