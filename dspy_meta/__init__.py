"""dspy-meta: optimize the optimizers of DSPy programs (metaTextGrad)."""

import logging

from dspy_meta.errors import (
    BenchmarkDataError, BudgetExhausted, ConfigError, DspyMetaError, LocalModelError, PermanentLMError, PlanError,
    BadMetricValue, LMCallTimeout, MetricError, RunDirError, RunFailed, RunHalted, StaleResults, StopRun,
    StudyMismatch, TooManyMetricFailures,
)
from dspy_meta.optimizers import OptimizerSpec, PromptSet, PromptTemplate, available_kinds
from dspy_meta.plans import CompositeOptimizer, parse_plan
from dspy_meta.runtime.usage import UsageLimits
from dspy_meta.search import MetaBudget, MetaResults
from dspy_meta.teleprompters import MetaPromptOptimizer, MetaStructureOptimizer, MetaTeleprompter

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"
__all__ = ["MetaBudget", "MetaPromptOptimizer", "MetaResults", "MetaStructureOptimizer", "MetaTeleprompter",
           "OptimizerSpec", "PromptSet", "PromptTemplate", "available_kinds", "CompositeOptimizer", "parse_plan",
           "UsageLimits", "DspyMetaError", "ConfigError", "PlanError", "RunFailed", "LocalModelError",
           "BenchmarkDataError", "StopRun", "BudgetExhausted", "PermanentLMError", "RunHalted",
           "TooManyMetricFailures", "RunDirError", "StaleResults", "LMCallTimeout", "BadMetricValue", "MetricError",
           "StudyMismatch"]
