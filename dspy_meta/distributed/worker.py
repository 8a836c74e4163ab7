"""Workers: processes that claim a study's waiting trials, run each candidate and store its result.

A worker rebuilds the run from what its caller gives it (the student, metric, data and LMs: Python
objects cannot travel through a study) and refuses, naming what differs, when they are not the
driver's: the study holds their hashes and the LMs' identities, never a credential (a worker takes
API keys from its own environment). `run_worker` is the entry point; `dspy-meta worker` calls it for runs
started from an experiment config.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import dspy

from dspy_meta.errors import StudyMismatch
from dspy_meta.plans.composite import plan_key
from dspy_meta.plans.nodes import plan_from_dict
from dspy_meta.runtime.calls import DEFAULT_CALL_TIMEOUT_S
from dspy_meta.runtime.checks import GuardedMetric, data_hash, sample_valset, split_trainset
from dspy_meta.runtime.factory import build_runtime
from dspy_meta.runtime.fingerprint import changed_keys, class_code_hash, code_hash, lm_identity
from dspy_meta.runtime.program_state import program_state
from dspy_meta.search.candidates import Candidate
from dspy_meta.search.evaluator import Evaluator, encode_result
from dspy_meta.search.screening import Screen
from dspy_meta.distributed.queue import (
    DESCRIPTION, SCREEN, StudyQueue, finished_trial, model_identity, plan_digest, study_storage, worker_id,
)

logger = logging.getLogger(__name__)

__all__ = ["TrialWorker", "run_worker", "worker_for"]


class TrialWorker:
    """Claims and runs trials of one study with an evaluator of its own (never the driver's runtime, so
    the usage a trial stores is what it cost, counted once)."""

    def __init__(self, queue: StudyQueue, template: Evaluator, name: str | None = None, *, read_screen: bool = True):
        self.queue = queue
        self.template = template
        self.name = name or worker_id()
        self.read_screen = read_screen  # False: the template's screen is the driver's own

    def run_one(self) -> bool:
        """Claim one waiting trial and run it; False when none was waiting."""
        trial = self.queue.claim(self.name)
        if trial is None:
            return False
        logger.info("worker %s: trial %d [%s]", self.name, trial.number, trial.user_attrs.get("stage"))
        with self.queue.heartbeat(trial):
            try:
                result = self._evaluate(trial)
            except BaseException:  # interrupted (or the worker's LM failed for good): not the candidate's fault
                self.queue.release(trial)
                raise
        self.queue.complete(trial, result)
        return True

    def serve(self, *, idle_timeout: float | None = None) -> int:
        """Run trials until the study is finished (or nothing came for `idle_timeout` seconds); how many ran."""
        ran, idle_since = 0, time.monotonic()
        while True:
            if self.queue.finished:  # before claiming: a trial left waiting by a stopped run is not run
                logger.info("worker %s: study %s is finished (%d trials run here)", self.name, self.queue.name, ran)
                return ran
            if self.run_one():
                ran, idle_since = ran + 1, time.monotonic()
                continue
            if idle_timeout is not None and time.monotonic() - idle_since > idle_timeout:
                logger.warning("worker %s: no trial for %.0f s; stopping", self.name, idle_timeout)
                return ran
            time.sleep(self.queue.settings.poll_interval)

    def _evaluate(self, trial) -> dict[str, Any]:
        attrs = trial.user_attrs
        template = self.template
        # The driver writes its screening settings before it queues the first trial.
        screen = Screen(**self.queue.attrs()[SCREEN]) if self.read_screen else template.screen
        evaluator = Evaluator(template.runtime.branch(), template.student, template.trainset, template.valset,
                              template.seed, screen=screen, teacher=template.teacher,
                              teacher_settings=template.teacher_settings)
        self._load_known(evaluator, attrs.get("known", []))
        plan = plan_from_dict(attrs["plan"])
        if plan_digest(plan_key(plan)) != attrs.get("plan_digest"):
            logger.warning("trial %d: its plan reads back differently than it was queued", trial.number)
        candidate = Candidate(plan=plan, stage=attrs.get("stage", ""), lineage=attrs.get("lineage", ""))
        with evaluator.runtime.activate():
            result = encode_result(evaluator.run_plan(candidate, attrs.get("best_at_start")))
        result["usage"] = {level: usage.to_dict() for level, usage in evaluator.runtime.usage().items()}
        return result

    def _load_known(self, evaluator: Evaluator, digests: list[str]) -> None:
        """Programs of earlier trials an ensemble member reuses (as the driver knew them)."""
        for digest_ in digests:
            done = finished_trial(self.queue.trials_of(digest_))
            if done is None:
                logger.warning("no finished trial of a known plan (%s): an ensemble member runs again", digest_)
                continue
            program = evaluator.decode_result(StudyQueue.result_of(done))[1]
            if program is not None:
                evaluator.remember(json.dumps(done.user_attrs["plan"], sort_keys=True), program)


def _resolve(lm, where: str):
    if lm is None or isinstance(lm, dspy.BaseLM):
        return lm
    if not isinstance(lm, str):
        raise TypeError(f"{where} must be a dspy.BaseLM or a model name, got {type(lm).__name__}")
    from dspy_meta.lm import make_lm

    return make_lm(lm)


def _check(description: dict[str, Any], mine: dict[str, Any], study: str) -> None:
    fingerprint = description.get("fingerprint", {})
    theirs = {key: fingerprint.get(key) for key in mine}
    if theirs != mine:
        raise StudyMismatch(f"this worker's inputs differ from the run of study {study!r} in "
                            f"{changed_keys(theirs, mine)}: give the worker the driver's student, data, metric, "
                            "teacher and LMs")


def worker_for(queue: StudyQueue, *, student: dspy.Module, metric, trainset, valset=None, task_model=None,
               prompt_model=None, teacher=None, teacher_settings: dict | None = None, num_threads: int | None = None,
               call_timeout: float | None = DEFAULT_CALL_TIMEOUT_S) -> TrialWorker:
    """A worker of `queue`'s run over these inputs, checked against the study (`StudyMismatch`)."""
    description = queue.attrs()[DESCRIPTION]
    fingerprint = description["fingerprint"]
    seed = fingerprint["seed"]
    trainset = list(trainset or [])
    if valset is None:
        trainset, valset = split_trainset(trainset)
    valset = sample_valset(list(valset), fingerprint["budget"]["max_valset"], seed)
    if isinstance(teacher, (list, tuple)):
        teacher = teacher[0] if teacher else None
    program_lm = _resolve(task_model, "task_model") or dspy.settings.lm
    own = [p.lm for p in student.predictors() if p.lm is not None]
    if program_lm is None and own and len(own) == len(student.predictors()):
        program_lm = own[0]
    if program_lm is None:
        raise ValueError("no program LM: pass task_model=... (the driver's) or call dspy.configure(lm=...)")
    optimizer_lm = _resolve(prompt_model, "prompt_model") or program_lm
    settings = dict(teacher_settings or {})
    if settings.get("lm") is not None:
        settings["lm"] = _resolve(settings["lm"], "teacher_settings['lm']")
    _check(description, {"trainset": data_hash(trainset), "valset": data_hash(valset),
                         "student": data_hash(program_state(student)),
                         "student_class": f"{type(student).__module__}.{type(student).__qualname__}",
                         "student_code": class_code_hash(type(student)),
                         "teacher": data_hash(program_state(teacher)) if teacher is not None else None,
                         "teacher_lm": lm_identity(settings["lm"]) if settings.get("lm") else None,
                         "metric": getattr(metric, "__qualname__", type(metric).__qualname__),
                         "metric_code": code_hash(metric)}, queue.name)
    mine = {"program": model_identity(program_lm), "optimizer": model_identity(optimizer_lm)}
    if mine != description["models"]:  # where each LM is served may differ (a worker's own server)
        raise StudyMismatch(f"this worker's program and optimizer LMs differ from the run of study {queue.name!r}: "
                            f"it has {mine}, the run {description['models']}")
    runtime = build_runtime({"program": program_lm, "optimizer": optimizer_lm, "meta": optimizer_lm},
                            metric=GuardedMetric(metric, fingerprint["max_metric_failures"]), num_threads=num_threads,
                            call_timeout=call_timeout)
    template = Evaluator(runtime, student, trainset, valset, seed, teacher=teacher,
                         teacher_settings=settings)
    return TrialWorker(queue, template)


