"""`MlflowTracker`: a meta compile as one MLflow run with a nested run per candidate.

The parent run is opened with mlflow's fluent API in the thread that calls `compile` (so it nests
under the caller's active run, if any, and `mlflow.last_active_run()` finds it afterwards).
Everything else is written through an `MlflowClient` with explicit run ids: candidates are judged
in the search's branch threads, where mlflow's thread-local active run is not the parent. Writes
are serialized (one lock), and a write that fails is logged as a warning: tracking never ends a run.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dspy_meta.errors import ConfigError
from dspy_meta.programs import save_program
from dspy_meta.runtime.redact import redact
from dspy_meta.tracking.base import Tracker
from dspy_meta.tracking.records import (
    candidate_metrics, candidate_params, clip, plan_prompts, running_best, scrub, usage_metrics,
)

logger = logging.getLogger(__name__)

__all__ = ["MlflowTracker", "import_mlflow"]

_PARENT_TAG = "mlflow.parentRunId"  # how MLflow links a nested run to its parent


def import_mlflow():
    """The `mlflow` module; `ConfigError` saying how to install it when it is missing."""
    try:
        import mlflow
    except ImportError as exc:
        raise ConfigError("use_mlflow=True needs MLflow: pip install 'dspy-meta[mlflow]' (mlflow>=3)") from exc
    return mlflow


def _limits() -> tuple[int, int, int]:
    """MLflow's longest param value, tag value and key (older releases allowed 500-character values)."""
    try:
        from mlflow.utils import validation
    except ImportError:
        return 500, 5000, 250
    return (getattr(validation, "MAX_PARAM_VAL_LENGTH", 500), getattr(validation, "MAX_TAG_VAL_LENGTH", 5000),
            getattr(validation, "MAX_ENTITY_KEY_LENGTH", 250))


