"""Run a few independent calls at once, keeping `dspy.context` and every call's outcome."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dspy.utils.parallelizer import ParallelExecutor

from dspy_meta.runtime.tqdm_guard import concurrent_tqdm

__all__ = ["side_by_side"]


def side_by_side(calls: Sequence[Callable[[], Any]],
                 on_error: Callable[[BaseException], None] | None = None) -> list[tuple[bool, Any]]:
    """``(True, call())`` or ``(False, the exception)`` for each call, the calls run at once (a thread each).

    DSPy's executor carries dspy.context into its threads; a call is never re-run (timeout=0), and
    every call runs to its end whatever the others do. `on_error` sees each exception as it
    happens (to tell the other calls to stop, for example).
    """
    def run(call):
        try:
            return True, call()
        except BaseException as exc:  # noqa: BLE001 -- handed back; the caller decides what to raise
            if on_error is not None:
                on_error(exc)
            return False, exc

    executor = ParallelExecutor(num_threads=len(calls), max_errors=len(calls) + 1, disable_progress_bar=True,
                                timeout=0)
    with concurrent_tqdm():
        return executor.execute(run, list(calls))

