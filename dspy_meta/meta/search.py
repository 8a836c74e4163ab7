"""`MetaSearch`: the one base class that owns evaluation of candidate optimizers.

Subclasses only choose candidates (in `_run_search`); this class validates input,
resolves and meters the three LM levels, runs each candidate optimizer on the
student, scores the program it returns on validation, remembers identical
candidates so they are never run twice, and assembles the results.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import threading
import zlib
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.teleprompt import Teleprompter
from dspy.utils.exceptions import AdapterParseError
from dspy.utils.parallelizer import ParallelExecutor
from tqdm.auto import tqdm

from dspy_meta._tqdm_guard import concurrent_tqdm
from dspy_meta.evaluation import score_program
from dspy_meta.meta.adapter_memo import AdapterMemo
from dspy_meta.meta.budget import MetaBudget
from dspy_meta.meta.checks import GuardedMetric, TooManyMetricFailures, data_hash, forward_inputs
from dspy_meta.meta.results import CandidateRecord, MetaResults
from dspy_meta.meta.storage import RunStore
from dspy_meta.meta.usage import (
    LEVELS, BudgetExhausted, CallMemo, LevelUsage, PermanentLMError, UsageLimits, UsageMeter, guard_meters,
)
from dspy_meta.plans.composite import CompositeOptimizer
from dspy_meta.plans.nodes import PlanNode
from dspy_meta.redact import is_secret_setting, redact

logger = logging.getLogger(__name__)

__all__ = ["MetaSearch", "SearchContext", "RunFailed", "split_trainset"]


class RunFailed(RuntimeError):
    """The run stopped on an error retrying cannot fix; finished work is in the run_dir checkpoint."""


def split_trainset(trainset: list) -> tuple[list, list]:
    """MIPROv2's split when no valset is given: the last 80% (at most 1000) validate."""
    if len(trainset) < 2:
        raise ValueError("trainset must have at least 2 examples when no valset is given")
    valset_size = min(1000, max(1, int(len(trainset) * 0.80)))
    cutoff = len(trainset) - valset_size
    return trainset[:cutoff], trainset[cutoff:]


def _plan_key(plan: PlanNode) -> str:
    return json.dumps(plan.to_dict(), sort_keys=True)