class MlflowTracker(Tracker):
    """Logs the run tree to the current MLflow tracking URI and experiment."""

    def __init__(self):
        self._lock = threading.Lock()
        self._client = None
        self._parent_id: str | None = None
        self._experiment_id: str | None = None
        self._candidates: dict[int, tuple[Any, str, int]] = {}  # id(record) -> (record, run id, index logged)

    # -- the parent run ------------------------------------------------------------------
    @contextmanager
    def run(self, name: str, params: Mapping[str, Any], artifacts: Mapping[str, Any]) -> Iterator[None]:
        mlflow = import_mlflow()
        try:
            active = mlflow.active_run()
            run = mlflow.start_run(run_name=name, nested=active is not None, tags={"dspy_meta.optimizer": name})
            self._client = mlflow.MlflowClient()
            self._parent_id, self._experiment_id = run.info.run_id, run.info.experiment_id
        except Exception as exc:  # noqa: BLE001 -- an unreachable tracking server must not stop the compile
            logger.warning("MLflow tracking is off for this compile: could not start a run: %s", redact(exc))
        if self._parent_id is None:
            yield
            return
        self._write("the run's parameters", lambda: self._log(self._parent_id, params=params))
        for path, data in artifacts.items():
            self._write(path, lambda path=path, data=data: self._client.log_dict(self._parent_id, scrub(data), path))
        status = "FAILED"
        try:
            yield
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            self._end(mlflow, status)

    def _end(self, mlflow, status: str) -> None:
        def end():
            active = mlflow.active_run()
            if active is not None and active.info.run_id == self._parent_id:
                mlflow.end_run(status)
            else:  # something else changed this thread's active run: end ours by id, leave that one alone
                self._client.set_terminated(self._parent_id, status)

        self._write("the end of the run", end)

    # -- candidates -----------------------------------------------------------------------
    def candidate(self, record: Any) -> None:
        if self._parent_id is None:
            return

        def log():
            _, tag_limit, _ = _limits()
            tags = {_PARENT_TAG: self._parent_id, "dspy_meta.candidate_index": str(record.index),
                    "dspy_meta.stage": record.stage}
            if record.reason:
                tags["dspy_meta.reason"] = clip(redact(record.reason), tag_limit)
            run = self._client.create_run(self._experiment_id, run_name=_run_name(record), tags=tags)
            run_id = run.info.run_id
            self._candidates[id(record)] = (record, run_id, record.index)
            failed = record.plan is not None and record.score is None and record.reason.startswith("run failed")
            try:
                self._log(run_id, params=candidate_params(record), metrics=candidate_metrics(record))
                if record.plan is not None:
                    self._client.log_dict(run_id, scrub(record.plan), "plan.json")
                prompts = plan_prompts(record.plan)
                if prompts:
                    self._client.log_dict(run_id, scrub(prompts), "prompts.json")
                if record.analysis:
                    self._client.log_text(run_id, redact(record.analysis), "analysis.txt")
            finally:  # a write that failed must not leave the candidate's run open
                self._client.set_terminated(run_id, "FAILED" if failed else "FINISHED")

        self._write(f"candidate [{record.stage}]", log)

    # -- the end --------------------------------------------------------------------------
    def finish(self, results: Any, program: Any) -> None:
        if self._parent_id is None:
            return
        self._write("candidate indices", lambda: self._renumber(results.candidates))
        metrics = {"candidates": float(len(results.candidates)),
                   "accepted": float(sum(1 for c in results.candidates if c.accepted)),
                   "returned_baseline": float(results.returned_baseline),
                   **usage_metrics(results.usage, "usage.")}
        for name in ("baseline_score", "wall_seconds"):
            if getattr(results, name, None) is not None:
                metrics[name] = float(getattr(results, name))
        history = [("best_score", best, index) for index, best in running_best(results.candidates)]
        tags = {"dspy_meta.winner": redact(getattr(results, "winner", None) or "the unoptimized program")}
        if results.stopped_reason:
            tags["dspy_meta.stopped_reason"] = redact(results.stopped_reason)
        self._write("the run's metrics", lambda: self._log(self._parent_id, metrics=metrics, tags=tags,
                                                          history=history))
        self._write("meta_results.json", lambda: self._client.log_dict(self._parent_id, scrub(results.to_dict()),
                                                                       "meta_results.json"))
        if results.best_plan is not None:
            self._write("best_optimizer.json", lambda: self._client.log_dict(
                self._parent_id, scrub(results.best_plan), "best_optimizer.json"))
        for name, spec in results.best_optimizers.items():
            self._write(f"optimizers/{name}.json", lambda name=name, spec=spec: self._client.log_dict(
                self._parent_id, scrub(spec), f"optimizers/{name}.json"))
        self._write("program.json", lambda: self._log_program(program))

    def _renumber(self, records) -> None:
        """Records judged in a branch were numbered there; merged, they have their final index."""
        for record in records:
            logged = self._candidates.get(id(record))
            if logged is not None and logged[0] is record and logged[2] != record.index:
                self._client.update_run(logged[1], name=_run_name(record))
                self._client.set_tag(logged[1], "dspy_meta.candidate_index", str(record.index))

    def _log_program(self, program) -> None:
        """The returned program as `save_program` writes it (loads with `load_program`), credentials removed."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "program.json"
            save_program(program, path)
            document = scrub(json.loads(path.read_text(encoding="utf-8")))
        self._client.log_dict(self._parent_id, document, "program.json")

    # -- writing ---------------------------------------------------------------------------
    def _log(self, run_id: str, *, params: Mapping[str, Any] = (), metrics: Mapping[str, float] = (),
             tags: Mapping[str, str] = (), history: list[tuple[str, float, int]] = ()) -> None:
        from mlflow.entities import Metric, Param, RunTag

        value_limit, tag_limit, key_limit = _limits()
        now = int(time.time() * 1000)
        self._client.log_batch(
            run_id,
            params=[Param(clip(k, key_limit), clip(redact(v), value_limit)) for k, v in dict(params).items()],
            metrics=[Metric(clip(k, key_limit), v, now, 0) for k, v in dict(metrics).items()] +
                    [Metric(k, v, now, step) for k, v, step in history],
            tags=[RunTag(clip(k, key_limit), clip(v, tag_limit)) for k, v in dict(tags).items()])

    def _write(self, what: str, write: Callable[[], Any]) -> None:
        with self._lock:
            try:
                write()
            except Exception as exc:  # noqa: BLE001 -- logging must never end the run
                logger.warning("MLflow: could not log %s: %s", what, redact(exc))


def _run_name(record) -> str:
    return f"{record.index:02d} {record.stage}"
