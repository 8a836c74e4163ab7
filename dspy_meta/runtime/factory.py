"""`Runtime`: the machinery one meta-optimization run works through, built by `build_runtime`.

It holds the three levels' LMs, each a metered copy of the caller's (usage counted, limits
checked, identical requests answered once through the call memo, every request under the run's
thread budget), the guarded metric, the checkpoint store, and the way independent parts of a
run go side by side (`branch`, `side_by_side`). It knows nothing of candidates or strategies:
the search layer above it does.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dspy

from dspy_meta.errors import RunHalted, StopRun
from dspy_meta.runtime.adapter_memo import AdapterMemo
from dspy_meta.runtime.calls import check_call_timeout
from dspy_meta.runtime.checks import GuardedMetric, check_num_threads
from dspy_meta.runtime.log_redaction import redacted_logs
from dspy_meta.runtime.memo import CallMemo
from dspy_meta.runtime.side_by_side import side_by_side
from dspy_meta.runtime.slots import PrioritySlots
from dspy_meta.runtime.storage import RunStore
from dspy_meta.runtime.usage import LEVELS, LevelUsage, UsageLimits, UsageMeter, guard_meters

logger = logging.getLogger(__name__)

__all__ = ["Runtime", "build_runtime", "SLOT_PRIORITY"]

# Who gets a freed LM slot first: the few calls the search waits on in turn, then bulk evaluation.
SLOT_PRIORITY = {"meta": 0, "optimizer": 1, "program": 2}


class _Ledger:
    """Usage that checkpoints account for (saved or replayed), shared by a run's branches: what a run
    spent beyond it went into work that did not finish."""

    def __init__(self):
        self._usage = {level: LevelUsage() for level in LEVELS}
        self._lock = threading.Lock()
        self.running = 0  # side-by-side items still at work (an interrupt waits for them to stop)

    def add(self, usage: Mapping[str, LevelUsage]) -> None:
        with self._lock:
            for level, spent in usage.items():
                self._usage[level] = self._usage[level].plus(spent)

    def unaccounted(self, total: Mapping[str, LevelUsage]) -> dict[str, LevelUsage]:
        with self._lock:
            return {level: total[level].minus(self._usage[level]) for level in LEVELS}


@dataclass
class Runtime:
    """LMs by level, their meters, the guarded metric, the call memo and the checkpoint store of one run.

    ``lms`` maps each level (``program``, ``optimizer``, ``meta``) to its metered LM.
    """

    lms: dict[str, dspy.BaseLM]
    meters: dict[str, UsageMeter]
    metric: GuardedMetric
    num_threads: int | None = None
    store: RunStore | None = None
    memo: CallMemo | None = None
    ledger: _Ledger = dataclasses.field(default_factory=_Ledger)

    @property
    def program_lm(self) -> dspy.BaseLM:
        return self.lms["program"]

    @property
    def optimizer_lm(self) -> dspy.BaseLM:
        return self.lms["optimizer"]

    @property
    def meta_lm(self) -> dspy.BaseLM:
        return self.lms["meta"]

    @property
    def concurrent(self) -> bool:
        """Whether independent parts of the run go side by side (more than one thread)."""
        return (self.num_threads or 1) > 1

    @contextmanager
    def activate(self) -> Iterator[None]:
        """The DSPy context the run works in: the program LM by default, history on (usage is counted
        from it), and the answer memo in front of the caller's adapter. Every log record made meanwhile
        has its credentials removed (`dspy_meta.runtime.log_redaction`): DSPy logs provider errors verbatim."""
        adapter = AdapterMemo().wrap(dspy.settings.adapter or dspy.ChatAdapter())
        with redacted_logs(), dspy.context(lm=self.program_lm, adapter=adapter, disable_history=False):
            yield

    def metered(self, level: str, lm: dspy.BaseLM) -> dspy.BaseLM:
        """`lm` (a predictor's own LM, a teacher's) counted, limited and memoized as this runtime's `level` LM
        is: by the same meters (a branch's and the run's), under the same thread budget."""
        template = self.lms[level]
        for meter in getattr(template, "_dspy_meta_meters", ()):
            lm = meter.attach(lm, getattr(template, "_dspy_meta_memo", None), getattr(template, "_dspy_meta_slots", None))
        return lm

    def usage(self) -> dict[str, LevelUsage]:
        return {level: meter.snapshot() for level, meter in self.meters.items()}

    def halt(self, reason: str) -> None:
        """Stop the whole run: from now on every LM call of every branch raises `RunHalted` (an
        interrupt, or a part of the run that failed for good)."""
        guard = self.meters["program"].root_guard()
        if guard is not None and guard.halted is None:
            guard.halted = reason

    def resume(self) -> None:
        """Lift `halt` (once nothing is running): LM calls go through the guard's limits again."""
        guard = self.meters["program"].root_guard()
        if guard is not None:
            guard.halted = None

    def running_branches(self) -> int:
        """How many side-by-side items are still at work."""
        return self.ledger.running

    @property
    def halted(self) -> str | None:
        """Why the run was stopped (`halt`), or None while it runs."""
        guard = self.meters["program"].root_guard()
        return guard.halted if guard is not None else None

    def save_unfinished(self) -> None:
        """Checkpoint the usage spent on work that did not finish (the run stopped at a usage limit), so a
        resumed run counts it: with the same limit it stops at once instead of paying for it again."""
        if self.store is None:
            return
        spent = self.ledger.unaccounted(self.usage())
        self.ledger.add(spent)
        previous = self._saved_unfinished()
        total = {level: previous[level].plus(spent[level]).to_dict() for level in LEVELS}
        self.store.put("unfinished", "usage", {"usage": total})

    def replay_unfinished(self) -> None:
        """Count the usage earlier runs in this run_dir spent on unfinished work (see `save_unfinished`)."""
        if self.store is None:
            return
        previous = self._saved_unfinished()
        for level, spent in previous.items():
            self.meters[level].add(spent)
        self.ledger.add(previous)

    def _saved_unfinished(self) -> dict[str, LevelUsage]:
        saved = self.store.get("unfinished", "usage") if self.store else None
        try:
            return {level: LevelUsage.from_dict(saved["usage"][level]) for level in LEVELS}
        except (TypeError, KeyError, ValueError):
            if saved is not None:
                self.store.set_aside("unfinished", "usage", "missing or malformed usage")
            return {level: LevelUsage() for level in LEVELS}

    def branch(self) -> Runtime:
        """A runtime for work that runs beside its siblings: its own meters (which also count for the
        run), metric failure count and memo view (so its checkpoints hold the answers it obtained);
        the same LMs, thread budget, limits and checkpoint store."""
        meters = {level: UsageMeter(level, parent=self.meters[level]) for level in LEVELS}
        memo = self.memo.view() if self.memo is not None else None
        lms = {level: meters[level].attach(lm, memo) for level, lm in self.lms.items()}
        return dataclasses.replace(self, lms=lms, meters=meters, memo=memo,
                                   metric=self.metric.branch())

    def side_by_side(self, items: list, work: Callable[[Any, Any], Any], make_branch: Callable[[], Any] | None = None,
                     before_raise: Callable[[list], None] | None = None) -> list:
        """``[work(branch, item) for item in items]``, all at once, each item in its own branch.

        `make_branch` builds what each item works in (default: `branch`; the search layer passes its
        own, wrapping a branch runtime). `before_raise(branches)` runs once every item has ended,
        whether or not one failed (the search merges the branches' records there). When one item stops
        the run (a usage limit, a permanent LM error), the others stop at their next LM call, and that
        first error is raised.
        """
        branches = [(make_branch or self.branch)() for _ in items]

        def halt_siblings(exc: BaseException) -> None:
            if isinstance(exc, StopRun):
                self.meters["program"].halt_run(exc)

        def tracked(branch, item):
            with self.ledger._lock:
                self.ledger.running += 1
            try:
                return work(branch, item)
            finally:
                with self.ledger._lock:
                    self.ledger.running -= 1

        outcomes = side_by_side([functools.partial(tracked, branch, item) for branch, item in zip(branches, items)],
                                on_error=halt_siblings)
        if before_raise is not None:
            before_raise(branches)
        errors = [value for ok, value in outcomes if not ok]
        if errors:  # the cause, not a sibling's "stopped alongside"
            raise next((e for e in errors if not isinstance(e, RunHalted)), errors[0])
        return [value for _, value in outcomes]

    def checkpointed(self, kind: str, key: str, work: Callable[[], Any],
                     encode: Callable[[Any], dict] = lambda value: {"value": value},
                     decode: Callable[[dict], Any] = lambda saved: saved["value"]):
        """`work()`'s result, from the checkpoint when it finished before; else run it and save it.

        `encode` turns the result into the document's fields (beside the usage the work spent and
        the LM answers it obtained); `decode` turns a saved document back into the result.
        """
        saved = self.store.get(kind, key) if self.store else None
        if saved is not None:
            try:  # read everything before changing anything: a corrupt document is set aside whole
                value = decode(saved)
                usage = {level: LevelUsage.from_dict(spent) for level, spent in saved["usage"].items()
                         if level in self.meters}
                answers = [list(pair) for pair in saved.get("memo", []) if len(pair) == 2]
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                self.store.set_aside(kind, key, f"missing or malformed field: {type(exc).__name__}: {exc}")
            else:
                for level, spent in usage.items():
                    self.meters[level].add(spent)
                self.ledger.add(usage)
                if self.memo is not None:
                    self.memo.load(answers)
                return value
        before = self.usage()
        value = work()
        if self.store:
            spent = {level: u.minus(before[level]) for level, u in self.usage().items()}
            self.ledger.add(spent)
            drained = self.memo.drain() if self.memo is not None else []
            self.store.put(kind, key, {**encode(value), "usage": {level: u.to_dict() for level, u in spent.items()},
                                       "memo": drained})
        return value


