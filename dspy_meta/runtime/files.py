"""Files: atomic writes (readers, and a crash, see only the old or the new content), the cache folder,
and cross-process locks."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import filelock

__all__ = ["write_atomic", "cache_dir", "file_lock", "CACHE_ENV"]

CACHE_ENV = "DSPY_META_CACHE"


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; nothing written this way is secret
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cache_dir() -> Path:
    """Where dspy-meta keeps models and benchmark data: ``$DSPY_META_CACHE``, else
    ``$XDG_CACHE_HOME/dspy-meta``, else ``~/.cache/dspy-meta``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dspy-meta"


def file_lock(path: str | os.PathLike) -> filelock.FileLock:
    """A cross-process lock on `path` (any platform): a second process waits, then finds the work done."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return filelock.FileLock(str(path))
