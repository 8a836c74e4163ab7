"""`MetaTeleprompter`: metaTextGrad (paper section 3.4), a drop-in replacement for `dspy.MIPROv2`."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dspy

from dspy_meta.learning.bundle import LearnedBundle, load_bundle
from dspy_meta.optimizers.spec import OptimizerSpec
from dspy_meta.plans.nodes import PlanLimits
from dspy_meta.search.budget import MetaBudget
from dspy_meta.search.evaluator import Evaluator
from dspy_meta.search.strategies import PromptSearch, StructureSearch
from dspy_meta.teleprompters.base import MetaSearch
from dspy_meta.teleprompters.learned import compile_learned
from dspy_meta.teleprompters.mipro_compat import (
    INERT_SETTINGS, MIPRO_COMPILE_DEFAULTS, attach_mipro_stats, ignored_options, manual_budget, resolve_lm,
    warn_ignored,
)
from dspy_meta.teleprompters.structure_optimizer import as_library

logger = logging.getLogger(__name__)

__all__ = ["MetaTeleprompter", "default_input_optimizers"]

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

    Drop-in for `dspy.MIPROv2` (same positional order: ``metric, prompt_model, task_model, ...``)::

        tp = MetaTeleprompter(metric=metric, auto="light", num_threads=8)
        optimized = tp.compile(program, trainset=trainset, valset=valset)

    Args:
        metric: ``metric(example, prediction, trace=None)`` or ``metric(example, prediction)``.
        prompt_model / task_model / meta_model: the optimizer, program and meta LMs (see `MetaSearch`); an
            LM object, a local model name or a litellm model string (`dspy_meta.lm.make_lm`).
        teacher_settings: DSPy settings (``dict(lm=big_lm)``) while the inner optimizers bootstrap demos.
        max_bootstrapped_demos / max_labeled_demos: demo limits of the default inputs, as in MIPROv2.
        auto: "light" | "medium" | "heavy" budget preset (ignored when `budget` is given); None: MIPROv2's
            manual mode, `num_candidates` and compile's `num_trials` set the MIPROv2 input's budget.
        num_candidates: candidates per MIPROv2 input (overrides the budget's value).
        num_threads, seed: as in `MetaSearch` (``seed=0`` is honoured).
        max_errors: program errors DSPy tolerates (its ``max_errors`` setting for the run): as in MIPROv2, the
            error that reaches it while demos are bootstrapped ends the compile (None: DSPy's setting, 10).
        init_temperature: the MIPROv2 and COPRO inputs' proposal temperature.
        track_stats: attach MIPROv2's result attributes (``score``, ``candidate_programs``, ...).
        log_dir: the checkpoint folder (``run_dir``) when `run_dir` is not given.
        verbose, metric_threshold: accepted so MIPROv2 calls keep working; no effect (a warning says so).
        budget: an explicit `MetaBudget` (or dict, e.g. loaded from ``configs/*.yaml``).
        optimizers: input optimizer specs (list or name -> spec); default COPRO, MIPROv2 and BootstrapFewShot.
        learned: a learned-optimizer bundle (a path, a shipped bundle's name, or a `LearnedBundle`). Without a
            `budget`, compile runs the bundle's learned plan as it is: no meta-LM call, and the program calls
            of the stock optimizers it wraps (`auto` is then unused). With a `budget`, the bundle's optimizers
            are the meta search's inputs (unless `optimizers` is given).
        display_progress, run_dir, usage_limits, max_metric_failures, use_mlflow, storage, study_name: as in
            `MetaSearch` (`storage`: candidates queue in an Optuna study for workers, see `dspy_meta.distributed`).
        allow_structure: False (the default) keeps MIPROv2's contract: compile returns an instance of
            ``type(student)`` whose named predictors are the student's, with only their state (instructions,
            field prefixes, demos as `dspy.Example` objects) changed, so ``optimized.save("x.json")`` loads into
            a fresh ``Program()`` and the result compiles again. The structure search then combines the input
            optimizers only (``sequence``, ``best_of``). True: it may also put structure around the program
            (normalization, self-consistency, verification, decomposition, and an ensemble of the best
            programs found, ``budget.final_ensemble``), and a structure win CHANGES THE CLASS: the result is a
            `dspy_meta.programs.TransformedProgram` around a copy of the student; save it with
            `dspy_meta.programs.save_program` and load it with ``load_program(path, Program())``.

    The returned program has ``meta_results_``: every candidate with its score, the accepted
    path, the learned optimizers and plan, and LM usage per level. With ``allow_structure=True``, last, an
    ensemble of the best programs found is judged like any candidate (``budget.final_ensemble``; free to
    validate when their answers are remembered, so it runs even after a usage limit stopped the search).
    """

    closes_with_ensemble = True

    def __init__(self, metric: Callable, prompt_model=None, task_model=None, teacher_settings: dict | None = None,
                 max_bootstrapped_demos: int = 4, max_labeled_demos: int = 4, auto: str | None = "light",
                 num_candidates: int | None = None, num_threads: int | None = None, max_errors: int | None = None,
                 seed: int = 9, init_temperature: float | None = None, verbose: bool = False,
                 track_stats: bool = True, log_dir: str | None = None, metric_threshold: float | None = None, *,
                 budget: MetaBudget | dict | None = None,
                 optimizers: Mapping[str, OptimizerSpec] | Sequence[OptimizerSpec] | None = None,
                 meta_model=None, display_progress: bool = True, limits: PlanLimits | None = None,
                 run_dir: str | None = None, learned: str | LearnedBundle | None = None,
                 allow_structure: bool = False, **kwargs):
        super().__init__(metric, budget=budget, task_model=task_model, prompt_model=prompt_model,
                         meta_model=meta_model, num_threads=num_threads, seed=seed,
                         display_progress=display_progress, run_dir=run_dir, allow_structure=allow_structure,
                         **kwargs)
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
        self.learned = learned
        self._manual_budget: MetaBudget | None = None  # auto=None: set by compile on the copy it runs on

    def _resolve_budget(self) -> MetaBudget:
        if self.budget is None and self.auto is None:
            if self._manual_budget is None:
                raise ValueError("with auto=None, run MetaTeleprompter through compile (it needs num_trials)")
            return self._manual_budget
        budget = super()._resolve_budget() if self.budget is not None else MetaBudget.from_auto(self.auto)
        if self.num_candidates is not None:
            budget = budget.replace(mipro_candidates=self.num_candidates)
        return budget

    def _library(self, budget: MetaBudget) -> dict[str, OptimizerSpec]:
        if self.optimizers is None and self.learned is not None:
            library = load_bundle(self.learned).specs()
        elif self.optimizers is None:
            library = default_input_optimizers(budget, max_bootstrapped_demos=self.max_bootstrapped_demos,
                                               max_labeled_demos=self.max_labeled_demos)
        else:
            library = as_library(self.optimizers)
        return {name: self._with_mipro_settings(spec) for name, spec in library.items()}

    def _with_mipro_settings(self, spec: OptimizerSpec) -> OptimizerSpec:
        """`init_temperature`, when given, for every input that has that parameter (MIPROv2, COPRO)."""
        if self.init_temperature is None or "init_temperature" not in spec.params:
            return spec
        return spec.with_params(init_temperature=float(self.init_temperature))

    def _teacher_settings(self) -> dict[str, Any]:
        settings = dict(self.teacher_settings or {})
        if settings.get("lm") is not None:
            settings["lm"] = resolve_lm(settings["lm"], "teacher_settings['lm']")
        return settings

    def _validate_settings(self, budget: MetaBudget) -> None:
        self._library(budget)

    def _input_optimizers(self, budget: MetaBudget) -> dict[str, OptimizerSpec]:
        return self._library(budget)

    def _fingerprint(self, budget: MetaBudget) -> dict:
        return {"inputs": {name: spec.to_dict() for name, spec in self._library(budget).items()},
                "limits": repr(self.limits)}

    def _planned_candidates(self, budget: MetaBudget) -> int:
        library = self._library(budget)
        tunable = sum(1 for spec in library.values() if spec.prompts)
        return len(library) * 2 + tunable * budget.prompt_steps + budget.structure_steps * budget.structure_proposals

    def compile(self, student, *, trainset, teacher=None, valset=None, num_trials: int | None = None,
                max_bootstrapped_demos: int | None = None, max_labeled_demos: int | None = None,
                seed: int | None = None, minibatch: bool = True, minibatch_size: int = 35,
                minibatch_full_eval_steps: int = 5, program_aware_proposer: bool = True,
                data_aware_proposer: bool = True, view_data_batch_size: int = 10, tip_aware_proposer: bool = True,
                fewshot_aware_proposer: bool = True, requires_permission_to_run: bool | None = None,
                provide_traceback: bool | None = None):
        """As `dspy.MIPROv2.compile` (the same options, declared, so BetterTogether can pass them).

        Demo limits given here override the constructor's for this call. With ``auto=None``, `num_trials`
        is the MIPROv2 input's trial count. Every candidate is scored on the whole valset (as with
        ``minibatch=False``); `minibatch` has no effect and a non-default `minibatch_size` warns.
        """
        if requires_permission_to_run:
            raise ValueError("User confirmation is removed from MIPROv2 (and MetaTeleprompter): remove "
                             "requires_permission_to_run")
        ignored = ignored_options(dict(minibatch_full_eval_steps=minibatch_full_eval_steps,
                                       program_aware_proposer=program_aware_proposer,
                                       data_aware_proposer=data_aware_proposer,
                                       view_data_batch_size=view_data_batch_size,
                                       tip_aware_proposer=tip_aware_proposer,
                                       fewshot_aware_proposer=fewshot_aware_proposer,
                                       provide_traceback=provide_traceback, minibatch_size=minibatch_size),
                                  MIPRO_COMPILE_DEFAULTS)
        ignored += ignored_options({"verbose": self.verbose, "metric_threshold": self.metric_threshold},
                                   INERT_SETTINGS)
        if num_trials is not None and (self.auto is not None or self.budget is not None):
            ignored.append("num_trials (the budget sets the trials; use auto=None to set them)")
        warn_ignored(sorted(ignored), "they have no equivalent in the meta search")
        run = copy.copy(self)  # this call's settings; the teleprompter itself stays as constructed
        run.max_bootstrapped_demos = self.max_bootstrapped_demos if max_bootstrapped_demos is None \
            else max_bootstrapped_demos
        run.max_labeled_demos = self.max_labeled_demos if max_labeled_demos is None else max_labeled_demos
        if self.budget is None and self.auto is None:
            predictors = len(student.predictors()) if isinstance(student, dspy.Module) else 1
            run._manual_budget, _ = manual_budget(self.num_candidates, num_trials, predictors,
                                                  run.max_bootstrapped_demos == 0 and run.max_labeled_demos == 0)
        if self.log_dir is not None and self.run_dir is None:
            run.run_dir = self.log_dir  # MIPROv2's log folder becomes the checkpoint folder
        settings = {} if self.max_errors is None else {"max_errors": self.max_errors}
        with dspy.context(**settings):
            if self.learned is not None and self.budget is None:  # the meta level was paid offline
                return compile_learned(run, load_bundle(self.learned), student, trainset=trainset, valset=valset,
                                       seed=self.seed if seed is None else seed, teacher=teacher)
            return MetaSearch.compile(run, student, trainset=trainset, teacher=teacher, valset=valset, seed=seed)

    def _finish(self, student, evaluator: Evaluator):
        program = super()._finish(student, evaluator)
        return attach_mipro_stats(program, student, evaluator) if self.track_stats else program

    def _run_search(self, evaluator: Evaluator, budget: MetaBudget) -> None:
        library = self._library(budget)
        searches = [PromptSearch(name, spec, steps=budget.prompt_steps, num_examples=budget.num_examples,
                                 attempts=budget.proposal_attempts) for name, spec in library.items()]
        # Inputs with no prompts to tune (BootstrapFewShot) are cheap building blocks: they finish before the
        # prompt searches start, so that a run stopped by a usage limit has scored them (measured: a 40-call
        # cap spent on COPRO's search never reached the BootstrapFewShot input, which alone was the best
        # program; with 4 threads, all inputs started at once shared the cap out and none was scored).
        # Within each group the searches are independent: they run side by side.
        for group in ([s for s in searches if not library[s.name].prompts],
                      [s for s in searches if library[s.name].prompts]):
            evaluator.run_side_by_side([lambda branch, search=search: branch.run(search) for search in group])
        tuned = {name: next(s.best_spec for s in searches if s.name == name) for name in library}
        evaluator.results.best_optimizers.update({name: spec.to_dict() for name, spec in tuned.items()})
        evaluator.run(StructureSearch(tuned, steps=budget.structure_steps, num_examples=budget.num_examples,
                                      attempts=budget.proposal_attempts, limits=self._plan_limits(self.limits),
                                      seed=evaluator.seed,
                                      proposals_per_step=budget.structure_proposals))
