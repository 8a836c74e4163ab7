"""The run's thread budget: at most `capacity` LM requests in flight, the scarce slots to the critical path.

A meta search waits on a chain of small calls (a meta proposal, then the inner optimizer's
summary, proposals, ...) while it also evaluates programs in bulk. With a plain semaphore a
chain call that arrives while every slot is taken by evaluation calls waits behind them, and
the whole chain slows by a wave of calls each time. Here a freed slot goes to the waiting
request of highest priority (lowest number; the meta and optimizer levels before the program
level), first come first served within a priority.
"""

from __future__ import annotations

import heapq
import itertools
import threading

__all__ = ["PrioritySlots"]


class PrioritySlots:
    """A counting semaphore whose waiters are served by priority; `at(priority)` is a context manager."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._free = capacity
        self._lock = threading.Lock()
        self._waiting: list[tuple[int, int, threading.Event]] = []  # heap of (priority, arrival, wake-up)
        self._arrivals = itertools.count()

    @property
    def free(self) -> int:
        """Slots not taken."""
        with self._lock:
            return self._free

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot."""
        with self._lock:
            return len(self._waiting)

    def at(self, priority: int) -> _Slot:
        return _Slot(self, priority)

    def acquire(self, priority: int) -> None:
        entry = None
        try:
            with self._lock:
                if self._free:
                    self._free -= 1
                    return
                entry = (priority, next(self._arrivals), threading.Event())
                heapq.heappush(self._waiting, entry)
            entry[2].wait()
        except BaseException:  # interrupted while waiting: leave the queue, or pass on a slot handed over
            if entry is not None:
                with self._lock:
                    handed_over = entry[2].is_set()
                    if not handed_over:
                        self._waiting.remove(entry)
                        heapq.heapify(self._waiting)
                if handed_over:
                    self.release()
            raise

    def release(self) -> None:
        with self._lock:
            if self._waiting:  # hand the slot over: no later arrival can take it first
                heapq.heappop(self._waiting)[2].set()
            elif self._free < self.capacity:
                self._free += 1
            else:
                raise ValueError("released more slots than were acquired")


class _Slot:
    __slots__ = ("_slots", "_priority")

    def __init__(self, slots: PrioritySlots, priority: int):
        self._slots = slots
        self._priority = priority

    def __enter__(self) -> None:
        self._slots.acquire(self._priority)

    def __exit__(self, *exc) -> None:
        self._slots.release()
