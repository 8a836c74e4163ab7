"""`MetaSearch`: the one base class that owns evaluation of candidate optimizers.

Subclasses only choose candidates (in `_run_search`); this class validates input,
resolves and meters the three LM levels, runs each candidate optimizer on the
student, scores the program it returns on validation, remembers identical
candidates so they are never run twice, and assembles the results.
"""

from __future__ import annotations

import json
import logging
import random
import zlib
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.teleprompt import Teleprompter
from tqdm.auto import tqdm

from dspy_meta.evaluation import score_program
from dspy_meta.meta.budget import MetaBudget
from dspy_meta.meta.results import CandidateRecord, MetaResults
from dspy_meta.meta.usage import LEVELS, LevelUsage, UsageMeter
from dspy_meta.plans.composite import CompositeOptimizer
from dspy_meta.plans.nodes import PlanNode

logger = logging.getLogger(__name__)

__all__ = ["MetaSearch", "SearchContext", "split_trainset"]


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
    rng: random.Random
    meters: dict[str, UsageMeter]
    progress: Any
    results: MetaResults = field(default_factory=MetaResults)
    _programs: dict[str, tuple[float | None, dspy.Module | None, str]] = field(default_factory=dict)
    _best: tuple[float, dspy.Module] | None = None
    _usage_mark: dict[str, LevelUsage] | None = None

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
            program = None
            try:
                composite = CompositeOptimizer(plan, self.metric, prompt_model=self.prompt_lm, task_model=self.task_lm,
                                               num_threads=self.num_threads, seed=self.seed)
                program = composite.compile(self.student.deepcopy(), trainset=self.trainset, valset=self.valset)
                record.score = score_program(program, self.valset, self.metric, num_threads=self.num_threads,
                                             lm=self.task_lm)
            except Exception as exc:  # one failing candidate must not end the run
                logger.warning("candidate %d (%s) failed: %s: %s", record.index, stage, type(exc).__name__, exc)
                record.reason = f"run failed: {type(exc).__name__}: {exc}"
                program = None
            self._programs[key] = (record.score, program, record.reason)
        if record.score is not None:
            record.accepted = best_before is None or record.score > best_before
            if not record.reason:
                record.reason = "improved on the best so far" if record.accepted else "did not beat the best so far"
            if self._best is None or record.score > self._best[0]:
                self._best = (record.score, program)
                self.results.best_score, self.results.best_plan = record.score, record.plan
        record.usage = self._usage_since_last_record()
        logger.info("candidate %d [%s] score=%s %s", record.index, stage, record.score, record.reason)
        self.results.candidates.append(record)
        self.progress.update(1)
        self.progress.set_postfix(best=self.results.best_score)
        return record

    def reject(self, stage: str, reason: str, *, analysis: str = "", best_before: float | None = None) -> None:
        """Record a proposal that was refused before running (unparseable, invalid, repeated)."""
        logger.warning("rejected %s proposal: %s", stage, reason)
        self.results.candidates.append(CandidateRecord(
            index=len(self.results.candidates), stage=stage, plan=None, best_before=best_before, reason=reason,
            analysis=analysis, usage=self._usage_since_last_record()))
        self.progress.update(1)

    def meta_lm_for(self, key: str) -> dspy.BaseLM:
        """The meta LM with a rollout id per proposal: diverse samples without turning the cache off."""
        return self.meta_lm.copy(rollout_id=zlib.crc32(f"{self.seed}:{key}".encode()), temperature=1.0)

    def propose(self, stage: str, key: str, ask: Callable[[str], Any], attempts: int,
                best_before: float | None) -> Any:
        """Ask the meta LM up to `attempts` times; `ask(feedback)` returns a validated proposal or raises.

        Each invalid answer is recorded as a rejected candidate and its reason is fed back to the
        next attempt. Returns None when every attempt was rejected.
        """
        feedback = "none"
        for attempt in range(attempts):
            try:
                with dspy.context(lm=self.meta_lm_for(f"{key}:{attempt}")):
                    return ask(feedback)
            except Exception as exc:  # the meta LM's output is untrusted: any failure is a rejection
                self.reject(stage, f"invalid proposal: {exc}", best_before=best_before)
                feedback = f"Your previous proposal was rejected: {exc}"
        return None

    @property
    def best_program(self) -> tuple[float, dspy.Module] | None:
        return self._best


