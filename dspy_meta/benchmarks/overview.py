"""What `dspy-meta tasks` shows: per task of the suite, whether it loads here, its sizes, and its
zero-shot score with the default program model where one was measured (``data/zero_shot.json``, written by
``benchmarks/zero_shot.py``)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib import resources

from dspy_meta.benchmarks.registry import suite
from dspy_meta.errors import BenchmarkDataError

__all__ = ["TaskStatus", "measured_zero_shot", "task_overview"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskStatus:
    name: str
    group: str
    kind: str
    loads: bool
    sizes: tuple[int, int, int] | None  # train, val, test with the registered defaults
    problem: str | None                 # why it does not load here
    needs: str | None
    zero_shot: dict | None              # {"score", "n", "model", ...} as measured, or None


def measured_zero_shot() -> dict[str, dict]:
    """The committed zero-shot measurements, by task name (empty when none were made)."""
    path = resources.files("dspy_meta.benchmarks") / "data" / "zero_shot.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("tasks", {})
    except FileNotFoundError:
        return {}


def task_overview() -> list[TaskStatus]:
    """Load every task of the suite once (local files only; a Hub or sdist loader fails at once offline)."""
    measured = measured_zero_shot()
    statuses = []
    for entry in suite():
        sizes, problem = None, None
        try:
            task = entry.loader()
            sizes = (len(task.train), len(task.val), len(task.test))
        except (BenchmarkDataError, ImportError, ValueError, OSError) as exc:
            problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            logger.debug("task %s does not load: %s", entry.name, exc)
        statuses.append(TaskStatus(entry.name, entry.group, entry.kind, problem is None, sizes, problem, entry.needs,
                                   measured.get(entry.name)))
    return statuses