def build_runtime(lms: Mapping[str, dspy.BaseLM], *, metric: GuardedMetric, num_threads: int | None = None,
                  limits: UsageLimits | None = None, store: RunStore | None = None,
                  keep_answers: bool | None = None, call_timeout: float | None = None,
                  rate_limit_wait: float | None = None) -> Runtime:
    """The runtime of one run over the caller's LMs (``{"program": ..., "optimizer": ..., "meta": ...}``).

    The caller's LM objects are not changed. `num_threads` is the run's thread budget: at most this
    many LM requests in flight at once, at all levels however evaluations nest (None: DSPy's
    ``num_threads`` setting). LM answers are kept for checkpoints (`keep_answers`) when there is a
    `store` to write them to, unless told otherwise. `call_timeout` bounds each LM request (seconds;
    None: no bound) and `rate_limit_wait` how long a rate-limited request keeps waiting after DSPy's
    retries (`dspy_meta.runtime.calls`).
    """
    missing = set(LEVELS) - set(lms)
    if missing:
        raise ValueError(f"build_runtime needs an LM for every level; missing {sorted(missing)}")
    check_call_timeout(call_timeout)  # workers build their runtime without `MetaSearch.compile`'s checks
    check_num_threads(num_threads)
    meters = {level: UsageMeter(level) for level in LEVELS}
    guard_meters(meters, limits)
    memo = CallMemo(checkpointed=store is not None if keep_answers is None else keep_answers)
    slots = PrioritySlots(num_threads or dspy.settings.num_threads or 1)
    metered = {level: meters[level].attach(lms[level], memo, slots.at(SLOT_PRIORITY[level]), call_timeout=call_timeout,
                                           rate_limit_wait=rate_limit_wait) for level in LEVELS}
    return Runtime(lms=metered, meters=meters, metric=metric, num_threads=num_threads, store=store, memo=memo)
