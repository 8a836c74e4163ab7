"""`MetaStructureOptimizer` (paper section 3.3, Appendix A.2): compose optimizers into better plans."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from dspy_meta.optimizers.spec import OptimizerSpec
from dspy_meta.plans.nodes import PlanLimits
from dspy_meta.search.budget import MetaBudget
from dspy_meta.search.evaluator import Evaluator
from dspy_meta.search.strategies.structure_search import StructureSearch
from dspy_meta.teleprompters.base import MetaSearch

__all__ = ["MetaStructureOptimizer", "as_library"]


def as_library(optimizers: Mapping[str, OptimizerSpec] | Sequence[OptimizerSpec]) -> dict[str, OptimizerSpec]:
    """Name the input optimizers: a mapping is kept; a list is named by label or kind (``copro_2`` on clashes)."""
    if isinstance(optimizers, Mapping):
        library = dict(optimizers)
    else:
        library = {}
        for spec in optimizers:
            if not isinstance(spec, OptimizerSpec):
                raise TypeError(f"input optimizers must be OptimizerSpec objects, got {type(spec).__name__}")
            base = spec.label or spec.kind
            name, n = base, 2
            while name in library:
                name, n = f"{base}_{n}", n + 1
            library[name] = spec
    for name, spec in library.items():
        if not isinstance(spec, OptimizerSpec):
            raise TypeError(f"input optimizer {name!r} must be an OptimizerSpec, got {type(spec).__name__}")
    if not library:
        raise ValueError("at least one input optimizer is needed")
    return library


class MetaStructureOptimizer(MetaSearch):
    """Find a composite of the input optimizers that produces a better program.

    Initialize by running each input optimizer; then the meta LM proposes composite
    plans (JSON, validated strictly; a rejected plan's reason is fed back to it), each
    is run and scored on validation, and the best is kept.

    Args:
        optimizers: the input optimizer specs, as a list or a name -> spec mapping.
        limits: size limits for proposed plans.
        See `MetaSearch` for the others (``allow_structure`` is True here: structure is what this optimizer
        searches; a structure win is a `TransformedProgram`).

    Last, an ensemble of the best programs found is judged like any candidate (``budget.final_ensemble``).
    """

    closes_with_ensemble = True

    def __init__(self, metric: Callable, optimizers: Mapping[str, OptimizerSpec] | Sequence[OptimizerSpec],
                 *, limits: PlanLimits | None = None, **kwargs):
        super().__init__(metric, **kwargs)
        self.optimizers = optimizers
        self.limits = limits

    def _validate_settings(self, budget: MetaBudget) -> None:
        as_library(self.optimizers)

    def _planned_candidates(self, budget: MetaBudget) -> int:
        return len(as_library(self.optimizers)) + budget.structure_steps * budget.structure_proposals

    def _input_optimizers(self, budget: MetaBudget) -> dict[str, OptimizerSpec]:
        return as_library(self.optimizers)

    def _fingerprint(self, budget: MetaBudget) -> dict:
        return {"inputs": {name: spec.to_dict() for name, spec in as_library(self.optimizers).items()},
                "limits": repr(self.limits)}

    def _run_search(self, evaluator: Evaluator, budget: MetaBudget) -> None:
        library = as_library(self.optimizers)
        evaluator.run(StructureSearch(library, steps=budget.structure_steps, num_examples=budget.num_examples,
                                      seed=evaluator.seed, attempts=budget.proposal_attempts,
                                      limits=self._plan_limits(self.limits),
                                      proposals_per_step=budget.structure_proposals))
        evaluator.results.best_optimizers.update({name: spec.to_dict() for name, spec in library.items()})