@dataclass
class SearchContext:
    """Everything a search strategy needs: data, LMs, and `evaluate` / `reject`."""

    metric: Callable
    student: dspy.Module
    trainset: list
    valset: list
    task_lm: dspy.BaseLM
    prompt_lm: dspy.BaseLM
    meta_lm: dspy.BaseLM
    num_threads: int | None
    seed: int
    meters: dict[str, UsageMeter]
    progress: Any
    store: RunStore | None = None
    memo: CallMemo | None = None
    screen_size: int = 0
    screen_margin: float = 0.0
    results: MetaResults = field(default_factory=MetaResults)
    _programs: dict[str, tuple[float | None, dspy.Module | None, str]] = field(default_factory=dict)
    _best: tuple[float, dspy.Module] | None = None
    _usage_mark: dict[str, LevelUsage] | None = None
    _progress_lock: threading.Lock = field(default_factory=threading.Lock)

    def branch(self) -> SearchContext:
        """A context for work that runs beside its siblings (see `run_branches`).

        It has its own candidate records, usage meters (which also count for the run) and
        metric failure count; it shares the data, the LMs' call memo and thread budget, the
        checkpoints and the progress bar, and knows every candidate evaluated so far.
        """
        meters = {level: UsageMeter(level, parent=self.meters[level]) for level in LEVELS}
        metric = self.metric
        if isinstance(metric, GuardedMetric):
            metric = GuardedMetric(metric.metric, metric.max_failures)
        memo = self.memo.view() if self.memo is not None else None
        child = dataclasses.replace(
            self, metric=metric, meters=meters, memo=memo, task_lm=meters["program"].attach(self.task_lm, memo),
            prompt_lm=meters["optimizer"].attach(self.prompt_lm, memo),
            meta_lm=meters["meta"].attach(self.meta_lm, memo),
            results=MetaResults(), _programs=dict(self._programs), _best=None, _usage_mark=None)
        child.start_recording()
        return child

    def merge(self, branches: list[SearchContext]) -> None:
        """Take the branches' records in branch order, as if they had run one after another."""
        for branch in branches:
            for record in branch.results.candidates:
                record.index = len(self.results.candidates)
                self.results.candidates.append(record)
            self._programs.update(branch._programs)
            self.results.best_optimizers.update(branch.results.best_optimizers)
            if branch._best is not None and (self._best is None or branch._best[0] > self._best[0]):
                self._best = branch._best
                self.results.best_score, self.results.best_plan = branch.results.best_score, branch.results.best_plan
        self._usage_mark = self.usage()

    def run_branches(self, items: list, work: Callable[[SearchContext, Any], Any]) -> list:
        """``[work(branch, item) for item in items]``, the items run concurrently when threads allow.

        For independent pieces of a search (e.g. tuning each input optimizer's prompts). Each
        item gets a `branch` context; records are merged in item order, so the results are the
        ones a sequential run gives (only the split of usage between candidates may differ,
        when two branches ask the LM the same thing). All branches finish before the first
        error (a usage limit, a permanent LM error) is raised.
        """
        if len(items) <= 1 or (self.num_threads or 1) <= 1:
            return [work(self, item) for item in items]
        branches = [self.branch() for _ in items]

        def run(job):
            branch, item = job
            try:
                return True, work(branch, item)
            except BaseException as exc:  # noqa: BLE001 -- raised below, once every branch has stopped
                return False, exc

        # DSPy's executor carries dspy.context into the threads; no straggler re-runs (timeout=0).
        executor = ParallelExecutor(num_threads=len(items), max_errors=len(items) + 1, disable_progress_bar=True,
                                    timeout=0)
        with concurrent_tqdm():
            outcomes = executor.execute(run, list(zip(branches, items, strict=True)))
        self.merge(branches)
        for ok, value in outcomes:
            if not ok:
                raise value
        return [value for _, value in outcomes]

    def _advance_progress(self, steps: int = 1, *, planned: int = 0) -> None:
        with self._progress_lock:
            if planned and self.progress.total is not None:
                self.progress.total += planned
                self.progress.refresh()
            if steps:
                self.progress.update(steps)
                self.progress.set_postfix(best=self.results.best_score)

    def usage(self) -> dict[str, LevelUsage]:
        return {level: meter.snapshot() for level, meter in self.meters.items()}

    def _usage_since_last_record(self) -> dict[str, LevelUsage]:
        """Usage since the previous record, so a candidate also carries the meta call that proposed it."""
        now = self.usage()
        mark = self._usage_mark or {level: LevelUsage() for level in LEVELS}
        self._usage_mark = now
        return {level: now[level].minus(mark[level]) for level in LEVELS}

    def start_recording(self) -> None:
        """Start attributing usage to candidates from here (after the baseline evaluation)."""
        self._usage_mark = self.usage()

    def evaluate(self, plan: PlanNode, stage: str, *, best_before: float | None, analysis: str = "") -> CandidateRecord:
        """Run `plan` on the student, score on the valset, and record it.

        A plan identical to one already evaluated is not run again: its score is
        reused. A plan whose run fails is recorded with its error and no score.
        """
        key = _plan_key(plan)
        record = CandidateRecord(index=len(self.results.candidates), stage=stage, plan=plan.to_dict(),
                                 best_before=best_before, analysis=analysis)
        if key in self._programs:
            record.score, program, record.reason = self._programs[key]
            record.reused = True
        else:
            record.score, program, record.reason = self._run_candidate(plan, key, record.index, stage, best_before)
            self._programs[key] = (record.score, program, record.reason)
        record.judge(best_before)
        if record.score is not None:
            if self._best is None or record.score > self._best[0]:
                self._best = (record.score, program)
                self.results.best_score, self.results.best_plan = record.score, record.plan
        record.usage = self._usage_since_last_record()
        logger.info("candidate %d [%s] score=%s %s", record.index, stage, record.score, record.reason)
        self.results.candidates.append(record)
        self._advance_progress()
        return record

    def _run_candidate(self, plan: PlanNode, key: str, index: int, stage: str, best_before: float | None):
        """(score, program, reason) of one plan: from the checkpoint when it finished before, else by running it."""
        saved = self.store.get("candidates", key) if self.store else None
        if saved is not None:
            self._restore(saved)
            program = None
            if saved["program_state"] is not None:
                program = self.student.deepcopy()
                program.load_state(saved["program_state"])
            return saved["score"], program, saved["reason"]
        before = self.usage()
        score, program, reason = None, None, ""
        if isinstance(self.metric, GuardedMetric):
            self.metric.reset()
        try:
            composite = CompositeOptimizer(plan, self.metric, prompt_model=self.prompt_lm, task_model=self.task_lm,
                                           num_threads=self.num_threads, seed=self.seed)
            program = composite.compile(self.student.deepcopy(), trainset=self.trainset, valset=self.valset)
            screened, reason = self._screen(program, best_before)
            if screened is None:
                score = score_program(program, self.valset, self.metric, num_threads=self.num_threads,
                                      lm=self.task_lm)
            # else: no validation score (a minibatch score is not comparable); the reason carries it
        except (Exception, TooManyMetricFailures) as exc:  # one failing candidate must not end the run
            reason = f"run failed: {type(exc).__name__}: {redact(exc)}"
            logger.warning("candidate %d (%s) %s", index, stage, reason)
            score, program = None, None
        if self.store:
            spent = {level: u.minus(before[level]).to_dict() for level, u in self.usage().items()}
            state = program.dump_state() if program is not None else None
            self.store.put("candidates", key, {"score": score, "reason": reason, "program_state": state,
                                               "usage": spent, "memo": self._drain_memo()})
        return score, program, reason

    def _screen(self, program, best_before: float | None) -> tuple[float | None, str]:
        """Score on a minibatch first; a candidate clearly below the best so far stops there.

        Returns (minibatch score, reason) for a screened-out candidate, else (None, ""). The
        minibatch's LM answers are memoized, so a candidate that passes pays nothing twice.
        """
        size, margin = self.screen_size, self.screen_margin
        if not size or best_before is None or size >= len(self.valset):
            return None, ""
        minibatch = random.Random(self.seed).sample(self.valset, size)
        score = score_program(program, minibatch, self.metric, num_threads=self.num_threads, lm=self.task_lm)
        if score < best_before - margin:
            return score, (f"screened out: {score:.3f} on a {size}-example minibatch, more than {margin:.2f} below "
                           f"the best so far ({best_before:.3f})")
        return None, ""

    def _restore(self, saved: dict) -> None:
        """Replay a checkpointed piece of work: its usage, and the LM answers it obtained."""
        for level, spent in saved["usage"].items():
            self.meters[level].add(LevelUsage.from_dict(spent))
        if self.memo is not None:
            self.memo.load(saved.get("memo", []))

    def _drain_memo(self) -> list:
        return self.memo.drain() if self.memo is not None else []

    def checkpointed(self, kind: str, key: str, work: Callable[[], Any], encode=lambda x: x, decode=lambda x: x):
        """`work()`'s result, from the checkpoint when it finished before; else run it and save it."""
        saved = self.store.get(kind, key) if self.store else None
        if saved is not None:
            self._restore(saved)
            return decode(saved["value"])
        before = self.usage()
        value = work()
        if self.store:
            spent = {level: u.minus(before[level]).to_dict() for level, u in self.usage().items()}
            self.store.put(kind, key, {"value": encode(value), "usage": spent, "memo": self._drain_memo()})
        return value

    def reject(self, stage: str, reason: str, *, analysis: str = "", best_before: float | None = None) -> None:
        """Record a proposal that was refused before running (unparseable, invalid, repeated)."""
        logger.warning("rejected %s proposal: %s", stage, redact(reason))
        self.results.candidates.append(CandidateRecord(
            index=len(self.results.candidates), stage=stage, plan=None, best_before=best_before, reason=reason,
            analysis=analysis, usage=self._usage_since_last_record()))
        self._advance_progress()

    def meta_lm_for(self, key: str) -> dspy.BaseLM:
        """The meta LM with a rollout id per proposal: diverse samples without turning the cache off."""
        return self.meta_lm.copy(rollout_id=zlib.crc32(f"{self.seed}:{key}".encode()), temperature=1.0)

    def propose(self, stage: str, key: str, request: Callable[[str, random.Random], Any],
                parse: Callable[[Any], Any], attempts: int, best_before: float | None) -> Any:
        """Ask the meta LM up to `attempts` times; returns ``(prediction, parse(prediction))`` or None.

        `request(feedback, rng)` makes the LM call (its answer is checkpointed, so a resumed run
        does not ask again); `parse` validates it and raises on anything invalid. Each invalid
        answer is recorded as a rejected candidate and its reason fed back to the next attempt.
        The rng is derived from the proposal's key, so resuming does not shift later samples.
        """
        feedback = "none"
        for attempt in range(attempts):
            attempt_key = f"{key}:{attempt}"

            def ask():
                rng = random.Random(f"{self.seed}:{attempt_key}")
                try:
                    with dspy.context(lm=self.meta_lm_for(attempt_key)):
                        return {"outputs": dict(request(feedback, rng).items())}
                except AdapterParseError as exc:  # an answer the adapter cannot parse is a rejected proposal
                    return {"error": f"{type(exc).__name__}: {redact(exc)}"}

            answer = self.checkpointed("proposals", attempt_key, ask)
            try:
                if "error" in answer:
                    raise ValueError(answer["error"])
                prediction = dspy.Prediction(**answer["outputs"])
                return prediction, parse(prediction)
            except Exception as exc:  # the meta LM's output is untrusted: any failure is a rejection
                reason = redact(exc)
                self.reject(stage, f"invalid proposal: {reason}", best_before=best_before)
                feedback = f"Your previous proposal was rejected: {reason}"
                if attempt + 1 < attempts:
                    self._advance_progress(0, planned=1)  # a retry is one more step than planned
        return None

    @property
    def best_program(self) -> tuple[float, dspy.Module] | None:
        return self._best


