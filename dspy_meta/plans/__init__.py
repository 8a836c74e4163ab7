"""Composite optimizers as validated declarative plans."""

from dspy_meta.plans.composite import CompositeOptimizer, StepRecord
from dspy_meta.plans.nodes import (
    PLAN_SCHEMA, BestOf, OptimizeStep, PlanError, PlanLimits, PlanNode, Sequence, parse_plan, plan_from_dict,
    plan_to_json,
)

__all__ = ["CompositeOptimizer", "StepRecord", "PLAN_SCHEMA", "BestOf", "OptimizeStep", "PlanError",
           "PlanLimits", "PlanNode", "Sequence", "parse_plan", "plan_from_dict", "plan_to_json"]
