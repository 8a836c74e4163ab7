"""Tasks by name: `load_task("bbh_word_sorting")`, `available_tasks()`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dspy_meta.benchmarks.choice import load_gpqa_diamond, load_mmlu_abstract_algebra
from dspy_meta.benchmarks.generated import load_word_sorting_generated
from dspy_meta.benchmarks.tasks import (
    Task, load_bbh_dyck_languages, load_bbh_word_sorting, load_colored_objects, load_dyck_languages_short, load_object_counting,
    load_word_sorting_short,
)

__all__ = ["available_tasks", "load_task", "task_loader"]

_LOADERS: dict[str, Callable[..., Task]] = {
    "bbh_word_sorting": load_bbh_word_sorting,
    "bbh_dyck_languages": load_bbh_dyck_languages,
    "bigbench_word_sorting_short": load_word_sorting_short,
    "bigbench_dyck_languages_short": load_dyck_languages_short,
    "bigbench_object_counting": load_object_counting,
    "bigbench_colored_objects": load_colored_objects,
    "word_sorting_generated": load_word_sorting_generated,
    "mmlu_abstract_algebra": load_mmlu_abstract_algebra,
    "gpqa_diamond": load_gpqa_diamond,
}


def task_loader(name: str):
    """The function that loads a task (its keyword arguments are the task's settings)."""
    try:
        return _LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; available: {', '.join(_LOADERS)}") from None


def available_tasks() -> list[str]:
    return list(_LOADERS)


def load_task(name: str, **kwargs: Any) -> Task:
    """Load a task by name (see `available_tasks`); keyword arguments go to its loader."""
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; available: {', '.join(_LOADERS)}") from None
    return loader(**kwargs)
