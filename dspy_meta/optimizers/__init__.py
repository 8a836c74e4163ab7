"""Inner optimizers as data: kinds, their prompts, and serializable specs."""

from dspy_meta.optimizers.base import OptimizerKind, Param, available_kinds, get_kind, register_kind
from dspy_meta.optimizers.bootstrap import BootstrapFewShotKind, ScopedBootstrapFewShot
from dspy_meta.optimizers.copro import COPROKind, PromptableCOPRO
from dspy_meta.optimizers.gepa import GEPAKind, PromptedInstructionProposer, ScopedGEPA
from dspy_meta.optimizers.mipro import MIPROv2Kind, PromptableGroundedProposer, PromptableMIPROv2
from dspy_meta.optimizers.prompts import PromptSet, PromptTemplate
from dspy_meta.optimizers.spec import OptimizerSpec

__all__ = [
    "OptimizerKind", "Param", "available_kinds", "get_kind", "register_kind",
    "PromptSet", "PromptTemplate", "OptimizerSpec",
    "COPROKind", "PromptableCOPRO", "MIPROv2Kind", "PromptableMIPROv2", "PromptableGroundedProposer",
    "BootstrapFewShotKind", "ScopedBootstrapFewShot", "GEPAKind", "ScopedGEPA", "PromptedInstructionProposer",
]