class MetaSearch(Teleprompter):
    """Base of the meta-optimizers. Constructors store arguments only; all work happens in `compile`.

    Args:
        metric: ``metric(example, prediction, trace=None) -> float | bool``.
        budget: a `MetaBudget` (or dict); None uses the "light" preset.
        task_model: the program's LM (None: the LM of the calling `dspy.context` at compile time).
        prompt_model: the inner optimizers' LM (None: the task LM).
        meta_model: the meta-optimizer's LM (None: the prompt LM).
        num_threads: threads for evaluations.
        seed: seeds example sampling and every inner optimizer run.
        display_progress: show a tqdm bar over candidates.
    """

    def __init__(self, metric: Callable, *, budget: MetaBudget | dict | None = None, task_model=None,
                 prompt_model=None, meta_model=None, num_threads: int | None = None, seed: int = 9,
                 display_progress: bool = True):
        self.metric = metric
        self.budget = budget
        self.task_model = task_model
        self.prompt_model = prompt_model
        self.meta_model = meta_model
        self.num_threads = num_threads
        self.seed = seed
        self.display_progress = display_progress

    # -- what subclasses write ---------------------------------------------------
    @abstractmethod
    def _run_search(self, ctx: SearchContext, budget: MetaBudget) -> None:
        """Propose and evaluate candidates through `ctx.evaluate` / `ctx.reject`."""

    def _planned_candidates(self, budget: MetaBudget) -> int | None:
        return None

    def _validate_settings(self, budget: MetaBudget) -> None:
        """Raise on bad constructor arguments; called before any LM call."""

    # -- compile --------------------------------------------------------------------
    def _resolve_budget(self) -> MetaBudget:
        if self.budget is None:
            return MetaBudget.from_auto("light")
        if isinstance(self.budget, MetaBudget):
            return self.budget
        return MetaBudget.from_dict(self.budget)

    def compile(self, student, *, trainset, teacher=None, valset=None, seed: int | None = None, **kwargs):
        """Meta-optimize and return a deep copy of `student` (same class) with the best program's state.

        The returned program carries ``meta_results_`` (a `MetaResults`).
        """
        seed = self.seed if seed is None else seed
        budget = self._resolve_budget()
        self._validate_settings(budget)
        trainset, valset = self._validate_data(student, trainset, valset)
        if len(valset) > budget.max_valset:
            valset = random.Random(seed).sample(valset, budget.max_valset)
        task_lm = self.task_model or dspy.settings.lm
        if task_lm is None:
            raise ValueError("no program LM: pass task_model=... or call dspy.configure(lm=...) before compile")
        prompt_lm = self.prompt_model or task_lm
        meta_lm = self.meta_model or prompt_lm
        meters = {level: UsageMeter(level) for level in LEVELS}
        with tqdm(total=self._planned_candidates(budget), desc=type(self).__name__, unit="candidate",
                  disable=not self.display_progress) as progress:
            ctx = SearchContext(
                metric=self.metric, student=student, trainset=trainset, valset=valset,
                task_lm=meters["program"].attach(task_lm), prompt_lm=meters["optimizer"].attach(prompt_lm),
                meta_lm=meters["meta"].attach(meta_lm), num_threads=self.num_threads, seed=seed,
                rng=random.Random(seed), meters=meters, progress=progress,
            )
            ctx.results.valset_size, ctx.results.seed = len(valset), seed
            with dspy.context(lm=ctx.task_lm, disable_history=False):
                baseline = score_program(student, valset, self.metric, num_threads=self.num_threads, lm=ctx.task_lm)
                ctx.results.baseline_score = baseline
                ctx.start_recording()
                self._run_search(ctx, budget)
        return self._finish(student, ctx, baseline)

    def _finish(self, student, ctx: SearchContext, baseline: float):
        results = ctx.results
        results.usage = ctx.usage()
        best = ctx.best_program
        program = student.deepcopy()
        if best is not None and best[0] > baseline:
            for target, source in zip(program.predictors(), best[1].predictors(), strict=True):
                target.load_state(source.dump_state())
        else:
            logger.warning("no candidate optimizer beat the unoptimized program (%.3f); returning it unchanged",
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
        if not trainset:
            raise ValueError("trainset must not be empty")
        trainset = list(trainset)
        if valset is None:
            trainset, valset = split_trainset(trainset)
        valset = list(valset)
        if not valset:
            raise ValueError("valset must not be empty")
        return trainset, valset
