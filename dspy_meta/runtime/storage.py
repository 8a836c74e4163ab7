"""Checkpoints of a meta-optimization run, so a crashed run resumes where it stopped.

A `RunStore` is a folder of small JSON documents, one per finished piece of LM work:
the baseline score, each meta LM proposal, each candidate optimizer's run (score,
program state, usage). Each is written atomically (temp file, fsync, rename) before
the next piece of work starts. Re-running the same compile with the same folder
replays these documents instead of calling the LMs again. API keys never reach it:
documents hold scores, plans, prompts, program state and token counts only.

A document that cannot be read back (truncated, edited, missing a field, a field of the wrong type or a
NaN score: `dspy_meta.runtime.checkpoint_docs`, a folder in its place) is moved aside to
``<name>.corrupt`` with a warning naming it, and its piece of work is done again. The manifest
(``run.json``) says which run the documents belong to: a folder whose manifest is missing while
documents remain is refused (they could be another run's). One process at a time works in a folder
(`locked`): a second one waits, then resumes from what the first saved.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import filelock

from dspy_meta.errors import RunDirError
from dspy_meta.runtime.checkpoint_docs import DOCUMENTS, check_document
from dspy_meta.runtime.files import file_lock, write_atomic
from dspy_meta.runtime.fingerprint import changed_keys

logger = logging.getLogger(__name__)

__all__ = ["RunStore"]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class RunStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()  # "~/runs" is the home folder's, as in a shell

    def _make_folder(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):  # a file where the folder (or one above it) should be
            raise RunDirError(f"run_dir {str(self.path)!r} is not a folder: it or a folder above it is a file; "
                              "use a folder path") from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's lock: another process using the same folder waits until this one is done."""
        self._make_folder()
        lock = file_lock(self.path / ".lock")
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            logger.warning("run_dir %s is in use by another process; waiting for it to finish", self.path)
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def open(self, fingerprint: dict[str, Any]) -> bool:
        """Create the folder, or check it belongs to this run. Returns True when resuming."""
        self._make_folder()
        manifest = self.path / "run.json"
        if manifest.exists():
            try:
                saved = json.loads(manifest.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError, OSError) as exc:  # OSError: a folder named run.json, say
                raise RunDirError(f"run_dir manifest {str(manifest)!r} is unreadable ({type(exc).__name__}: {exc}); "
                                  "it says which run the folder belongs to, so nothing in it can be trusted: use a "
                                  "new run_dir") from None
            if saved != fingerprint:
                changed = changed_keys(saved if isinstance(saved, dict) else {}, fingerprint)
                raise RunDirError(f"run_dir {str(self.path)!r} holds a different run (differs in {changed}); "
                                  "use a new run_dir or the original settings")
            return True
        documents = self._documents()
        if documents:
            raise RunDirError(f"run_dir {str(self.path)!r} holds {documents} checkpoint document(s) but no manifest "
                              f"({str(manifest)!r}), which says which run they belong to: they may be another "
                              "run's (other settings, another metric), so they are not replayed. Use a new run_dir, "
                              "or empty this one to start the run afresh")
        self._write(manifest, fingerprint)
        return False

    def _documents(self) -> int:
        """How many documents the folder holds (in the folders of the known kinds)."""
        return sum(len(list((self.path / kind).glob("*.json"))) for kind in DOCUMENTS if (self.path / kind).is_dir())

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """The saved document of a piece of work, or None (never saved, or corrupt and set aside)."""
        path = self._doc(kind, key)
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            self._set_aside(path, f"not valid JSON: {exc}")
            return None
        except OSError as exc:  # a folder in the file's place, or an unreadable file
            self._set_aside(path, f"unreadable: {type(exc).__name__}: {exc.strerror or exc}")
            return None
        if not isinstance(data, dict):
            self._set_aside(path, "not a JSON object")
            return None
        if data.get("key") != key:
            return None
        problem = check_document(kind, data)
        if problem is not None:
            self._set_aside(path, problem)
            return None
        return data

    def set_aside(self, kind: str, key: str, why: str) -> None:
        """Move a document that cannot be used aside (``.corrupt``), so its work is done again."""
        self._set_aside(self._doc(kind, key), why)

    def put(self, kind: str, key: str, data: dict[str, Any]) -> None:
        path = self._doc(kind, key)
        path.parent.mkdir(exist_ok=True)
        self._write(path, {"key": key, **data})

    def count(self, kind: str) -> int:
        folder = self.path / kind
        return len(list(folder.glob("*.json"))) if folder.exists() else 0

    def _doc(self, kind: str, key: str) -> Path:
        return self.path / kind / f"{_digest(key)}.json"

    @staticmethod
    def _set_aside(path: Path, why: str) -> None:
        aside = path.with_suffix(".corrupt")
        for n in range(1, 1000):  # a folder cannot replace an earlier .corrupt file (nor a file a folder)
            if not aside.exists():
                break
            if not aside.is_dir() and not path.is_dir():
                break
            aside = path.with_suffix(f".corrupt{n}")
        logger.warning("checkpoint %s is corrupt (%s); moved to %s, its work will be done again", path, why,
                       aside.name)
        os.replace(path, aside)

    @staticmethod
    def _write(path: Path, data: dict[str, Any]) -> None:
        write_atomic(path, json.dumps(data).encode("utf-8"))
