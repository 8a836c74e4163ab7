"""The durable state of a learning run, under its ``work_dir``: what a stopped run resumes from.

::

    manifest.json      the run's fingerprint (config and task data); a run with another one is refused
    trials/0000.json   one candidate each: its spec (kind, params, prompts) and Optuna params, written
                       before the candidate is evaluated, so a resumed run evaluates the same candidate
    results.jsonl      one line per finished (trial, task, seed) evaluation: per-example scores, counts
    record.json        the run's record (rewritten after every trial; derived, never read back)
    .lock              held while a run works here: a second process on the same folder is refused

Whole files are written atomically (`write_atomic`); results are appended a line at a time, flushed
and fsynced. A line cut short by a kill (SIGKILL, power loss) is the evaluation that was in flight: it
is dropped on load, and only it is lost.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import filelock

from dspy_meta.errors import RunDirError
from dspy_meta.optimizers.spec import OptimizerSpec
from dspy_meta.runtime.files import file_lock, write_atomic

__all__ = ["LearningStore", "ResultKey"]

logger = logging.getLogger(__name__)

MANIFEST_FORMAT = "dspy-meta-learning-run"
ResultKey = tuple[int, str, int]  # (trial, task, seed)


def _dump(data: Any) -> bytes:
    return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode("utf-8")


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """The keys whose values differ, one level into nested mappings (``data.word_sorting_generated``)."""
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict) and not prefix:
            changed += _changed_keys(a, b, f"{key}.")
        else:
            changed.append(f"{prefix}{key}")
    return changed


class LearningStore:
    def __init__(self, work_dir: str | os.PathLike):
        self.root = Path(work_dir)
        self.trials_dir = self.root / "trials"
        self.results_path = self.root / "results.jsonl"
        self.manifest_path = self.root / "manifest.json"
        self.record_path = self.root / "record.json"

    def locked(self) -> filelock.BaseFileLock:
        """The folder's lock, taken at once or refused (`RunDirError`): one run per folder at a time."""
        lock = file_lock(self.root / ".lock")
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            raise RunDirError(f"{self.root} is in use by another `dspy-meta learn` (its .lock is held); wait for "
                              "it to finish, or give this run another work_dir") from None
        return lock

    # -- the manifest ------------------------------------------------------------------------------
    def check_manifest(self, fingerprint: dict[str, Any]) -> bool:
        """Write the manifest of a new run; for an existing one, check it (True: resuming). A `RunDirError`
        naming what changed when the folder holds another run's work."""
        fingerprint = json.loads(json.dumps(fingerprint))  # as JSON would read it back (tuples are lists)
        if not self.manifest_path.exists():
            if self.results_path.exists() or self.trials_dir.exists():
                raise RunDirError(f"{self.root} holds learning work but no manifest.json: not resumable; give "
                                  "this run another work_dir")
            write_atomic(self.manifest_path, _dump({"format": MANIFEST_FORMAT, "fingerprint": fingerprint}))
            return False
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            stored = manifest["fingerprint"]
            if manifest.get("format") != MANIFEST_FORMAT or not isinstance(stored, dict):
                raise ValueError("not a learning run's manifest")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunDirError(f"{self.manifest_path} cannot be read ({exc}); give this run another work_dir") \
                from None
        if stored != fingerprint:
            changed = ", ".join(_changed_keys(stored, fingerprint))
            raise RunDirError(f"{self.root} holds a learning run made with other settings (changed: {changed}); "
                              "restore them to resume it, or give this run another name or work_dir")
        return True

    # -- trials ------------------------------------------------------------------------------------
    def trial_path(self, index: int) -> Path:
        return self.trials_dir / f"{index:04d}.json"

    def write_trial(self, trial: dict[str, Any]) -> None:
        write_atomic(self.trial_path(trial["trial"]), _dump(trial))

    def load_trials(self) -> dict[int, dict[str, Any]]:
        """Every trial on file, by index, its ``spec`` an `OptimizerSpec`."""
        trials = {}
        for path in sorted(self.trials_dir.glob("[0-9][0-9][0-9][0-9].json")):
            try:
                trial = json.loads(path.read_text(encoding="utf-8"))
                trial["spec"] = OptimizerSpec.from_dict(trial["spec"])
                if trial["trial"] != int(path.stem):
                    raise ValueError(f"it says it is trial {trial['trial']}")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise RunDirError(f"{path} is not a readable trial ({exc}); give this run another work_dir") \
                    from None
            trials[trial["trial"]] = trial
        return trials

    # -- results -----------------------------------------------------------------------------------
    def append_result(self, result: dict[str, Any]) -> None:
        line = json.dumps(result, sort_keys=True) + "\n"
        self.results_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.results_path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def load_results(self, trials: dict[int, dict[str, Any]]) -> dict[ResultKey, dict[str, Any]]:
        """The finished evaluations, by (trial, task, seed). A last line cut short by a kill is removed from
        the file (it was the evaluation in flight); any other unreadable line, or one that does not belong to
        its trial's candidate, is a `RunDirError`."""
        if not self.results_path.exists():
            return {}
        data = self.results_path.read_bytes()
        if data and not data.endswith(b"\n"):
            kept = data[:data.rfind(b"\n") + 1]
            logger.warning("%s: dropping its last line, cut short (the evaluation in flight when the run stopped)",
                           self.results_path)
            with open(self.results_path, "r+b") as fh:
                fh.truncate(len(kept))
                fh.flush()
                os.fsync(fh.fileno())
            data = kept
        results = {}
        for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
            where = f"{self.results_path} line {number}"
            try:
                result = json.loads(line)
                key = (int(result["trial"]), str(result["task"]), int(result["seed"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise RunDirError(f"{where} is not a result ({exc}); give this run another work_dir") from None
            trial = trials.get(key[0])
            if trial is None or trial["spec"].fingerprint() != result.get("spec"):
                raise RunDirError(f"{where} belongs to another candidate than {self.trial_path(key[0])}; give "
                                  "this run another work_dir")
            results[key] = result
        return results

    def write_record(self, record: dict[str, Any]) -> None:
        write_atomic(self.record_path, _dump(record))
