"""An Optuna study as the queue of a run's candidates (Optuna's storage is the only scheduler).

The driver enqueues each candidate as a WAITING trial whose user attributes hold its plan, stage,
lineage and the best score screening compares with; any process claims a waiting trial (WAITING ->
RUNNING, a transition the storage makes for one process only), runs it, stores its result on the trial
and completes it. While it runs, the worker beats (RDB storages); a trial whose heartbeat stops is
failed by whoever looks next, and Optuna's retry callback queues a copy that another worker finishes.

Trial states: COMPLETE (scored; the value is the validation score), PRUNED (screened out, the run
failed, or a duplicate of a lower-numbered trial of the same plan, which is never run). The study's user
attributes describe the run (fingerprint, screening, how workers rebuild it), never a credential.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import inspect
import json
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import StorageInternalError, UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url

from dspy_meta.errors import StudyMismatch
from dspy_meta.runtime.files import file_lock
from dspy_meta.runtime.fingerprint import changed_keys, digest
from dspy_meta.runtime.redact import is_secret_setting, redact

logger = logging.getLogger(__name__)

__all__ = ["StudyStorage", "StudyQueue", "plan_digest", "default_study_name", "study_storage", "worker_id",
           "model_identity"]

DESCRIPTION, SCREEN, RECIPE, FINISHED, SUMMARY, HEARTBEAT = (
    "dspy_meta_run", "dspy_meta_screen", "dspy_meta_recipe", "dspy_meta_finished", "dspy_meta_summary",
    "dspy_meta_heartbeat")
# MySQL's TEXT column holds 64 KiB; a JSON string of JSON escapes quotes: results go in chunks.
_CHUNK = 8000
_LIVE = (TrialState.WAITING, TrialState.RUNNING)


@dataclass(frozen=True)
class StudyStorage:
    """Where a run's candidates queue and how its workers beat.

    Args:
        storage: an Optuna storage URL (``sqlite:///runs/x.db``, ``postgresql+psycopg2://...``,
            ``mysql+pymysql://...``) or storage object (``RDBStorage``, ``JournalStorage``; an object is
            used as configured, heartbeats and retries included).
        heartbeat_interval: seconds between a worker's heartbeats (URL storages).
        grace_period: seconds without a heartbeat after which a running trial counts as dead (default 3
            heartbeats).
        max_retry: how often a dead worker's trial is queued again before its candidate counts as failed.
        poll_interval: seconds between looks at the study while waiting.
        evaluate_here: the driving compile runs waiting trials itself while it waits (one process alone
            still finishes the run); False leaves them to workers.
        recipe: how `dspy-meta worker` rebuilds the run (an experiment config; set by the experiment runner).
    """

    storage: Any
    heartbeat_interval: int = 10
    grace_period: int | None = None
    max_retry: int = 3
    poll_interval: float = 1.0
    evaluate_here: bool = True
    recipe: dict[str, Any] | None = None

    def open(self) -> optuna.storages.BaseStorage:
        if not isinstance(self.storage, str):
            if not isinstance(self.storage, optuna.storages.BaseStorage):
                raise TypeError(f"storage must be an Optuna storage URL or object, got {type(self.storage).__name__}")
            return self.storage
        return _rdb_storage(self.storage, self.heartbeat_interval, self.grace_period or 3 * self.heartbeat_interval,
                            self.max_retry)

    @property
    def shown(self) -> str:
        """The storage as it may be logged (credentials in a URL removed)."""
        return redact(self.storage) if isinstance(self.storage, str) else type(self.storage).__name__

    @property
    def sqlite_file(self) -> Path | None:
        """The database file of a SQLite URL (None for other storages and for an in-memory database)."""
        if not isinstance(self.storage, str) or not self.storage.startswith("sqlite"):
            return None
        try:
            database = make_url(self.storage).database
        except Exception:  # noqa: BLE001 -- not a URL SQLAlchemy reads: `open` says so
            return None
        return Path(database) if database and database != ":memory:" else None

    def open_existing(self, wait: float | None = 0) -> optuna.storages.BaseStorage:
        """`open`, for a worker, which never creates the database (a mistyped SQLite path was created empty and
        waited on forever): a missing SQLite file is waited for up to a finite `wait`, then refused, named."""
        path = self.sqlite_file
        if path is not None and not path.exists():
            deadline = time.monotonic() + (wait or 0)
            while not path.exists() and time.monotonic() < deadline:
                time.sleep(self.poll_interval)
            if not path.exists():
                raise StudyMismatch(f"no database file {str(path)!r} (from the storage {self.shown}): a worker does "
                                    "not create one; check the path, or start the driver first (it creates the "
                                    "database and the study)")
        return self.open()


def study_storage(storage: Any) -> StudyStorage:
    """`storage` (a URL, an Optuna storage, or a `StudyStorage`) as a `StudyStorage`."""
    return storage if isinstance(storage, StudyStorage) else StudyStorage(storage)


@functools.lru_cache(maxsize=None)
def _rdb_storage(url: str, heartbeat_interval: int, grace_period: int, max_retry: int):
    """One engine per URL and settings in a process (a driver's threads and its own worker share it)."""
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or \
        optuna.storages.RetryFailedTrialCallback
    callback_arg = "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in \
        inspect.signature(optuna.storages.RDBStorage).parameters else "failed_trial_callback"
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(3):  # processes that open a new database at once race to create its tables
        with warnings.catch_warnings():  # heartbeats and the retry callback are marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", FutureWarning)
            try:
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                                  heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                                                  **{callback_arg: retry(max_retry=max_retry)})
            except Exception as exc:  # noqa: BLE001 -- SQLAlchemy's errors quote the URL, password included
                racing = type(exc).__name__ in ("OperationalError", "IntegrityError")  # SQLAlchemy's, on a new schema
                if attempt == 2 or not racing:
                    raise ValueError(f"cannot open the Optuna storage {redact(url)}: {type(exc).__name__}: "
                                     f"{redact(exc)}") from None
        time.sleep(0.2 + 0.3 * attempt)


