"""`StudyRunner`: the evaluator's candidates go through an Optuna study, to be run by any worker.

The driver's search is unchanged: each batch's new candidates are enqueued at once (`submit`), then
their results are read back in batch order (`result`) and judged there, so the run's records do not
depend on how many workers there are or in which order they finish. A candidate already finished in the
study (by a driver that ran before, or beside this one) is read back, never run again. While it waits,
the driver runs waiting trials itself (`StudyStorage.evaluate_here`), so one process alone finishes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from typing import Any

import dspy

from dspy_meta.errors import RunHalted
from dspy_meta.plans.composite import plan_key
from dspy_meta.runtime.factory import build_runtime
from dspy_meta.runtime.usage import LevelUsage
from dspy_meta.search.candidates import Candidate
from dspy_meta.search.evaluator import Evaluator
from dspy_meta.search.runners import CandidateResult, CandidateRunner
from dspy_meta.distributed.queue import (
    FINISHED, SCREEN, SUMMARY, StudyQueue, default_study_name, finished_trial, live, model_identity, plan_digest,
    study_storage,
)
from dspy_meta.distributed.worker import TrialWorker

logger = logging.getLogger(__name__)

__all__ = ["StudyRunner"]


def _subplans(node) -> list:
    found = [node]
    for child in getattr(node, "nodes", ()):
        found.extend(_subplans(child))
    return found


class StudyRunner(CandidateRunner):
    """Runs the evaluator's new candidates through the run's study (see the module doc)."""

    def __init__(self, queue: StudyQueue, *, lms: dict[str, dspy.BaseLM], num_threads: int | None,
                 call_timeout: float | None):
        self.queue = queue
        self._lms = lms  # the caller's LMs: the driver's own trials run on them, metered apart from the run
        self._num_threads = num_threads
        self._call_timeout = call_timeout
        self._helper: TrialWorker | None = None
        self._helper_lock = threading.Lock()  # the search's branches wait (and help) side by side
        self._trial_numbers: dict[str, int] = {}  # plan digest -> the trial whose result was read

    @classmethod
    def open(cls, storage: Any, study_name: str | None, fingerprint: dict[str, Any], *, optimizer: str,
             lms: dict[str, dspy.BaseLM], num_threads: int | None, call_timeout: float | None) -> StudyRunner:
        settings = study_storage(storage)
        name = study_name or default_study_name(optimizer, fingerprint)
        queue = StudyQueue.create(settings, name, {"fingerprint": fingerprint, "models": {
            level: model_identity(lms[level]) for level in ("program", "optimizer")}})
        logger.info("candidates queue in study %r of %s; workers: `dspy-meta worker --storage URL --study %s` "
                    "(experiment runs) or dspy_meta.distributed.run_worker(...)", name, settings.shown, name)
        return cls(queue, lms=lms, num_threads=num_threads, call_timeout=call_timeout)

    # -- CandidateRunner -------------------------------------------------------------------
    def submit(self, evaluator: Evaluator, candidates: list[tuple[Candidate, float | None]]) -> None:
        if SCREEN not in self.queue.attrs():  # before the first trial: workers screen as this driver does
            self.queue.set_attr(SCREEN, dataclasses.asdict(evaluator.screen))
        seen: set[str] = set()
        for position, (candidate, best) in enumerate(candidates):
            key = plan_key(candidate.plan)
            if key in seen or evaluator.is_known(key) or self._checkpointed(evaluator, key):
                continue
            seen.add(key)
            self._enqueue_unless_there(evaluator, candidate, key, best, position)

    def result(self, evaluator: Evaluator, candidate: Candidate, key: str, best: float | None) -> CandidateResult:
        digest = plan_digest(key)
        self._enqueue_unless_there(evaluator, candidate, key, best, 0)
        fail_only_seen = 0
        while True:
            if evaluator.runtime.halted is not None:
                raise RunHalted(evaluator.runtime.halted)
            trials = self.queue.trials_of(digest)
            done = finished_trial(trials)
            if done is not None:
                return self._read(evaluator, done)
            if not live(trials):  # only failed trials: its workers died
                failures = len(trials)
                if self.queue.retries_stale and fail_only_seen < 2:
                    fail_only_seen += 1  # the storage's retry callback is queueing a copy
                elif failures <= self.queue.settings.max_retry:
                    self._enqueue(evaluator, candidate, key, best, 0)
                    fail_only_seen = 0
                else:
                    logger.warning("candidate [%s]: its trial failed %d times; giving up on it", candidate.stage,
                                   failures)
                    return None, None, f"run failed: its trial failed {failures} times (workers stopped mid-run)", None
            if self.queue.settings.evaluate_here and self._worker(evaluator).run_one():
                continue
            self.queue.fail_stale()
            time.sleep(self.queue.settings.poll_interval)

    def finish(self, evaluator: Evaluator) -> None:
        """Mark the study finished (workers stop) with the run's outcome, for the dashboard."""
        results = evaluator.results
        accepted = [self._trial_numbers.get(plan_digest(json.dumps(c.plan, sort_keys=True)))
                    for c in results.candidates if c.accepted and c.plan is not None]
        self.queue.set_attr(SUMMARY, {"baseline_score": results.baseline_score, "best_score": results.best_score,
                                      "best_plan": results.best_plan, "accepted_trials": accepted,
                                      "candidates": len(results.candidates)})
        self.queue.set_attr(FINISHED, True)

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _checkpointed(evaluator: Evaluator, key: str) -> bool:
        store = evaluator.runtime.store
        return store is not None and store.get("candidates", key) is not None

    def _enqueue_unless_there(self, evaluator: Evaluator, candidate: Candidate, key: str, best: float | None,
                              position: int) -> None:
        trials = self.queue.trials_of(plan_digest(key))
        if finished_trial(trials) is None and not live(trials):
            self._enqueue(evaluator, candidate, key, best, position)

    def _enqueue(self, evaluator: Evaluator, candidate: Candidate, key: str, best: float | None,
                 position: int) -> None:
        known = [plan_digest(k) for k in map(plan_key, _subplans(candidate.plan)[1:]) if evaluator.is_known(k)]
        self.queue.enqueue({"stage": candidate.stage, "plan": candidate.plan.to_dict(), "lineage": candidate.lineage,
                            "plan_digest": plan_digest(key), "best_at_start": best, "position": position,
                            "known": sorted(set(known))})

    def _read(self, evaluator: Evaluator, trial) -> CandidateResult:
        """The trial's result; the usage it cost counts for the run (and this candidate)."""
        saved = StudyQueue.result_of(trial)
        for level, spent in saved.get("usage", {}).items():
            if level in evaluator.runtime.meters:
                evaluator.runtime.meters[level].add(LevelUsage.from_dict(spent))
        self._trial_numbers[trial.user_attrs["plan_digest"]] = trial.number
        return evaluator.decode_result(saved)

    def _worker(self, evaluator: Evaluator) -> TrialWorker:
        """This driver as a worker: the caller's LMs on a runtime of their own, the run's data and screen."""
        with self._helper_lock:
            if self._helper is None:
                self._helper = self._new_worker(evaluator)
        return self._helper

    def _new_worker(self, evaluator: Evaluator) -> TrialWorker:
        metric = evaluator.runtime.metric
        runtime = build_runtime(self._lms, metric=metric.branch(),
                                num_threads=self._num_threads, call_timeout=self._call_timeout)
        for level, meter in runtime.meters.items():  # the run's guard: its halts and usage limits stop these calls too
            meter.guard = evaluator.runtime.meters[level].root_guard()
        template = Evaluator(runtime, evaluator.student, evaluator.trainset, evaluator.valset, evaluator.seed,
                             screen=evaluator.screen, teacher=evaluator.teacher,
                             teacher_settings=evaluator.teacher_settings)
        return TrialWorker(self.queue, template, read_screen=False)
