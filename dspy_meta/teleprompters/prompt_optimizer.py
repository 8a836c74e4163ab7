"""`MetaPromptOptimizer` (paper section 3.2, Appendix A.1): rewrite one inner optimizer's own prompts."""

from __future__ import annotations

from collections.abc import Callable

from dspy_meta.optimizers.spec import OptimizerSpec
from dspy_meta.search.budget import MetaBudget
from dspy_meta.search.evaluator import Evaluator
from dspy_meta.search.strategies.prompt_search import PromptSearch
from dspy_meta.teleprompters.base import MetaSearch

__all__ = ["MetaPromptOptimizer"]


class MetaPromptOptimizer(MetaSearch):
    """Rewrite one inner optimizer's own prompts to fit the task.

    Each step the meta LM sees sampled training examples, the best prompts so far and
    the history of (prompts, score), and proposes new prompts; the inner optimizer runs
    with them, and the candidate is kept only if its program beats the best so far on
    the (same) validation examples. `compile` returns the best program;
    ``meta_results_.best_optimizer`` is the learned `OptimizerSpec`.

    Args:
        optimizer: the inner optimizer's spec (default: COPRO with the budget's breadth/depth).
        See `MetaSearch` for the others.
    """

    def __init__(self, metric: Callable, optimizer: OptimizerSpec | None = None, **kwargs):
        super().__init__(metric, **kwargs)
        self.optimizer = optimizer

    def _planned_candidates(self, budget: MetaBudget) -> int:
        return 1 + budget.prompt_steps

    def _spec(self, budget: MetaBudget) -> OptimizerSpec:
        return self.optimizer or OptimizerSpec.create("copro", breadth=budget.copro_breadth, depth=budget.copro_depth)

    def _input_optimizers(self, budget: MetaBudget) -> dict[str, OptimizerSpec]:
        spec = self._spec(budget)
        return {spec.label or spec.kind: spec}

    def _fingerprint(self, budget: MetaBudget) -> dict:
        return {"optimizer_spec": self.optimizer.to_dict() if self.optimizer else None}

    def _validate_settings(self, budget: MetaBudget) -> None:
        if self.optimizer is not None and not isinstance(self.optimizer, OptimizerSpec):
            raise TypeError(f"optimizer must be an OptimizerSpec, got {type(self.optimizer).__name__}")

    def _run_search(self, evaluator: Evaluator, budget: MetaBudget) -> None:
        spec = self._spec(budget)
        name = spec.label or spec.kind
        search = evaluator.run(PromptSearch(name, spec, steps=budget.prompt_steps, num_examples=budget.num_examples,
                                            attempts=budget.proposal_attempts))
        evaluator.results.best_optimizers[name] = search.best_spec.to_dict()
