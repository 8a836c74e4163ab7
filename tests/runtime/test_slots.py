import threading
import time

import pytest

from dspy_meta.runtime.slots import PrioritySlots


def _wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.001)


def test_no_more_holders_than_capacity():
    slots, lock, state = PrioritySlots(3), threading.Lock(), {"now": 0, "peak": 0}

    def work(priority):
        with slots.at(priority):
            with lock:
                state["now"] += 1
                state["peak"] = max(state["peak"], state["now"])
            time.sleep(0.005)
            with lock:
                state["now"] -= 1

    threads = [threading.Thread(target=work, args=(i % 3,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert state == {"now": 0, "peak": 3}


def test_a_freed_slot_goes_to_the_highest_priority_then_first_come():
    slots, order = PrioritySlots(1), []
    slots.acquire(2)  # every slot taken

    def wait_for_slot(name, priority):
        with slots.at(priority):
            order.append(name)

    arrivals = [("bulk-1", 2), ("bulk-2", 2), ("chain-1", 0), ("chain-2", 0), ("middle", 1)]
    threads = []
    for name, priority in arrivals:  # one at a time, so the arrival order is known
        thread = threading.Thread(target=wait_for_slot, args=(name, priority))
        thread.start()
        threads.append(thread)
        _wait_until(lambda: slots.waiting == len(threads))
    slots.release()
    for thread in threads:
        thread.join(5)
    assert order == ["chain-1", "chain-2", "middle", "bulk-1", "bulk-2"]


def test_misuse_is_refused():
    with pytest.raises(ValueError):
        PrioritySlots(0)
    slots = PrioritySlots(2)
    with slots.at(1):
        pass
    with pytest.raises(ValueError, match="released more"):
        slots.release()


def test_an_interrupted_waiter_leaves_the_queue_and_loses_no_slot(monkeypatch):
    slots = PrioritySlots(1)
    slots.acquire(0)

    class Interrupted(BaseException):
        pass

    def interrupted_wait(self, timeout=None):
        raise Interrupted

    with monkeypatch.context() as patched:
        patched.setattr(threading.Event, "wait", interrupted_wait)
        with pytest.raises(Interrupted):
            slots.acquire(1)
    assert slots.waiting == 0
    slots.release()
    with slots.at(2):  # the one slot is free again
        assert slots.free == 0
    assert slots.free == 1
