"""Keep tqdm's bar registry consistent while DSPy evaluations run in several threads at once.

DSPy's `ParallelExecutor.execute` clears ``tqdm.tqdm._instances`` without tqdm's lock. When
two executors run side by side (concurrent search branches, each evaluating), one clears the
registry between another bar's registration and its removal, and tqdm raises ``KeyError``
(or "set changed size during iteration"). While such branches run, `concurrent_tqdm`
swaps in a registry whose ``clear`` takes tqdm's lock and whose ``remove`` tolerates an entry
already cleared; the registry is put back when the last branch finishes. Nothing else changes.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import tqdm

__all__ = ["concurrent_tqdm"]


class _LockedRegistry(weakref.WeakSet):
    def clear(self) -> None:
        with tqdm.tqdm.get_lock():
            super().clear()

    def remove(self, item) -> None:
        self.discard(item)


_lock = threading.Lock()
_users = 0


@contextmanager
def concurrent_tqdm() -> Iterator[None]:
    global _users
    with _lock:
        if _users == 0:
            with tqdm.tqdm.get_lock():
                tqdm.tqdm._instances = _LockedRegistry(tqdm.tqdm._instances)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                with tqdm.tqdm.get_lock():
                    tqdm.tqdm._instances = weakref.WeakSet(tqdm.tqdm._instances)
