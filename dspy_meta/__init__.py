"""dspy-meta: optimize the optimizers of DSPy programs (metaTextGrad)."""

import logging

from dspy_meta.meta import (
    MetaBudget, MetaPromptOptimizer, MetaResults, MetaStructureOptimizer, MetaTeleprompter,
)
from dspy_meta.optimizers import OptimizerSpec, PromptSet, PromptTemplate, available_kinds
from dspy_meta.plans import CompositeOptimizer, parse_plan

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"
__all__ = ["MetaBudget", "MetaPromptOptimizer", "MetaResults", "MetaStructureOptimizer", "MetaTeleprompter",
           "OptimizerSpec", "PromptSet", "PromptTemplate", "available_kinds", "CompositeOptimizer", "parse_plan"]
