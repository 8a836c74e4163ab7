"""Search strategies: ask/tell objects that choose candidates (one strategy per file)."""

from dspy_meta.search.strategies.base import SearchStrategy
from dspy_meta.search.strategies.ensemble_of_found import EnsembleOfFound
from dspy_meta.search.strategies.prompt_search import PromptSearch
from dspy_meta.search.strategies.structure_search import StructureSearch

__all__ = ["SearchStrategy", "EnsembleOfFound", "PromptSearch", "StructureSearch"]
