"""`MetaTeleprompter`: metaTextGrad (paper section 3.4), a drop-in replacement for `dspy.MIPROv2`."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence

from dspy_meta.optimizers.spec import OptimizerSpec
from dspy_meta.plans.nodes import PlanLimits
from dspy_meta.search.budget import MetaBudget
from dspy_meta.search.evaluator import Evaluator
from dspy_meta.search.strategies import PromptSearch, StructureSearch
from dspy_meta.teleprompters.base import MetaSearch
from dspy_meta.teleprompters.structure_optimizer import as_library

logger = logging.getLogger(__name__)

__all__ = ["MetaTeleprompter", "default_input_optimizers"]

# MIPROv2.compile keywords a drop-in accepts; their work is done by the meta budget instead.
_MIPRO_COMPILE_KEYWORDS = {
    "num_trials", "minibatch", "minibatch_size", "minibatch_full_eval_steps", "program_aware_proposer",
    "data_aware_proposer", "view_data_batch_size", "tip_aware_proposer", "fewshot_aware_proposer",
    "requires_permission_to_run", "provide_traceback",
}


# MIPROv2 constructor settings accepted for compatibility, with their defaults.
_INERT_SETTINGS = {"teacher_settings": None, "max_errors": None, "init_temperature": None, "verbose": False,
                   "track_stats": True, "log_dir": None, "metric_threshold": None}


def default_input_optimizers(budget: MetaBudget, *, max_bootstrapped_demos: int = 4,
                             max_labeled_demos: int = 4) -> dict[str, OptimizerSpec]:
    """COPRO and MIPROv2 (prompt-optimized), plus BootstrapFewShot as a structure building block."""
    return {
        "copro": OptimizerSpec.create("copro", breadth=budget.copro_breadth, depth=budget.copro_depth),
        "mipro_v2": OptimizerSpec.create("mipro_v2", num_candidates=budget.mipro_candidates,
                                         num_trials=budget.mipro_trials,
                                         max_bootstrapped_demos=max_bootstrapped_demos,
                                         max_labeled_demos=max_labeled_demos),
        "bootstrap_fewshot": OptimizerSpec.create("bootstrap_fewshot", max_bootstrapped_demos=max_bootstrapped_demos,
                                                  max_labeled_demos=max_labeled_demos),
    }


class MetaTeleprompter(MetaSearch):
    """metaTextGrad: prompt-optimize each input optimizer, then structure-optimize over the results.

    Drop-in for `dspy.MIPROv2`::

        tp = MetaTeleprompter(metric=metric, auto="light", num_threads=8)
        optimized = tp.compile(program, trainset=trainset, valset=valset)

    Args:
        metric: ``metric(example, prediction, trace=None)``.
        auto: "light" | "medium" | "heavy" budget preset (ignored when `budget` is given).
        budget: an explicit `MetaBudget` (or dict, e.g. loaded from ``configs/*.yaml``).
        optimizers: input optimizer specs (list or name -> spec); default COPRO, MIPROv2 and BootstrapFewShot.
        task_model / prompt_model / meta_model: the program, optimizer and meta LMs (see `MetaSearch`).
        max_bootstrapped_demos / max_labeled_demos: demo limits of the default inputs, as in MIPROv2.
        num_threads, seed, display_progress, run_dir, usage_limits, max_metric_failures: as in `MetaSearch`
            (``seed=0`` is honoured).
        num_candidates: as in MIPROv2: candidates per MIPROv2 input (overrides the budget's value).
        teacher_settings, max_errors, init_temperature, verbose, track_stats, log_dir, metric_threshold:
            accepted so MIPROv2 calls keep working; they have no effect here (a log line says so).

    The returned program has ``meta_results_``: every candidate with its score, the accepted
    path, the learned optimizers and plan, and LM usage per level.
    """

    def __init__(self, metric: Callable, *, auto: str | None = "light", budget: MetaBudget | dict | None = None,
                 optimizers: Mapping[str, OptimizerSpec] | Sequence[OptimizerSpec] | None = None,
                 task_model=None, prompt_model=None, meta_model=None, max_bootstrapped_demos: int = 4,
                 max_labeled_demos: int = 4, num_threads: int | None = None, seed: int = 9,
                 display_progress: bool = True, limits: PlanLimits | None = None, num_candidates: int | None = None,
                 teacher_settings: dict | None = None, max_errors: int | None = None,
                 init_temperature: float | None = None, verbose: bool = False, track_stats: bool = True,
                 log_dir: str | None = None, metric_threshold: float | None = None, **kwargs):
        super().__init__(metric, budget=budget, task_model=task_model, prompt_model=prompt_model,
                         meta_model=meta_model, num_threads=num_threads, seed=seed,
                         display_progress=display_progress, **kwargs)
        self.auto = auto
        self.optimizers = optimizers
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.limits = limits
        self.num_candidates = num_candidates
        self.teacher_settings = teacher_settings
        self.max_errors = max_errors
        self.init_temperature = init_temperature
        self.verbose = verbose
        self.track_stats = track_stats
        self.log_dir = log_dir
        self.metric_threshold = metric_threshold

    def _resolve_budget(self) -> MetaBudget:
        if self.budget is None and self.auto is None:
            raise ValueError("set auto ('light', 'medium', 'heavy') or pass an explicit budget")
        budget = super()._resolve_budget() if self.budget is not None else MetaBudget.from_auto(self.auto)
        if self.num_candidates is not None:
            budget = budget.replace(mipro_candidates=self.num_candidates)
        return budget

    def _library(self, budget: MetaBudget) -> dict[str, OptimizerSpec]:
        if self.optimizers is None:
            return default_input_optimizers(budget, max_bootstrapped_demos=self.max_bootstrapped_demos,
                                            max_labeled_demos=self.max_labeled_demos)
        return as_library(self.optimizers)

    def _validate_settings(self, budget: MetaBudget) -> None:
        self._library(budget)

    def _fingerprint(self, budget: MetaBudget) -> dict:
        return {"inputs": {name: spec.to_dict() for name, spec in self._library(budget).items()},
                "limits": repr(self.limits)}

    def _planned_candidates(self, budget: MetaBudget) -> int:
        library = self._library(budget)
        tunable = sum(1 for spec in library.values() if spec.prompts)
        return len(library) * 2 + tunable * budget.prompt_steps + budget.structure_steps * budget.structure_proposals

    def compile(self, student, *, trainset, teacher=None, valset=None, seed: int | None = None,
                max_bootstrapped_demos: int | None = None, max_labeled_demos: int | None = None, **kwargs):
        """As `dspy.MIPROv2.compile`; demo limits given here override the constructor's for this call."""
        unknown = set(kwargs) - _MIPRO_COMPILE_KEYWORDS
        if unknown:
            raise TypeError(f"MetaTeleprompter.compile got unexpected keyword argument(s) {sorted(unknown)}")
        if kwargs:
            logger.info("ignoring MIPROv2-only compile options %s: the meta budget sets these", sorted(kwargs))
        inert = {name: getattr(self, name) for name in _INERT_SETTINGS if getattr(self, name) != _INERT_SETTINGS[name]}
        if inert:
            logger.info("MIPROv2 settings %s have no effect on MetaTeleprompter", sorted(inert))
        if teacher is not None:
            logger.warning("teacher is not used by MetaTeleprompter; inner optimizers bootstrap from the student")
        run = self
        if max_bootstrapped_demos is not None or max_labeled_demos is not None:
            run = copy.copy(self)  # this call's limits; the teleprompter itself stays as constructed
            run.max_bootstrapped_demos = self.max_bootstrapped_demos if max_bootstrapped_demos is None \
                else max_bootstrapped_demos
            run.max_labeled_demos = self.max_labeled_demos if max_labeled_demos is None else max_labeled_demos
        return MetaSearch.compile(run, student, trainset=trainset, valset=valset, seed=seed)

    def _run_search(self, evaluator: Evaluator, budget: MetaBudget) -> None:
        library = self._library(budget)
        searches = [PromptSearch(name, spec, steps=budget.prompt_steps, num_examples=budget.num_examples,
                                 attempts=budget.proposal_attempts) for name, spec in library.items()]
        # Each input's prompt search is independent of the others': they run side by side.
        evaluator.run_side_by_side([lambda branch, search=search: branch.run(search) for search in searches])
        tuned = {search.name: search.best_spec for search in searches}
        evaluator.results.best_optimizers.update({name: spec.to_dict() for name, spec in tuned.items()})
        evaluator.run(StructureSearch(tuned, steps=budget.structure_steps, num_examples=budget.num_examples,
                                      attempts=budget.proposal_attempts, limits=self.limits, seed=evaluator.seed,
                                      proposals_per_step=budget.structure_proposals))
