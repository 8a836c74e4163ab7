"""dspy-meta: optimize the optimizers of DSPy programs (metaTextGrad)."""

import logging

from dspy_meta.optimizers import OptimizerSpec, PromptSet, PromptTemplate, available_kinds

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"
__all__ = ["OptimizerSpec", "PromptSet", "PromptTemplate", "available_kinds"]
