"""The meta-optimizers: prompt, structure, and both (metaTextGrad)."""

from dspy_meta.meta.budget import AUTO_BUDGETS, MetaBudget
from dspy_meta.meta.prompt_optimizer import MetaPromptOptimizer, parse_prompt_proposal
from dspy_meta.meta.results import CandidateRecord, MetaResults
from dspy_meta.meta.search import MetaSearch, SearchContext
from dspy_meta.meta.structure_optimizer import MetaStructureOptimizer
from dspy_meta.meta.teleprompter import MetaTeleprompter, default_input_optimizers
from dspy_meta.meta.usage import LevelUsage, UsageMeter

__all__ = ["AUTO_BUDGETS", "MetaBudget", "MetaPromptOptimizer", "parse_prompt_proposal", "CandidateRecord",
           "MetaResults", "MetaSearch", "SearchContext", "MetaStructureOptimizer", "MetaTeleprompter",
           "default_input_optimizers", "LevelUsage", "UsageMeter"]
