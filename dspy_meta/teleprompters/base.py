"""`MetaSearch`: the base of the meta-optimizers (Teleprompters).

Subclasses only say which search strategies to run (in `_run_search`); this class validates the
input, builds the run's runtime (`dspy_meta.runtime.build_runtime`) and its `Evaluator`, scores
the unoptimized student beside the search, and returns a copy of the student with the best
program's state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from abc import abstractmethod
from collections.abc import Callable
from typing import Any

import dspy
from dspy.teleprompt import Teleprompter
from tqdm.auto import tqdm

from dspy_meta.distributed import StudyRunner
from dspy_meta.errors import BadMetricValue, BudgetExhausted, MetricError, PermanentLMError, RunFailed
from dspy_meta.plans.nodes import PlanLimits
from dspy_meta.programs import keeps_student_class, returned_program
from dspy_meta.runtime.calls import DEFAULT_CALL_TIMEOUT_S, check_call_timeout
from dspy_meta.runtime.checks import GuardedMetric, check_num_threads, data_hash, sample_valset, split_trainset
from dspy_meta.runtime.factory import Runtime, build_runtime
from dspy_meta.runtime.fingerprint import class_code_hash, code_hash, lm_identity
from dspy_meta.runtime.program_state import program_state
from dspy_meta.runtime.quiet import quiet
from dspy_meta.runtime.storage import RunStore
from dspy_meta.runtime.usage import UsageLimits
from dspy_meta.search.acceptance import PairedSignTest, judge_against_baseline, log_acceptance_power
from dspy_meta.search.budget import MetaBudget
from dspy_meta.search.evaluator import Evaluator
from dspy_meta.search.failures import BootstrapErrors
from dspy_meta.search.screening import Screen
from dspy_meta.search.strategies import EnsembleOfFound
from dspy_meta.teleprompters.checks import check_prices, check_seed, threads_to_fill, validate_data, wait_until
from dspy_meta.teleprompters.mipro_compat import resolve_lm, single_teacher
from dspy_meta.tracking import NullTracker, Tracker, open_tracker, quiet_autolog
from dspy_meta.tracking.records import run_params

logger = logging.getLogger(__name__)

__all__ = ["MetaSearch", "split_trainset"]


class _OwnRunTeleprompter(Teleprompter):
    """The direct `Teleprompter` subclass under `MetaSearch`, so that `MetaSearch.compile` is never wrapped by
    ``mlflow.dspy.autolog()``, whatever the import order: autolog patches ``compile`` on Teleprompter's
    direct subclasses only, and a compile it wraps runs in a run of autolog's own (in the calling thread,
    with the compile's keyword arguments as its parameters). A meta compile opens and fills its own run
    (`dspy_meta.tracking`), so the patch lands on this class, whose ``compile`` nothing calls."""


class MetaSearch(_OwnRunTeleprompter):
    """Base of the meta-optimizers. Constructors store arguments only; all work happens in `compile`.

    Args:
        metric: ``metric(example, prediction, trace=None) -> float | bool``.
        budget: a `MetaBudget` (or dict); None uses the "light" preset.
        task_model: the program's LM (None: the LM of the calling `dspy.context` at compile time).
        prompt_model: the inner optimizers' LM (None: the task LM).
        meta_model: the meta-optimizer's LM (None: the prompt LM).
        num_threads: the run's thread budget: at most this many LM requests in flight at once, at all
            levels. Above 1, independent parts of the search run side by side (see `run_branches`);
            the results are those of a sequential run. None: DSPy's ``num_threads`` setting is the
            budget and the parts of the search run one after another; but a program LM on the batched
            local engine gets its slot count (`dspy_meta.lm.engine_slots`), so evaluations fill its batch.
        seed: seeds example sampling and every inner optimizer run.
        display_progress: show a tqdm bar over candidates, and let the inner optimizers show theirs and print
            as DSPy does. False: no bar, and DSPy's bars, prints and logs below ERROR are silenced for the run
            (`dspy_meta.runtime.quiet`; restored after).
        run_dir: checkpoint folder; re-running the same compile with it resumes a stopped run.
        usage_limits: hard caps on LM calls / tokens / cost (`UsageLimits` or dict).
        max_metric_failures: examples on which the metric may raise or return NaN (each counts as
            failed) before the candidate being scored fails.
        call_timeout: seconds one LM call may take before it counts as failed (None: no limit).
        use_mlflow: log the compile to MLflow as one run with a nested run per candidate (see
            `dspy_meta.tracking`): True always (MLflow must be installed), False never, None when
            ``mlflow.dspy.autolog(log_compiles=True)`` is on.
        storage: distribute the candidates: an Optuna storage URL or object, or a
            `dspy_meta.distributed.StudyStorage`; workers (`dspy_meta.distributed.run_worker`) run them.
        study_name: the run's study in `storage` (None: derived from the run's settings, data and LMs).
        allow_structure: let the search put structure around the program (transforms such as normalization
            or self-consistency, ensembles): a structure win is then returned as a `TransformedProgram`
            (save it with `dspy_meta.programs.save_program`, load it with `load_program`). False: every
            candidate keeps the student's class, and compile returns a ``type(student)`` (see `compile`).
    """

    closes_with_ensemble: bool = False  # searches over structure try an ensemble of what they found last

    def __init__(self, metric: Callable, *, budget: MetaBudget | dict | None = None, task_model=None,
                 prompt_model=None, meta_model=None, num_threads: int | None = None, seed: int = 9,
                 display_progress: bool = True, run_dir: str | None = None,
                 usage_limits: UsageLimits | dict | None = None, max_metric_failures: int = 10,
                 call_timeout: float | None = DEFAULT_CALL_TIMEOUT_S, use_mlflow: bool | None = None,
                 storage=None, study_name: str | None = None, allow_structure: bool = True):
        self.metric = metric
        self.budget = budget
        self.task_model = task_model
        self.prompt_model = prompt_model
        self.meta_model = meta_model
        self.num_threads = num_threads
        self.seed = seed
        self.display_progress = display_progress
        self.run_dir = run_dir
        self.usage_limits = usage_limits
        self.max_metric_failures = max_metric_failures
        self.call_timeout = call_timeout
        self.use_mlflow = use_mlflow
        self.storage = storage
        self.study_name = study_name
        self.allow_structure = allow_structure

    # -- what subclasses write ---------------------------------------------------
    @abstractmethod
    def _run_search(self, evaluator: Evaluator, budget: MetaBudget) -> None:
        """Run the search strategies through `evaluator.run` (or `run_side_by_side`)."""

    def _planned_candidates(self, budget: MetaBudget) -> int | None:
        return None

    def _validate_settings(self, budget: MetaBudget) -> None:
        """Raise on bad constructor arguments; called before any LM call."""

    def _fingerprint(self, budget: MetaBudget) -> dict[str, Any]:
        """What must match for a run_dir to be resumed; subclasses add their inputs."""
        return {}

    def _input_optimizers(self, budget: MetaBudget) -> dict[str, Any]:
        """The input optimizer specs by name (what tracking logs as the run's inputs)."""
        return {}

    # -- compile --------------------------------------------------------------------
    def _resolve_budget(self) -> MetaBudget:
        if self.budget is None:
            return MetaBudget.from_auto("light")
        if isinstance(self.budget, MetaBudget):
            return self.budget
        return MetaBudget.from_dict(self.budget)

    def _plan_limits(self, limits: PlanLimits | None) -> PlanLimits:
        """The structure search's plan limits: `limits` (default: library refs, budgets lowered only), with
        structure off unless `allow_structure`."""
        limits = limits or PlanLimits(refs_only=True, cap_overrides=True)
        return limits if self.allow_structure else dataclasses.replace(limits, structure=False)

    def _resolve_limits(self) -> UsageLimits | None:
        if self.usage_limits is None or isinstance(self.usage_limits, UsageLimits):
            return self.usage_limits
        return UsageLimits.from_dict(self.usage_limits)

    def compile(self, student, *, trainset, teacher=None, valset=None, seed: int | None = None, **kwargs):
        """Meta-optimize and return a deep copy of `student` with the best program's state.

        With ``allow_structure=False`` the result is always a ``type(student)`` with the student's named
        predictors (demos as `dspy.Example` objects, the user's LM objects), so ``result.save(path)`` loads
        into a fresh ``type(student)()`` and the result compiles again, as with DSPy's optimizers; with
        ``allow_structure=True`` a structure win comes back as a `TransformedProgram` around such a copy.
        The returned program carries ``meta_results_`` (a `MetaResults`). Every input is checked before the
        first LM call. As in MIPROv2, a program that fails ``max_errors`` times (DSPy's setting) while demos
        are bootstrapped ends the compile with its error.
        """
        seed = self.seed if seed is None else seed
        check_seed(seed)
        budget = self._resolve_budget()
        limits = self._resolve_limits()
        self._validate_settings(budget)
        check_call_timeout(self.call_timeout)
        check_num_threads(self.num_threads)
        trainset, valset = self._validate_data(student, trainset, valset)
        metric = GuardedMetric(self.metric, self.max_metric_failures)
        metric.probe(valset[0])
        valset = sample_valset(valset, budget.max_valset, seed)
        log_acceptance_power(len(valset), budget.accept_confidence_pct / 100)
        lms = self._resolve_lms(student)
        num_threads = self.num_threads if self.num_threads is not None else threads_to_fill(lms["program"])
        check_prices(limits, lms)
        teacher = single_teacher(teacher, student)
        teacher_settings = self._teacher_settings()
        tracker = open_tracker(self.use_mlflow)
        inputs = {name: spec.to_dict() for name, spec in self._input_optimizers(budget).items()}
        settings = {"seed": seed, "num_threads": num_threads, "trainset_size": len(trainset),
                    "valset_size": len(valset), **{f"limits.{k}": v for k, v in (limits.model_dump(exclude_none=True)
                                                                                if limits else {}).items()}}
        store = RunStore(self.run_dir) if self.run_dir is not None else None
        with quiet_autolog(), tracker.run(type(self).__name__, run_params(budget=budget.to_dict(), lms=lms,
                                                                          inputs=inputs, settings=settings),
                                          {"input_optimizers.json": inputs}):
            with store.locked() if store else contextlib.nullcontext():  # one process at a time in a run_dir
                fingerprint = self._run_fingerprint(seed, budget, trainset, valset, student, lms, teacher,
                                                    teacher_settings)
                self._open_store(store, fingerprint)
                runtime = build_runtime(lms, metric=metric, num_threads=num_threads, limits=limits,
                                        store=store, call_timeout=self.call_timeout)
                runtime.replay_unfinished()
                runner = None if self.storage is None else StudyRunner.open(
                    self.storage, self.study_name, fingerprint, optimizer=type(self).__name__, lms=lms,
                    num_threads=num_threads, call_timeout=self.call_timeout)
                evaluator = self._search(runtime, student, trainset, valset, seed, budget, teacher, teacher_settings,
                                         tracker=tracker, runner=runner)
                if runner is not None:
                    runner.finish(evaluator)
            program = self._finish(student, evaluator)
            tracker.finish(program.meta_results_, program)
        return program

    def _resolve_lms(self, student) -> dict[str, dspy.BaseLM]:
        """The three levels' LMs: model names resolved with `make_lm` (unknown ones fail here, before any
        call); the program LM defaults to the calling context's, else to the student's own (``set_lm``)."""
        program_lm = resolve_lm(self.task_model, "task_model") or dspy.settings.lm
        own = [p.lm for p in student.predictors() if p.lm is not None]
        if program_lm is None and own and len(own) == len(student.predictors()):
            program_lm = own[0]  # every predictor has its own LM (BetterTogether requires it): they run the program
        if program_lm is None:
            raise ValueError("no program LM: pass task_model=... or call dspy.configure(lm=...) before compile")
        optimizer_lm = resolve_lm(self.prompt_model, "prompt_model") or program_lm
        meta_lm = resolve_lm(self.meta_model, "meta_model") or optimizer_lm
        return {"program": program_lm, "optimizer": optimizer_lm, "meta": meta_lm}

    def _teacher_settings(self) -> dict[str, Any]:
        """DSPy settings for the inner optimizers' bootstrapping (MIPROv2's ``teacher_settings``); none here."""
        return {}

    def _search(self, runtime: Runtime, student, trainset, valset, seed, budget: MetaBudget, teacher,
                teacher_settings, tracker: Tracker | None = None, runner: StudyRunner | None = None) -> Evaluator:
        started = time.perf_counter()
        with tqdm(total=self._planned_candidates(budget), desc=type(self).__name__, unit="candidate",
                  disable=not self.display_progress) as progress:
            evaluator = Evaluator(runtime, student, trainset, valset, seed, progress=progress,
                                  screen=Screen(budget.screen_size, budget.screen_confidence_pct / 100, seed),
                                  acceptance=PairedSignTest(budget.accept_confidence_pct / 100),
                                  teacher=teacher, teacher_settings=teacher_settings, tracker=tracker or NullTracker(),
                                  **({"runner": runner} if runner is not None else {}))
            evaluator.results.valset_size, evaluator.results.seed = len(valset), seed
            try:
                with quiet(not self.display_progress), runtime.activate():
                    self._search_and_score_baseline(evaluator, budget)
            except BudgetExhausted as stop:
                logger.warning("stopping: %s; returning the best program found so far", stop)
                runtime.halt(f"stopped: {stop}")
                # Let the LM calls other threads already started end: their usage counts, so a resumed run
                # does not pay for them again.
                wait_until(lambda: sum(meter.in_flight for meter in runtime.meters.values()) == 0, 60.0)
                runtime.save_unfinished()
                evaluator.results.stopped_reason = f"budget: {stop}"
            except PermanentLMError as stop:
                runtime.halt(f"stopped: {stop}")
                where = f" Finished work is saved in {self.run_dir}." if self.run_dir else ""
                failure = RunFailed(f"{stop}. The run stopped.{where}")
                failure.cause = stop.error  # not chained: a provider's error text may quote a key
                raise failure from None
            except BadMetricValue as stop:
                runtime.halt(f"stopped: {stop}")
                raise MetricError(str(stop)) from None
            except BootstrapErrors as stop:  # as MIPROv2: the program's own error, once max_errors is reached
                runtime.halt(f"stopped: {stop}")
                wait_until(lambda: runtime.running_branches() == 0, 5.0)
                raise stop.error from None
            except BaseException:  # Ctrl-C (or a crash): every branch stops at its next LM call
                runtime.halt("interrupted")
                # Give the branches still running (their next LM call stops them) a moment to end.
                wait_until(lambda: runtime.running_branches() == 0, 5.0)
                raise
            self._ensemble_found(evaluator, runtime, budget)
        evaluator.results.wall_seconds = time.perf_counter() - started
        evaluator.results.lm_seconds = {level: meter.seconds for level, meter in runtime.meters.items()}
        return evaluator

    def _ensemble_found(self, evaluator: Evaluator, runtime: Runtime, budget: MetaBudget) -> None:
        """The closing candidate (`EnsembleOfFound`), also after a usage limit stopped the search."""
        if self.closes_with_ensemble and budget.final_ensemble and self.allow_structure:
            with quiet(not self.display_progress), runtime.activate():
                evaluator.run_closing(EnsembleOfFound(evaluator.results.candidates, budget.final_ensemble))

    def _run_fingerprint(self, seed, budget, trainset, valset, student, lms, teacher=None,
                         teacher_settings=None) -> dict[str, Any]:
        """What identifies the run: its run_dir and its study belong to these settings, data, program, metric
        and LMs. Usage limits are not part of it: a run stopped by a limit resumes with a higher one."""
        return {"optimizer": type(self).__name__, "seed": seed, "budget": budget.to_dict(),
                "trainset": data_hash(trainset), "valset": data_hash(valset),
                "student": data_hash(program_state(student)),
                "teacher": data_hash(program_state(teacher)) if teacher is not None else None,
                "teacher_lm": lm_identity(teacher_settings["lm"]) if (teacher_settings or {}).get("lm") else None,
                "student_class": f"{type(student).__module__}.{type(student).__qualname__}",
                "student_code": class_code_hash(type(student)),
                "lms": [lm_identity(lm) for lm in lms.values()],
                "metric": getattr(self.metric, "__qualname__", type(self.metric).__qualname__),
                "metric_code": code_hash(self.metric),
                "max_metric_failures": self.max_metric_failures, "allow_structure": self.allow_structure,
                **self._fingerprint(budget)}

    def _open_store(self, store: RunStore | None, fingerprint: dict[str, Any]) -> None:
        """Check the run's checkpoint folder belongs to this run (`RunDirError` naming what changed)."""
        if store is None:
            return
        if store.open(fingerprint):
            logger.info("resuming the run in %s", self.run_dir)

    def _search_and_score_baseline(self, evaluator: Evaluator, budget: MetaBudget) -> None:
        """Score the unoptimized student and run the search; side by side when threads allow,
        since nothing in the search needs the baseline score."""
        def score_baseline(branch: Evaluator) -> None:
            scored = branch.score_baseline()
            evaluator.results.baseline_score = scored.mean if scored is not None else None
            evaluator.baseline_examples = scored.per_example if scored is not None else None

        evaluator.run_side_by_side([score_baseline, lambda branch: self._run_search(branch, budget)])

    def _finish(self, student, evaluator: Evaluator):
        """The student with the best program's state (`returned_program`); a program with new structure (a
        transform won, only with `allow_structure`) is a `TransformedProgram` around a copy of the student."""
        results = evaluator.results
        results.usage = evaluator.runtime.usage()
        baseline = results.baseline_score
        best = evaluator.best_program
        accepted, results.final_reason = judge_against_baseline(
            evaluator.acceptance, best[0] if best else None, baseline, evaluator.best_examples,
            evaluator.baseline_examples, best_is_input=evaluator.best_is_an_input)
        accepted = accepted and best is not None and best[1] is not None
        if accepted and not self.allow_structure and not keeps_student_class(student, best[1]):
            accepted, results.final_reason = False, "the best program is not the student's class (allow_structure)"
        if accepted:
            # A fresh copy of the student (the best program's structure around it, if any) with the best state:
            # predictor LMs stay the user's objects, demos are Examples (a transform's predictors come with it).
            program = returned_program(student, best[1])
        else:
            logger.warning("no candidate optimizer beat the unoptimized program (%s); returning it unchanged%s",
                           baseline, f" ({results.final_reason})" if results.final_reason else "")
            program = student.deepcopy()
            results.returned_baseline = True
        program.meta_results_ = results
        logger.info("%s finished: %s", type(self).__name__, results.summary())
        return program

    def _validate_data(self, student, trainset, valset) -> tuple[list, list]:
        return validate_data(self.metric, self.max_metric_failures, student, trainset, valset)
