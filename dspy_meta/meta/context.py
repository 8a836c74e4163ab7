"""`SearchContext`: what a search strategy works with, and how candidates are evaluated and recorded.

A strategy (in `MetaSearch._run_search`) proposes candidates through `propose`, runs and scores
them through `evaluate`, records refusals through `reject`, and runs independent parts side by
side through `run_branches`. The context owns the bookkeeping: usage per candidate, checkpoints,
identical candidates, the best program so far.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import random
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.utils.exceptions import AdapterParseError

from dspy_meta._side_by_side import side_by_side
from dspy_meta.evaluation import score_program
from dspy_meta.meta.checks import GuardedMetric, TooManyMetricFailures
from dspy_meta.meta.results import CandidateRecord, MetaResults
from dspy_meta.meta.storage import RunStore
from dspy_meta.meta.usage import LEVELS, CallMemo, LevelUsage, RunHalted, StopRun, UsageMeter
from dspy_meta.plans.composite import CompositeOptimizer
from dspy_meta.plans.nodes import PlanNode
from dspy_meta.redact import redact

logger = logging.getLogger(__name__)

__all__ = ["SearchContext", "screening_bound"]


def screening_bound(minibatch_score: float, size: int, confidence: float) -> float:
    """Upper confidence bound on the full validation score, from a minibatch of `size` examples.

    Hoeffding's inequality for a mean of values in [0, 1] (it also holds when the minibatch is
    drawn without replacement from the validation set).
    """
    return minibatch_score + math.sqrt(math.log(1 / (1 - confidence)) / (2 * size))


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
    screen_confidence: float = 0.9
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

    @property
    def concurrent(self) -> bool:
        """Whether independent parts of the search run side by side (more than one thread)."""
        return (self.num_threads or 1) > 1

    def run_branches(self, items: list, work: Callable[[SearchContext, Any], Any]) -> list:
        """``[work(branch, item) for item in items]``, the items run concurrently when threads allow.

        For independent pieces of a search (e.g. tuning each input optimizer's prompts). Each
        item gets a `branch` context; records are merged in item order, so the results are the
        ones a sequential run gives (only the split of usage between candidates may differ,
        when two branches ask the LM the same thing). When a branch stops the run (a usage
        limit, a permanent LM error), the others stop at their next LM call; their finished
        candidates are kept, and that first error is raised.
        """
        if len(items) <= 1 or not self.concurrent:
            return [work(self, item) for item in items]
        branches = [self.branch() for _ in items]

        def halt_siblings(exc: BaseException) -> None:
            if isinstance(exc, StopRun):
                branches[0].meters["program"].halt_run(exc)

        outcomes = side_by_side([functools.partial(work, branch, item) for branch, item in zip(branches, items)],
                                on_error=halt_siblings)
        self.merge(branches)
        errors = [value for ok, value in outcomes if not ok]
        if errors:  # the cause, not a sibling's "stopped alongside"
            raise next((e for e in errors if not isinstance(e, RunHalted)), errors[0])
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
        def encode(result) -> dict:
            score, program, reason = result
            return {"score": score, "reason": reason,
                    "program_state": program.dump_state() if program is not None else None}

        def decode(saved: dict):
            program = None
            if saved["program_state"] is not None:
                program = self.student.deepcopy()
                program.load_state(saved["program_state"])
            return saved["score"], program, saved["reason"]

        return self.checkpointed("candidates", key, lambda: self._run_plan(plan, index, stage, best_before),
                                 encode=encode, decode=decode)

    def _run_plan(self, plan: PlanNode, index: int, stage: str, best_before: float | None):
        """Run `plan` on a copy of the student and score the program; a failure gives no score and its reason."""
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
        return score, program, reason

    def _screen(self, program, best_before: float | None) -> tuple[float | None, str]:
        """Score on a minibatch first; a candidate clearly below the best so far stops there.

        Returns (minibatch score, reason) for a screened-out candidate, else (None, ""). The
        minibatch's LM answers are memoized, so a candidate that passes pays nothing twice.
        """
        size = self.screen_size
        if not size or best_before is None or size >= len(self.valset):
            return None, ""
        minibatch = random.Random(self.seed).sample(self.valset, size)
        score = score_program(program, minibatch, self.metric, num_threads=self.num_threads, lm=self.task_lm)
        bound = screening_bound(score, size, self.screen_confidence)
        if bound < best_before:
            return score, (f"screened out: {score:.3f} on a {size}-example minibatch; at "
                           f"{self.screen_confidence:.0%} confidence its validation score is at most {bound:.3f}, "
                           f"below the best so far ({best_before:.3f})")
        return None, ""

    def _restore(self, saved: dict) -> None:
        """Replay a checkpointed piece of work: its usage, and the LM answers it obtained."""
        for level, spent in saved["usage"].items():
            self.meters[level].add(LevelUsage.from_dict(spent))
        if self.memo is not None:
            self.memo.load(saved.get("memo", []))

    def _drain_memo(self) -> list:
        return self.memo.drain() if self.memo is not None else []

    def checkpointed(self, kind: str, key: str, work: Callable[[], Any],
                     encode: Callable[[Any], dict] = lambda value: {"value": value},
                     decode: Callable[[dict], Any] = lambda saved: saved["value"]):
        """`work()`'s result, from the checkpoint when it finished before; else run it and save it.

        `encode` turns the result into the document's fields (beside the usage the work spent and
        the LM answers it obtained); `decode` turns a saved document back into the result.
        """
        saved = self.store.get(kind, key) if self.store else None
        if saved is not None:
            self._restore(saved)
            return decode(saved)
        before = self.usage()
        value = work()
        if self.store:
            spent = {level: u.minus(before[level]).to_dict() for level, u in self.usage().items()}
            self.store.put(kind, key, {**encode(value), "usage": spent, "memo": self._drain_memo()})
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
