"""Checkpoints of a meta-optimization run, so a crashed run resumes where it stopped.

A `RunStore` is a folder of small JSON documents, one per finished piece of LM work:
the baseline score, each meta LM proposal, each candidate optimizer's run (score,
program state, usage). Each is written atomically (temp file, fsync, rename) before
the next piece of work starts. Re-running the same compile with the same folder
replays these documents instead of calling the LMs again. API keys never reach it:
documents hold scores, plans, prompts, program state and token counts only.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from dspy_meta.runtime.files import write_atomic

__all__ = ["RunStore"]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class RunStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def open(self, fingerprint: dict[str, Any]) -> bool:
        """Create the folder, or check it belongs to this run. Returns True when resuming."""
        self.path.mkdir(parents=True, exist_ok=True)
        manifest = self.path / "run.json"
        if manifest.exists():
            saved = json.loads(manifest.read_text(encoding="utf-8"))
            if saved != fingerprint:
                changed = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
                raise ValueError(f"run_dir {str(self.path)!r} holds a different run (differs in {changed}); "
                                 "use a new run_dir or the original settings")
            return True
        self._write(manifest, fingerprint)
        return False

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        path = self._doc(kind, key)
        if not path.exists():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if data.get("key") == key else None

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
    def _write(path: Path, data: dict[str, Any]) -> None:
        write_atomic(path, json.dumps(data).encode("utf-8"))
