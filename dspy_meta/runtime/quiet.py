"""Quiet runs: silence DSPy's own progress bars, prints and chatter while a search runs, and nothing else.

`quiet()` marks the DSPy context it opens (``dspy.context(dspy_meta_quiet=True)``). DSPy carries its
context into the threads of its `ParallelExecutor`, which is also how the run's branches and the inner
optimizers' evaluations run, so every piece of work started inside the block is marked, in any thread.
While at least one such block is open, three hooks are installed, and each acts only on work done in a
marked context; the same work done elsewhere in the process (another thread, another notebook cell's
stock optimizer) is untouched:

- tqdm bars created in a marked context are disabled (DSPy's "Average Metric" bars, BootstrapFewShot's
  and GEPA's bars): ``tqdm.std.tqdm.__init__`` is wrapped to pass ``disable=True``;
- ``sys.stdout`` is wrapped: a write made in a marked context is dropped ("Bootstrapped 4 full traces
  ...", "Bootstrapping set 1/3"), a debugging print in a metric included (log it, or run with
  ``display_progress=True``). Which code printed is not asked: reading the caller's frame from a
  stream write segfaulted CPython 3.11 here, under threads;
- records of DSPy's loggers below `QUIET_LOG_LEVEL` logged in a marked context are dropped by a filter
  on the handlers of the ``dspy`` logger and of the root logger.

When the last block closes, on any exit (an exception, KeyboardInterrupt), each hook is taken away
again: ``sys.stdout``, tqdm's ``__init__`` and the handlers' filters are as they were before (a stream
or method someone else replaced in the meantime is left as they set it). Our own loggers (``dspy_meta``)
and stderr are never filtered: errors, tracebacks and the meta search's own bar still show.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dspy
import tqdm.std

__all__ = ["quiet", "in_quiet_context", "QUIET_LOG_LEVEL"]

_MARK = "dspy_meta_quiet"
QUIET_LOG_LEVEL = logging.ERROR  # DSPy's records below this level are dropped in a quiet context
_TQDM_DISABLE_POSITION = 10  # tqdm.__init__(iterable, desc, total, leave, file, ncols, mininterval,
                             # maxinterval, miniters, ascii, disable, ...)


def in_quiet_context() -> bool:
    """Whether the calling thread works inside `quiet()` (directly or in a thread DSPy started from it)."""
    return bool(dspy.settings.get(_MARK, False))


class _FilteredStdout:
    """``sys.stdout`` as it was, less what is written in a quiet context."""

    def __init__(self, wrapped):
        self.wrapped = wrapped

    def write(self, text):
        if in_quiet_context():
            return len(text)
        return self.wrapped.write(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, encoding, isatty, fileno, ...: the wrapped stream's
        return getattr(self.wrapped, name)


class _DropQuietRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from_dspy = record.name == "dspy" or record.name.startswith("dspy.")
        return not (from_dspy and record.levelno < QUIET_LOG_LEVEL and in_quiet_context())


class _Hooks:
    """The installed hooks, with what each replaced (to put it back)."""

    def __init__(self):
        self.stdout: _FilteredStdout | None = None
        self.tqdm_init = None
        self.tqdm_original = None
        self.log_filter = _DropQuietRecords()
        self.filtered_handlers: list[logging.Handler] = []

    def install(self) -> None:
        self.stdout = _FilteredStdout(sys.stdout)
        sys.stdout = self.stdout
        self.tqdm_original = tqdm.std.tqdm.__dict__["__init__"]
        self.tqdm_init = _quiet_tqdm_init(self.tqdm_original)
        tqdm.std.tqdm.__init__ = self.tqdm_init
        for handler in {*logging.getLogger("dspy").handlers, *logging.getLogger().handlers}:
            handler.addFilter(self.log_filter)
            self.filtered_handlers.append(handler)

    def remove(self) -> None:
        for handler in self.filtered_handlers:
            handler.removeFilter(self.log_filter)
        self.filtered_handlers = []
        if tqdm.std.tqdm.__dict__.get("__init__") is self.tqdm_init:
            tqdm.std.tqdm.__init__ = self.tqdm_original
        if sys.stdout is self.stdout:
            sys.stdout = self.stdout.wrapped


def _quiet_tqdm_init(original):
    """`original` as found in the class (a function, or the `partialmethod` tqdm's environment wrapper makes)."""
    @functools.wraps(original)
    def init(self, *args, **kwargs):
        if in_quiet_context():
            if len(args) > _TQDM_DISABLE_POSITION:
                args = (*args[:_TQDM_DISABLE_POSITION], True, *args[_TQDM_DISABLE_POSITION + 1:])
            else:
                kwargs["disable"] = True
        original.__get__(self, type(self))(*args, **kwargs)
    return init


_lock = threading.Lock()
_users = 0
_hooks: _Hooks | None = None


@contextmanager
def _hooks_installed() -> Iterator[None]:
    global _users, _hooks
    with _lock:
        if _users == 0:
            _hooks = _Hooks()
            _hooks.install()
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _hooks is not None:
                _hooks.remove()
                _hooks = None


@contextmanager
def quiet(enabled: bool = True) -> Iterator[None]:
    """Silence DSPy's bars, prints and logs below `QUIET_LOG_LEVEL` for the work done inside (see the module
    doc); ``quiet(False)`` changes nothing."""
    if not enabled:
        yield
        return
    with _hooks_installed(), dspy.context(**{_MARK: True}):
        yield
