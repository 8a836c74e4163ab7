"""`Evaluator`: runs, scores, screens, replays and judges the candidates search strategies propose.

The whole life of one candidate is in this file: a strategy's `ask` proposes it; `evaluate`
recognises it if an identical plan ran before, else runs the plan on a copy of the student
(or replays the checkpointed run), screens it on a minibatch, scores it on validation, judges
it with the one acceptance rule against the best so far of its search (its *lineage*) and of
the run, records it with its usage, and the strategy is told (`tell`). Strategies only choose
candidates; this class owns everything else, so any driver (a loop here, a queue of workers)
can run the same strategies.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dspy

from dspy_meta.errors import BudgetExhausted, TooManyMetricFailures
from dspy_meta.plans.composite import CompositeOptimizer, plan_key
from dspy_meta.programs import rebuild, structure_of
from dspy_meta.runtime.factory import Runtime
from dspy_meta.runtime.program_state import load_program_state, program_state, with_predictor_lms
from dspy_meta.runtime.redact import redact
from dspy_meta.runtime.scoring import PredictorCalls, ProgramScore, evaluate_program
from dspy_meta.runtime.usage import LEVELS, LevelUsage
from dspy_meta.search.acceptance import AcceptanceRule, ImprovesOnBest, rule_accepts
from dspy_meta.search.candidates import Candidate, Rejection
from dspy_meta.search.failures import raise_if_not_the_candidates
from dspy_meta.search.proposals import Proposer
from dspy_meta.search.results import CandidateRecord, MetaResults
from dspy_meta.search.runners import CandidateResult, CandidateRunner, LocalRunner
from dspy_meta.search.screening import Screen
from dspy_meta.search.strategies.base import SearchStrategy
from dspy_meta.tracking.base import NullTracker, Tracker

logger = logging.getLogger(__name__)

__all__ = ["Evaluator", "encode_result"]


def encode_result(result: CandidateResult) -> dict:
    """A finished candidate's result as JSON-able fields: what its checkpoint holds, and what a worker
    stores on its trial (`Evaluator.decode_result` reads it back)."""
    program = result.program
    return {"score": result.score, "reason": result.reason, "calls_per_example": result.calls_per_example,
            "example_scores": list(result.example_scores) if result.example_scores is not None else None,
            "structure": structure_of(program) if program is not None else None,
            "program_state": program_state(program) if program is not None else None}


def _added(a: dict[str, LevelUsage], b: dict[str, LevelUsage]) -> dict[str, LevelUsage]:
    zero = LevelUsage()
    return {level: a.get(level, zero).plus(b.get(level, zero)) for level in LEVELS}


def _judging_order(record: CandidateRecord, best_at_start: dict[str, float | None]) -> tuple:
    """Sort key of a batch's records for judging: a lineage's openers best mean first, the rest in order."""
    if best_at_start.get(record.lineage) is None and record.score is not None:
        return (0, -record.score, record.index)
    return (1, record.index)


@dataclass
class Evaluator:
    """Owns evaluation and the best so far; strategies only propose (see the module doc)."""

    runtime: Runtime
    student: dspy.Module
    trainset: list
    valset: list
    seed: int
    screen: Screen = field(default_factory=Screen)
    acceptance: AcceptanceRule = field(default_factory=ImprovesOnBest)
    progress: Any = None  # a tqdm bar over candidates, or None
    results: MetaResults = field(default_factory=MetaResults)
    teacher: dspy.Module | None = None  # the program inner optimizers bootstrap demos with (None: the student)
    teacher_settings: dict[str, Any] = field(default_factory=dict)  # DSPy settings while bootstrapping (lm=...)
    tracker: Tracker = field(default_factory=NullTracker)  # told of every judged or rejected candidate
    runner: CandidateRunner = field(default_factory=LocalRunner)  # who runs new candidates: here, or workers
    baseline_examples: tuple[float, ...] | None = None  # the unoptimized student's score per validation example
    _programs: dict[str, CandidateResult] = field(default_factory=dict)
    _incumbents: dict[str, float] = field(default_factory=dict)  # lineage -> its best score so far
    _incumbent_examples: dict[str, tuple[float, ...] | None] = field(default_factory=dict)  # ... and per example
    _best: tuple[float, dspy.Module] | None = None
    _best_examples: tuple[float, ...] | None = None
    _best_opened_lineage: bool = False  # the run's best is a lineage opener (an input), not a search's win
    _progress_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def proposer(self) -> Proposer:
        return Proposer(self.runtime, self.trainset, self.seed)

    @property
    def best_program(self) -> tuple[float, dspy.Module] | None:
        return self._best

    @property
    def best_is_an_input(self) -> bool:
        return self._best is not None and self._best_opened_lineage

    @property
    def best_examples(self) -> tuple[float, ...] | None:
        """The best program's score on each validation example (None when unknown)."""
        return self._best_examples

    def program_of(self, record: CandidateRecord) -> dspy.Module | None:
        """The program a recorded candidate produced (None when it was rejected or failed)."""
        if record.plan is None:
            return None
        entry = self._programs.get(json.dumps(record.plan, sort_keys=True))
        return entry.program if entry is not None else None

    def _metered(self, program: dspy.Module) -> dspy.Module:
        """A copy of `program` whose predictor-level LMs (``set_lm``) run through this runtime's program level."""
        return with_predictor_lms(program, lambda lm: self.runtime.metered("program", lm))

    # -- driving strategies ------------------------------------------------------------
    def run(self, strategy: SearchStrategy) -> SearchStrategy:
        """The ask/tell loop: evaluate what the strategy asks for until it asks for nothing."""
        while batch := strategy.ask(self.proposer):
            strategy.tell(self.evaluate(batch))
        return strategy

    def run_closing(self, strategy: SearchStrategy) -> SearchStrategy:
        """`run` once the search has ended, even stopped by a usage limit: the stop is lifted for it (nothing
        else runs now), so answers the run remembers cost nothing and a new call beyond the limit ends it
        (logged) instead of running."""
        stopped = self.runtime.halted
        self.runtime.resume()
        try:
            return self.run(strategy)
        except BudgetExhausted as stop:
            logger.info("closing step skipped: %s (it needed answers the run had not seen)", stop)
            return strategy
        finally:
            if stopped is not None:
                self.runtime.halt(stopped)

    def run_side_by_side(self, parts: Sequence[Callable[[Evaluator], Any]]) -> list:
        """``[part(self) for part in parts]``, at once when threads allow, each part in its own branch.

        Records are merged in part order, as if the parts had run one after another, so results do
        not depend on the thread count (only the split of usage between candidates may, when two
        parts need the same LM answer at once).
        """
        if len(parts) <= 1 or not self.runtime.concurrent:
            return [part(self) for part in parts]
        return self.runtime.side_by_side(list(parts), lambda branch, part: part(branch), make_branch=self._branch,
                                         before_raise=self._merge)

    def evaluate(self, batch: Sequence[Candidate | Rejection]) -> list[CandidateRecord]:
        """Record every item of a batch, in order: rejections as they are; candidates run (side by side
        when there are several and threads allow), then judged, each against those judged before it.

        Candidates that open a lineage (it had no best when the batch began, e.g. the library's optimizers
        run alone) are peers: the best mean among them (the earliest on a tie) is judged first, so which
        one becomes the lineage's best does not depend on their order in the batch."""
        records: list[CandidateRecord | None] = [self._reject(item) if isinstance(item, Rejection) else None
                                                 for item in batch]
        candidates = [(i, item) for i, item in enumerate(batch) if isinstance(item, Candidate)]
        # Screening compares with the best as the batch began, so it does not depend on the run order.
        best_at_start = {c.lineage: self._incumbents.get(c.lineage) for _, c in candidates}
        self.runner.submit(self, [(c, best_at_start[c.lineage]) for _, c in candidates])
        if len(candidates) > 1 and self.runtime.concurrent:
            def run_one(branch: Evaluator, candidate: Candidate):
                return branch._run(candidate, best_at_start[candidate.lineage])

            merged_from = len(self.results.candidates)
            try:
                scored = self.runtime.side_by_side([c for _, c in candidates], run_one, make_branch=self._branch,
                                                   before_raise=self._merge)
            except BaseException:  # a usage limit or Ctrl-C stopped a sibling: what finished still counts
                self._judge_finished(self.results.candidates[merged_from:], [c for _, c in candidates],
                                     best_at_start)
                raise
        else:
            scored = []
            try:
                for _, candidate in candidates:
                    scored.append(self._run(candidate, best_at_start[candidate.lineage]))
            except BaseException:  # a usage limit or Ctrl-C: what finished still counts
                self._judge_batch(scored, [c for _, c in candidates], best_at_start)
                raise
        for i, (record, _) in zip((i for i, _ in candidates), scored, strict=True):
            records[i] = record
        self._judge_batch(scored, [c for _, c in candidates], best_at_start)
        return records

    def _judge_finished(self, records: list[CandidateRecord], candidates: list[Candidate],
                        best_at_start: dict[str, float | None]) -> None:
        """Judge the records side-by-side branches merged before one of them stopped the batch (the others
        finished: their scores are comparable and must not go unjudged)."""
        by_plan = {plan_key(c.plan): c for c in candidates}
        keys = [json.dumps(r.plan, sort_keys=True) if r.plan is not None else None for r in records]
        finished = [(r, key) for r, key in zip(records, keys) if key in by_plan]
        self._judge_batch([(r, self.program_of(r)) for r, _ in finished], [by_plan[key] for _, key in finished],
                          best_at_start)

    def _judge_batch(self, scored: list, candidates: list[Candidate], best_at_start: dict[str, float | None]) -> None:
        derived = {id(record) for (record, _), candidate in zip(scored, candidates) if candidate.derived}
        for record, program in sorted(scored, key=lambda item: _judging_order(item[0], best_at_start)):
            if id(record) in derived:
                self._judge(record, program, derived=True)
            else:
                self._judge(record, program, opens_lineage=best_at_start.get(record.lineage) is None)

    def score_baseline(self) -> ProgramScore | None:
        """The unoptimized student's validation score and per-example scores (checkpointed); None: metric failed."""
        def score() -> ProgramScore | None:
            self.runtime.metric.reset()
            try:
                return evaluate_program(self._metered(self.student), self.valset, self.runtime.metric,
                                        num_threads=self.runtime.num_threads, lm=self.runtime.program_lm)
            except TooManyMetricFailures as exc:
                logger.warning("could not score the unoptimized program: %s", exc)
                return None

        def encode(scored: ProgramScore | None) -> dict:
            return {"value": None if scored is None else scored.mean,
                    "per_example": None if scored is None else list(scored.per_example)}

        def decode(saved: dict) -> ProgramScore | None:
            if saved["value"] is None:
                return None
            per_example = saved.get("per_example")  # absent in checkpoints of earlier versions
            return ProgramScore(saved["value"], tuple(per_example) if per_example is not None else ())

        return self.runtime.checkpointed("baseline", "baseline", score, encode=encode, decode=decode)

    # -- one candidate ---------------------------------------------------------------
    def _run(self, candidate: Candidate, best: float | None) -> tuple[CandidateRecord, dspy.Module | None]:
        """Run or recognise a candidate and record it, unjudged."""
        key = plan_key(candidate.plan)
        record = CandidateRecord(index=len(self.results.candidates), stage=candidate.stage,
                                 plan=candidate.plan.to_dict(), lineage=candidate.lineage,
                                 analysis=candidate.analysis)
        before = self.runtime.usage()
        if key in self._programs:
            result = self._programs[key]
            record.reused = True
        else:
            result = self._programs[key] = self._checkpointed_run(candidate, key, best)
        record.score, program, record.reason, record.calls_per_example = result[:4]
        record.example_scores = list(result.example_scores) if result.example_scores is not None else None
        spent = {level: u.minus(before[level]) for level, u in self.runtime.usage().items()}
        record.usage = _added(candidate.usage, spent)
        self.results.candidates.append(record)
        self._advance_progress()
        return record, program

    def _checkpointed_run(self, candidate: Candidate, key: str, best: float | None) -> CandidateResult:
        """A plan's result: from the checkpoint when it finished before, else from the runner (run here, or
        by a worker)."""
        return self.runtime.checkpointed("candidates", key, lambda: self.runner.result(self, candidate, key, best),
                                         encode=encode_result, decode=self.decode_result)

    def decode_result(self, saved: dict) -> CandidateResult:
        """The result `encode_result` saved; the program is rebuilt around a metered copy of the student."""
        program = None
        if saved["program_state"] is not None:
            program = rebuild(self._metered(self.student), saved.get("structure"))
            load_program_state(program, saved["program_state"])
        examples = saved.get("example_scores")  # absent in checkpoints of earlier versions
        return CandidateResult(saved["score"], program, saved["reason"], saved.get("calls_per_example"),
                               tuple(examples) if examples is not None else None)

    def is_known(self, key: str) -> bool:
        """Whether a plan (by `plan_key`) was evaluated in this run already (it will not run again)."""
        return key in self._programs

    def known_program(self, key: str) -> dspy.Module | None:
        entry = self._programs.get(key)
        return entry.program if entry is not None else None

    def remember(self, key: str, program: dspy.Module) -> None:
        """Make a program found elsewhere (by a worker's earlier trial) known, so an ensemble member with
        that plan reuses it as it does in the run that found it."""
        self._programs.setdefault(key, CandidateResult(None, program, "", None))

    def run_plan(self, candidate: Candidate, best: float | None) -> CandidateResult:
        """Run the plan on a copy of the student and score its program; a failure gives no score and its reason.

        `best`: the best score of the candidate's lineage as its batch began (screening compares with it)."""
        runtime = self.runtime
        runtime.metric.reset()
        try:
            known = {key: entry.program for key, entry in self._programs.items() if entry.program is not None}
            settings = dict(self.teacher_settings)
            if settings.get("lm") is not None:
                settings["lm"] = runtime.metered("program", settings["lm"])
            composite = CompositeOptimizer(candidate.plan, runtime.metric, prompt_model=runtime.optimizer_lm,
                                           task_model=runtime.program_lm, num_threads=runtime.num_threads,
                                           seed=self.seed, known_programs=known, teacher_settings=settings or None)
            teacher = self._metered(self.teacher) if self.teacher is not None else None
            program = composite.compile(self._metered(self.student), trainset=self.trainset, valset=self.valset,
                                        teacher=teacher)
            screened, reason = self.screen.check(program, best, self.valset, runtime)
            if screened is not None:  # a minibatch score is not comparable: no validation score
                return CandidateResult(None, program, reason, None)
            counter = PredictorCalls()
            with dspy.context(callbacks=[*dspy.settings.callbacks, counter]):
                scored = evaluate_program(program, self.valset, runtime.metric, num_threads=runtime.num_threads,
                                          lm=runtime.program_lm)
            return CandidateResult(scored.mean, program, "", counter.calls / len(self.valset), scored.per_example)
        except (Exception, TooManyMetricFailures) as exc:  # one failing candidate must not end the run
            raise_if_not_the_candidates(exc, runtime.halted)  # a stopped run, or max_errors while bootstrapping
            reason = f"run failed: {type(exc).__name__}: {redact(exc)}"
            logger.warning("candidate [%s] %s", candidate.stage, reason)
            return CandidateResult(None, None, reason, None)

    def _replaces_run_best(self, score: float | None, examples: tuple[float, ...] | None,
                           opens_lineage: bool) -> bool:
        """Whether a candidate becomes the run's best. Lineage openers (the inputs each search starts from)
        are peers across the run, as within a batch: while the run's best is one of them, a higher mean
        suffices (the best input, not the first one to finish). A search's own candidates, and anything
        against a best that won a paired test, need the acceptance rule."""
        current = self._best[0] if self._best else None
        if opens_lineage and self._best_opened_lineage:
            return score is not None and (current is None or score > current)
        return rule_accepts(self.acceptance, score, current, examples, self._best_examples)

    def _judge(self, record: CandidateRecord, program: dspy.Module | None, opens_lineage: bool = False,
               derived: bool = False) -> None:
        """The one place a candidate is accepted or not: against its lineage's best, and the run's. A derived
        candidate (built from found programs) that opens its lineage is judged against the run's best."""
        incumbent = self._incumbents.get(record.lineage)
        incumbent_examples = self._incumbent_examples.get(record.lineage)
        against = record.lineage
        if derived and incumbent is None and self._best is not None:
            incumbent, incumbent_examples, against = self._best[0], self._best_examples, "the run"
        examples = tuple(record.example_scores) if record.example_scores is not None else None
        record.best_before = incumbent
        record.accepted = rule_accepts(self.acceptance, record.score, incumbent, examples, incumbent_examples)
        if record.score is not None and not record.reason:
            record.reason = self.acceptance.reason(record.score, incumbent, against, examples, incumbent_examples)
        if record.accepted:
            self._incumbents[record.lineage] = record.score
            self._incumbent_examples[record.lineage] = examples
        if self._replaces_run_best(record.score, examples, opens_lineage):
            self._best, self._best_examples = (record.score, program), examples
            self._best_opened_lineage = opens_lineage
            self.results.best_score, self.results.best_plan = record.score, record.plan
        logger.info("candidate [%s] score=%s: %s", record.stage, record.score, record.reason)
        self.tracker.candidate(record)

    def _reject(self, rejection: Rejection) -> CandidateRecord:
        logger.warning("rejected %s proposal: %s", rejection.stage, redact(rejection.reason))
        record = CandidateRecord(index=len(self.results.candidates), stage=rejection.stage, plan=None,
                                 lineage=rejection.lineage, best_before=self._incumbents.get(rejection.lineage),
                                 reason=rejection.reason, usage=_added(rejection.usage, {}))
        self.results.candidates.append(record)
        self._advance_progress(planned=1 if rejection.retried else 0)
        self.tracker.candidate(record)
        return record

    # -- branches --------------------------------------------------------------------
    def _branch(self) -> Evaluator:
        """An evaluator for work beside its siblings: its own runtime branch and records; it knows every
        candidate evaluated so far and shares the progress bar."""
        return dataclasses.replace(self, runtime=self.runtime.branch(), results=MetaResults(),
                                   _programs=dict(self._programs), _incumbents=dict(self._incumbents),
                                   _incumbent_examples=dict(self._incumbent_examples), _best=None,
                                   _best_examples=None, _best_opened_lineage=False)

    def _merge(self, branches: list[Evaluator]) -> None:
        """Take the branches' records in branch order, as if they had run one after another."""
        for branch in branches:
            for record in branch.results.candidates:
                record.index = len(self.results.candidates)
                self.results.candidates.append(record)
            self._programs.update(branch._programs)
            self._incumbents.update(branch._incumbents)
            self._incumbent_examples.update(branch._incumbent_examples)
            self.results.best_optimizers.update(branch.results.best_optimizers)
            if branch._best is not None and self._replaces_run_best(branch._best[0], branch._best_examples,
                                                                    branch._best_opened_lineage):
                self._best, self._best_examples = branch._best, branch._best_examples
                self._best_opened_lineage = branch._best_opened_lineage
                self.results.best_score, self.results.best_plan = branch.results.best_score, branch.results.best_plan

    def _advance_progress(self, *, planned: int = 0) -> None:
        if self.progress is None:
            return
        with self._progress_lock:
            if planned and self.progress.total is not None:
                self.progress.total += planned
                self.progress.refresh()
            self.progress.update(1)
            self.progress.set_postfix(best=self.results.best_score)