def _baseline_score(student, valset, metric: GuardedMetric, num_threads, lm) -> float | None:
    """The unoptimized student's validation score; None when the metric failed on too many examples."""
    metric.reset()
    try:
        return score_program(student, valset, metric, num_threads=num_threads, lm=lm)
    except TooManyMetricFailures as exc:
        logger.warning("could not score the unoptimized program: %s", exc)
        return None


def _lm_identity(lm) -> str:
    """Model and settings of an LM, without credentials (the fingerprint is written to disk)."""
    settings = {k: v for k, v in sorted(getattr(lm, "kwargs", {}).items()) if not is_secret_setting(k)}
    return redact(f"{getattr(lm, 'model', type(lm).__name__)} {settings}")


class MetaSearch(Teleprompter):
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
            budget and the parts of the search run one after another.
        seed: seeds example sampling and every inner optimizer run.
        display_progress: show a tqdm bar over candidates.
        run_dir: checkpoint folder; re-running the same compile with it resumes a stopped run.
        usage_limits: hard caps on LM calls / tokens / cost (`UsageLimits` or dict).
        max_metric_failures: examples on which the metric may raise (each counts as failed) before
            the candidate being scored fails.
    """

    def __init__(self, metric: Callable, *, budget: MetaBudget | dict | None = None, task_model=None,
                 prompt_model=None, meta_model=None, num_threads: int | None = None, seed: int = 9,
                 display_progress: bool = True, run_dir: str | None = None,
                 usage_limits: UsageLimits | dict | None = None, max_metric_failures: int = 10):
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

    # -- what subclasses write ---------------------------------------------------
    @abstractmethod
    def _run_search(self, ctx: SearchContext, budget: MetaBudget) -> None:
        """Propose and evaluate candidates through `ctx.evaluate` / `ctx.reject` / `ctx.propose`."""

    def _planned_candidates(self, budget: MetaBudget) -> int | None:
        return None

    def _validate_settings(self, budget: MetaBudget) -> None:
        """Raise on bad constructor arguments; called before any LM call."""

    def _fingerprint(self, budget: MetaBudget) -> dict[str, Any]:
        """What must match for a run_dir to be resumed; subclasses add their inputs."""
        return {}

    # -- compile --------------------------------------------------------------------
    def _resolve_budget(self) -> MetaBudget:
        if self.budget is None:
            return MetaBudget.from_auto("light")
        if isinstance(self.budget, MetaBudget):
            return self.budget
        return MetaBudget.from_dict(self.budget)

    def _resolve_limits(self) -> UsageLimits | None:
        if self.usage_limits is None or isinstance(self.usage_limits, UsageLimits):
            return self.usage_limits
        return UsageLimits.from_dict(self.usage_limits)

    def compile(self, student, *, trainset, teacher=None, valset=None, seed: int | None = None, **kwargs):
        """Meta-optimize and return a deep copy of `student` (same class) with the best program's state.

        The returned program carries ``meta_results_`` (a `MetaResults`). Every input is checked
        before the first LM call.
        """
        seed = self.seed if seed is None else seed
        budget = self._resolve_budget()
        limits = self._resolve_limits()
        self._validate_settings(budget)
        trainset, valset = self._validate_data(student, trainset, valset)
        metric = GuardedMetric(self.metric, self.max_metric_failures)
        metric.probe(valset[0])
        if len(valset) > budget.max_valset:
            valset = random.Random(seed).sample(valset, budget.max_valset)
        task_lm = self.task_model or dspy.settings.lm
        if task_lm is None:
            raise ValueError("no program LM: pass task_model=... or call dspy.configure(lm=...) before compile")
        prompt_lm = self.prompt_model or task_lm
        meta_lm = self.meta_model or prompt_lm
        store = None
        if self.run_dir is not None:
            store = RunStore(self.run_dir)
            fingerprint = {"optimizer": type(self).__name__, "seed": seed, "budget": budget.to_dict(),
                           "trainset": data_hash(trainset), "valset": data_hash(valset),
                           "student": data_hash(student.dump_state()),
                           "lms": [_lm_identity(lm) for lm in (task_lm, prompt_lm, meta_lm)],
                           "metric": getattr(self.metric, "__qualname__", type(self.metric).__qualname__),
                           "max_metric_failures": self.max_metric_failures,
                           "usage_limits": repr(limits), **self._fingerprint(budget)}
            if store.open(fingerprint):
                logger.info("resuming the run in %s", self.run_dir)
        meters = {level: UsageMeter(level) for level in LEVELS}
        guard_meters(meters, limits)
        memo = CallMemo()
        # One thread budget for the whole run: at most this many LM requests in flight, at all levels.
        slots = threading.BoundedSemaphore(self.num_threads or dspy.settings.num_threads or 1)
        with tqdm(total=self._planned_candidates(budget), desc=type(self).__name__, unit="candidate",
                  disable=not self.display_progress) as progress:
            ctx = SearchContext(
                metric=metric, student=student, trainset=trainset, valset=valset,
                task_lm=meters["program"].attach(task_lm, memo, slots),
                prompt_lm=meters["optimizer"].attach(prompt_lm, memo, slots),
                meta_lm=meters["meta"].attach(meta_lm, memo, slots), num_threads=self.num_threads, seed=seed,
                meters=meters, progress=progress, store=store, memo=memo,
                screen_size=budget.screen_size, screen_margin=budget.screen_margin_pct / 100,
            )
            ctx.results.valset_size, ctx.results.seed = len(valset), seed
            try:
                adapter = AdapterMemo().wrap(dspy.settings.adapter or dspy.ChatAdapter())
                with dspy.context(lm=ctx.task_lm, adapter=adapter, disable_history=False):
                    self._search_and_score_baseline(ctx, budget)
            except BudgetExhausted as stop:
                logger.warning("stopping: %s; returning the best program found so far", stop)
                ctx.results.stopped_reason = f"budget: {stop}"
            except PermanentLMError as stop:
                where = f" Finished work is saved in {self.run_dir}." if self.run_dir else ""
                raise RunFailed(f"{stop}. The run stopped.{where}") from stop.error
        return self._finish(student, ctx)

    def _search_and_score_baseline(self, ctx: SearchContext, budget: MetaBudget) -> None:
        """Score the unoptimized student and run the search; side by side when threads allow,
        since nothing in the search needs the baseline score."""
        def score_baseline(branch: SearchContext) -> None:
            ctx.results.baseline_score = branch.checkpointed("baseline", "baseline", lambda: _baseline_score(
                branch.student, branch.valset, branch.metric, self.num_threads, branch.task_lm))

        if (self.num_threads or 1) <= 1:
            score_baseline(ctx)
            ctx.start_recording()  # candidates' usage excludes the baseline's
            self._run_search(ctx, budget)
            return
        ctx.run_branches([score_baseline, lambda branch: self._run_search(branch, budget)],
                         lambda branch, part: part(branch))

    def _finish(self, student, ctx: SearchContext):
        results = ctx.results
        results.usage = ctx.usage()
        baseline = results.baseline_score
        best = ctx.best_program
        program = student.deepcopy()
        if best is not None and best[1] is not None and (baseline is None or best[0] > baseline):
            for target, source in zip(program.predictors(), best[1].predictors(), strict=True):
                target.load_state(source.dump_state())
        else:
            logger.warning("no candidate optimizer beat the unoptimized program (%s); returning it unchanged",
                           baseline)
            results.returned_baseline = True
        program.meta_results_ = results
        return program

    def _validate_data(self, student, trainset, valset) -> tuple[list, list]:
        if not callable(self.metric):
            raise TypeError(f"metric must be callable, got {type(self.metric).__name__}")
        if not isinstance(student, dspy.Module):
            raise TypeError(f"student must be a dspy.Module, got {type(student).__name__}")
        if not student.predictors():
            raise ValueError("student has no predictors to optimize")
        if not isinstance(self.max_metric_failures, int) or self.max_metric_failures < 0:
            raise ValueError(f"max_metric_failures must be a non-negative integer, got {self.max_metric_failures!r}")
        trainset = list(trainset or [])
        if valset is None:
            trainset, valset = split_trainset(trainset)
        valset = list(valset)
        if len(trainset) < 2:
            raise ValueError(f"trainset needs at least 2 examples, got {len(trainset)}")
        if not valset:
            raise ValueError("valset must not be empty")
        wanted = forward_inputs(student)
        for name, data in (("trainset", trainset), ("valset", valset)):
            for i, example in enumerate(data):
                if not isinstance(example, dspy.Example):
                    raise TypeError(f"{name}[{i}] must be a dspy.Example, got {type(example).__name__}")
                if example._input_keys is None:
                    raise ValueError(f"{name}[{i}] has no inputs marked; call .with_inputs(...) on every example")
                missing = wanted - set(example.inputs().keys())
                if missing:
                    raise ValueError(f"{name}[{i}] lacks the program's input(s) {sorted(missing)}")
        return trainset, valset
