"""The meta-optimizers, as DSPy Teleprompters: prompt, structure, and both (metaTextGrad)."""

from dspy_meta.search.budget import AUTO_BUDGETS, MetaBudget
from dspy_meta.search.results import CandidateRecord, MetaResults
from dspy_meta.teleprompters.base import MetaSearch, split_trainset
from dspy_meta.teleprompters.meta_teleprompter import MetaTeleprompter, default_input_optimizers
from dspy_meta.teleprompters.prompt_optimizer import MetaPromptOptimizer
from dspy_meta.teleprompters.structure_optimizer import MetaStructureOptimizer, as_library

__all__ = ["AUTO_BUDGETS", "MetaBudget", "CandidateRecord", "MetaResults", "MetaSearch", "split_trainset",
           "MetaTeleprompter", "default_input_optimizers", "MetaPromptOptimizer", "MetaStructureOptimizer",
           "as_library"]