def run_worker(storage, study_name: str, *, student: dspy.Module, metric, trainset, valset=None, task_model=None,
               prompt_model=None, teacher=None, teacher_settings: dict | None = None, num_threads: int | None = None,
               call_timeout: float | None = DEFAULT_CALL_TIMEOUT_S, idle_timeout: float | None = None,
               wait_for_study: float | None = None) -> int:
    """Serve a study: run its waiting trials until the driver marks it finished; returns how many ran here.

    Pass what the driver's ``compile`` got: the student, metric, trainset and valset as given to it (the
    worker splits and samples them as the driver did), its teacher, and the program (`task_model`) and
    optimizer (`prompt_model`) LMs, or `teacher_settings`; the meta LM is not needed. `storage` is the
    driver's Optuna storage URL or object (or a `StudyStorage` for heartbeat settings). The worker
    waits `wait_for_study` seconds (None: forever) for the driver to create the study; it never creates a
    database: a SQLite file that does not exist is waited for only a finite `wait_for_study`, then refused
    (`StudyMismatch` naming it).
    """
    queue = StudyQueue.load(study_storage(storage), study_name, wait=wait_for_study)
    worker = worker_for(queue, student=student, metric=metric, trainset=trainset, valset=valset,
                        task_model=task_model, prompt_model=prompt_model, teacher=teacher,
                        teacher_settings=teacher_settings, num_threads=num_threads, call_timeout=call_timeout)
    return worker.serve(idle_timeout=idle_timeout)