# Where an LM is reached, not what it is: workers may reach the same model through servers of their own.
_LOCATION_SETTINGS = ("api_base", "base_url", "api_version", "timeout", "num_retries")


def model_identity(lm) -> str:
    """An LM's model and settings without credentials or where it is served (workers' LMs must match it)."""
    settings = {k: v for k, v in sorted(getattr(lm, "kwargs", {}).items())
                if not is_secret_setting(k) and k not in _LOCATION_SETTINGS}
    return redact(f"{getattr(lm, 'model', type(lm).__name__)} {settings}")


def plan_digest(key: str) -> str:
    """A short name for a plan key (`plan_key`): trials of the same plan carry the same digest."""
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def default_study_name(optimizer: str, fingerprint: dict[str, Any]) -> str:
    """The study of a run: the same settings, data, student, metric and LMs give the same name."""
    return f"dspy-meta-{optimizer}-{digest(fingerprint)}"


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _retrying(call: Callable[[], Any], attempts: int = 8) -> Any:
    """A storage call, again after a transient error (SQLite's lock contention between processes)."""
    for attempt in range(attempts):
        try:
            return call()
        except StorageInternalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * 2 ** attempt)


class StudyQueue:
    """One run's study: its description, its trials as a queue of candidates, and their results."""

    def __init__(self, settings: StudyStorage, study: optuna.Study):
        self.settings = settings
        self.study = study
        self.storage = study._storage
        self.name = study.study_name

    # -- the study -------------------------------------------------------------------------
    @classmethod
    def create(cls, settings: StudyStorage, name: str, description: dict[str, Any]) -> StudyQueue:
        """Create the run's study, or join it (a restarted or second driver); `StudyMismatch` when a
        study of that name describes another run."""
        storage = settings.open()
        study = _retrying(lambda: optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                                      load_if_exists=True))
        queue = cls(settings, study)
        saved = queue.attrs().get(DESCRIPTION)
        if saved is not None and saved != description:
            changed = changed_keys(saved.get("fingerprint", {}), description.get("fingerprint", {})) \
                if isinstance(saved, dict) else ["description"]
            raise StudyMismatch(f"study {name!r} in {settings.shown} holds a different run (differs in {changed}); "
                                "use another study_name or the original settings")
        if saved is None:
            queue.set_attr(DESCRIPTION, description)
        queue.set_attr(FINISHED, False)  # a resumed run (a higher usage limit) needs its workers again
        if settings.recipe is not None:
            queue.set_attr(RECIPE, settings.recipe)
        if isinstance(settings.storage, str):  # every process must judge a worker dead after the same silence
            queue.set_attr(HEARTBEAT, {"heartbeat_interval": settings.heartbeat_interval,
                                       "grace_period": settings.grace_period, "max_retry": settings.max_retry})
        return queue

    @classmethod
    def load(cls, settings: StudyStorage, name: str, *, wait: float | None = 0) -> StudyQueue:
        """An existing run's study; waits up to `wait` seconds (None: forever) for a driver to create it. A
        SQLite database file that does not exist is waited for only a finite `wait` (`StudyStorage.open_existing`)."""
        storage = settings.open_existing(wait)
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            try:
                queue = cls(settings, _retrying(lambda: optuna.load_study(study_name=name, storage=storage)))
                attrs = queue.attrs()
                if DESCRIPTION in attrs:
                    return queue._with_drivers_heartbeat(attrs.get(HEARTBEAT))
            except KeyError:
                pass
            if deadline is not None and time.monotonic() >= deadline:
                raise StudyMismatch(f"no dspy-meta study {name!r} in {settings.shown}: start the run (compile "
                                    "with storage=...) or check the name")
            time.sleep(settings.poll_interval)

    def _with_drivers_heartbeat(self, heartbeat: dict[str, Any] | None) -> StudyQueue:
        """This study opened with the driver's heartbeat settings (a URL storage's workers follow the driver)."""
        if heartbeat is None or not isinstance(self.settings.storage, str):
            return self
        settings = dataclasses.replace(self.settings, **heartbeat)
        if settings == self.settings:
            return self
        storage = settings.open()
        return StudyQueue(settings, _retrying(lambda: optuna.load_study(study_name=self.name, storage=storage)))

    def attrs(self) -> dict[str, Any]:
        return _retrying(lambda: self.storage.get_study_user_attrs(self.study._study_id))

    def set_attr(self, name: str, value: Any) -> None:
        _retrying(lambda: self.storage.set_study_user_attr(self.study._study_id, name, value))

    @property
    def finished(self) -> bool:
        return bool(self.attrs().get(FINISHED))

    # -- trials ----------------------------------------------------------------------------
    def trials(self, states: tuple[TrialState, ...] | None = None) -> list[FrozenTrial]:
        return _retrying(lambda: self.storage.get_all_trials(self.study._study_id, deepcopy=False, states=states))

    def trials_of(self, digest_: str) -> list[FrozenTrial]:
        """The trials of one plan, duplicates left out."""
        return [t for t in self.trials() if t.user_attrs.get("plan_digest") == digest_
                and "duplicate_of" not in t.user_attrs]

    def enqueue(self, attrs: dict[str, Any]) -> None:
        _retrying(lambda: self.study.enqueue_trial({}, user_attrs=attrs))

    def fail_stale(self) -> None:
        """Fail the running trials whose worker stopped beating (the retry callback queues copies).

        On SQLite the check is serialised between processes (as claims are): SQLite ignores the row lock
        Optuna takes, so two processes could both fail the same trial and each queue a copy of it.
        """
        with warnings.catch_warnings(), self._sqlite_lock():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            with contextlib.suppress(StorageInternalError):
                optuna.storages.fail_stale_trials(self.study)

    def _sqlite_lock(self) -> contextlib.AbstractContextManager:
        url = self.settings.storage
        if not isinstance(url, str) or not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
            return contextlib.nullcontext()
        return file_lock(url[len("sqlite:///"):].split("?")[0] + ".queue.lock")

    @property
    def retries_stale(self) -> bool:
        """Whether the storage queues a copy of a trial whose worker died (its stale-trial callback)."""
        getter = getattr(self.storage, "get_heartbeat_stale_trial_callback", None) or \
            getattr(self.storage, "get_failed_trial_callback", None)
        return getter is not None and getter() is not None and self.heartbeat_interval is not None

    @property
    def heartbeat_interval(self) -> int | None:
        getter = getattr(self.storage, "get_heartbeat_interval", None)
        return getter() if getter is not None else None

    def claim(self, worker: str) -> FrozenTrial | None:
        """A waiting trial, now RUNNING for this process alone; None when none waits.

        A trial whose plan already has a lower-numbered live or finished trial (two drivers enqueued it
        at once) is marked a duplicate instead of being run, so no candidate runs twice.
        """
        self.fail_stale()
        for trial in sorted(self.trials((TrialState.WAITING,)), key=lambda t: t.number):
            if self.heartbeat_interval is not None:  # before the claim: a worker killed right after it is noticed
                _retrying(lambda: self.storage.record_heartbeat(trial._trial_id))
            try:
                with self._sqlite_lock():  # SQLite: another process may have read WAITING too
                    if _retrying(lambda: self.storage.get_trial(trial._trial_id)).state != TrialState.WAITING or \
                            not _retrying(lambda: self.storage.set_trial_state_values(trial._trial_id,
                                                                                      TrialState.RUNNING)):
                        continue
            except UpdateFinishedTrialError:
                continue
            earlier = [t for t in self.trials_of(trial.user_attrs.get("plan_digest", ""))
                       if t.number < trial.number and t.state != TrialState.FAIL]
            try:
                if earlier:
                    self._finish(trial._trial_id, {"duplicate_of": earlier[0].number, "worker": worker}, None)
                    continue
                self._set_trial_attr(trial._trial_id, "worker", worker)
            except UpdateFinishedTrialError:  # taken for dead already (a slow storage): its copy will be queued
                continue
            return self.storage.get_trial(trial._trial_id)
        return None

    @contextlib.contextmanager
    def heartbeat(self, trial: FrozenTrial) -> Iterator[None]:
        """Beat for `trial` while the block runs (no-op on a storage without heartbeats)."""
        interval = self.heartbeat_interval
        if interval is None:
            yield
            return
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(interval):
                try:
                    self.storage.record_heartbeat(trial._trial_id)
                except Exception as exc:  # noqa: BLE001 -- a missed beat is retried at the next interval
                    logger.warning("heartbeat of trial %d failed: %s", trial.number, redact(exc))

        thread = threading.Thread(target=beat, name=f"dspy-meta-heartbeat-{trial.number}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def release(self, trial: FrozenTrial) -> None:
        """Give a claimed trial back to the queue (its worker was interrupted, not the candidate)."""
        with contextlib.suppress(UpdateFinishedTrialError, StorageInternalError):
            self.storage.set_trial_state_values(trial._trial_id, TrialState.WAITING)

    def complete(self, trial: FrozenTrial, result: dict[str, Any]) -> bool:
        """Store a candidate's result on its trial and finish it; False when the trial was failed meanwhile
        (its worker was taken for dead: the copy queued in its place runs it)."""
        text = json.dumps(result)
        chunks = [text[i:i + _CHUNK] for i in range(0, len(text), _CHUNK)] or [""]
        attrs = {f"result.{i}": chunk for i, chunk in enumerate(chunks)}
        score = result.get("score")
        outcome = "scored" if score is not None else "screened" if result.get("program_state") else "failed"
        attrs.update({"result_chunks": len(chunks), "score": score, "outcome": outcome,
                      "reason": result.get("reason", "")[:2000]})
        try:
            self._finish(trial._trial_id, attrs, score)
        except UpdateFinishedTrialError:
            logger.warning("trial %d was failed while its worker ran it (heartbeats too late?); its copy will run",
                           trial.number)
            return False
        return True

    @staticmethod
    def result_of(trial: FrozenTrial) -> dict[str, Any]:
        attrs = trial.user_attrs
        return json.loads("".join(attrs[f"result.{i}"] for i in range(attrs["result_chunks"])))

    def _finish(self, trial_id: int, attrs: dict[str, Any], score: float | None) -> None:
        for name, value in attrs.items():
            self._set_trial_attr(trial_id, name, value)
        state = TrialState.COMPLETE if score is not None else TrialState.PRUNED
        _retrying(lambda: self.storage.set_trial_state_values(trial_id, state,
                                                              values=[score] if score is not None else None))

    def _set_trial_attr(self, trial_id: int, name: str, value: Any) -> None:
        _retrying(lambda: self.storage.set_trial_user_attr(trial_id, name, value))


def finished_trial(trials: list[FrozenTrial]) -> FrozenTrial | None:
    """The trial that holds a plan's result (the first finished one), if any."""
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and "result_chunks" in t.user_attrs]
    return min(done, key=lambda t: t.number) if done else None


def live(trials: list[FrozenTrial]) -> bool:
    return any(t.state in _LIVE for t in trials)
