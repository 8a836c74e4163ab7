"""Systematic exploration of the plan space, for the steps where the meta LM gives nothing new.

A weak meta LM often answers with an invalid plan, or with one already tried; the step then still
evaluates a new candidate, drawn by Optuna's TPE sampler over a small design space: which optimizer
to start from (a library optimizer or the best plan so far) and which structure to put around it
(none, self-consistency, normalization, decomposition, verification, or an ensemble of the best plans
so far; where structure is off, none or one more library optimizer after it). The sampler learns from
every explored plan's score; it is seeded, so a resumed or repeated run draws the same plans.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping

import optuna

from dspy_meta.plans.nodes import PlanLimits, PlanNode, plan_from_dict
from dspy_meta.optimizers.spec import OptimizerSpec

__all__ = ["PlanExplorer", "SHAPES"]

logger = logging.getLogger(__name__)

_NORMALIZE = {"op": "transform", "kind": "normalize",
              "params": {"steps": "strip,after_answer_label,strip_quotes,strip_trailing_period,collapse_spaces"}}

# How the explored plan is built around its base (a library ref or the best plan so far, as a dict).
SHAPES: dict[str, Callable[[dict], dict]] = {
    "plain": lambda base: base,
    "self_consistency": lambda base: {"op": "sequence", "steps": [
        base, {"op": "transform", "kind": "self_consistency", "params": {"samples": 5}}]},
    "normalize": lambda base: {"op": "sequence", "steps": [base, _NORMALIZE]},
    # Decompose first, so that the optimizer then tunes the two new predictors.
    "decompose": lambda base: {"op": "sequence", "steps": [{"op": "transform", "kind": "decompose"}, base]},
    "verify": lambda base: {"op": "sequence", "steps": [
        base, {"op": "transform", "kind": "verify_and_retry", "params": {"attempts": 3}}]},
}
_BEST = "best_so_far"
_ENSEMBLE = "ensemble_of_best"
_THEN = "then:"  # where structure is off: the base, then one more library optimizer on its program


def _key(plan: dict) -> str:
    return json.dumps(plan, sort_keys=True)


class PlanExplorer:
    """Draws untried plans over `library` with TPE; `tell` it the score of each plan it drew."""

    def __init__(self, library: Mapping[str, OptimizerSpec], limits: PlanLimits, seed: int):
        self.library = dict(library)
        self.limits = limits
        self._bases = [*self.library, _BEST]
        # Without structure (`PlanLimits.structure` off) only plans that keep the program's class are drawn.
        self._shapes = [*SHAPES, _ENSEMBLE] if getattr(limits, "structure", True) else \
            ["plain", *(f"{_THEN}{name}" for name in self.library)]
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._study = optuna.create_study(direction="maximize",
                                          sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=4))
        self._pending: dict[str, optuna.trial.Trial] = {}

    def draw(self, tried: list[tuple[PlanNode, float | None]], compact: Callable[[PlanNode], dict]) -> PlanNode | None:
        """An untried valid plan, or None when the space holds none."""
        tried_keys = {_key(p.to_dict()) for p, _ in tried}
        scored = sorted(((s, p) for p, s in tried if s is not None), key=lambda item: -item[0])
        distributions = {"base": optuna.distributions.CategoricalDistribution(self._bases),
                         "shape": optuna.distributions.CategoricalDistribution(self._shapes)}
        for _ in range(4 * len(self._bases) * len(self._shapes)):
            trial = self._study.ask(distributions)
            plan = self._build(trial.params["base"], trial.params["shape"], scored, compact)
            if plan is None or _key(plan.to_dict()) in tried_keys:
                # Impossible or already known: the sampler learns it is no new ground, and draws again.
                known = next((s for p, s in tried if plan is not None and _key(p.to_dict()) == _key(plan.to_dict())),
                             None)
                self._study.tell(trial, known if known is not None else 0.0)
                continue
            self._pending[_key(plan.to_dict())] = trial
            return plan
        return None

    def tell(self, plan: PlanNode, score: float | None) -> None:
        trial = self._pending.pop(_key(plan.to_dict()), None)
        if trial is not None:
            self._study.tell(trial, 0.0 if score is None else score)

    def _build(self, base: str, shape: str, scored: list, compact) -> PlanNode | None:
        if shape == _ENSEMBLE:
            members = [compact(p) for _, p in scored[:3]]
            if len(members) < 2:
                return None
            data = {"op": "ensemble", "members": members}
        else:
            if base == _BEST:
                if not scored:
                    return None
                root = compact(scored[0][1])
            else:
                root = {"op": "optimize", "ref": base}
            if shape.startswith(_THEN):
                data = {"op": "sequence", "steps": [root, {"op": "optimize", "ref": shape[len(_THEN):]}]}
            else:
                data = SHAPES[shape](root)
        try:
            return plan_from_dict(data, library=self.library, limits=self.limits)
        except ValueError as exc:  # e.g. over the calls-per-example limit
            logger.debug("explored plan %s is not valid here: %s", data, exc)
            return None
