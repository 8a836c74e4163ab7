"""The task suite by name: `load_task(name)`, `available_tasks()`, `suite()` with each task's group and needs.

Every task of the suite belongs to one group:

- ``learning``: tasks that tuning and meta-learning may use;
- ``evaluation``: tasks kept out of everything that is tuned (configs, budgets, learned optimizers), so
  that a claim of transfer is measured on tasks nothing was fitted to;
- ``external``: loaders for data this machine's package registries do not carry (BIG-bench's sdist, the
  Hugging Face Hub), kept for users who have it.

The registered defaults of the local tasks give at least 50 validation and 300 test examples (abstract
algebra, with 100 questions, keeps the paper's 10/50/40); a loader's keyword arguments override them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from dspy_meta.benchmarks.choice import load_gpqa_diamond, load_mmlu_abstract_algebra
from dspy_meta.benchmarks.generated import (
    BBH_DYCK_TOKENS, BBH_WORD_COUNT, load_dyck_languages_generated, load_word_sorting_generated,
)
from dspy_meta.benchmarks.mmlu import load_mmlu_subject
from dspy_meta.benchmarks.tasks import (
    Task, load_bbh_dyck_languages, load_bbh_word_sorting, load_colored_objects, load_dyck_languages_short,
    load_object_counting, load_word_sorting_short,
)

__all__ = ["TaskEntry", "available_tasks", "load_task", "offline_tasks", "suite", "task_loader", "tasks_in_group"]

Group = Literal["learning", "evaluation", "external"]
PROTOCOL_SIZES = {"n_train": 50, "n_val": 100, "n_test": 300}  # the comparison protocol's generated splits


@dataclass(frozen=True)
class TaskEntry:
    """A task of the suite: its loader (with the suite's defaults bound), group, kind and what it needs."""

    name: str
    loader: Callable[..., Task]
    group: Group
    kind: str                 # "word sorting", "dyck", "mmlu", "reasoning-gym", ...
    paper: bool = False       # one of the metaTextGrad paper's task kinds
    needs: str | None = None  # what it needs beyond the registry packages (None: loads anywhere)


def _bound(loader: Callable[..., Task], *args: Any, **defaults: Any) -> Callable[..., Task]:
    bound = functools.partial(loader, *args, **defaults)
    functools.update_wrapper(bound, loader)  # keeps the loader's docstring for `dspy-meta tasks`
    return bound


_SDIST = "the bigbench==1.0.0 sdist (gone from PyPI; DSPY_META_BIGBENCH_TARBALL=a local copy)"
_GATED = "the Hugging Face Hub (gated dataset Idavidrein/gpqa: network, accepted terms, a token)"


def _entries() -> list[TaskEntry]:
    mmlu = [("miscellaneous", "learning"), ("professional psychology", "learning"), ("moral scenarios", "learning"),
            ("high school psychology", "evaluation"), ("professional law", "evaluation")]
    return [
        TaskEntry("word_sorting_generated", _bound(load_word_sorting_generated, **PROTOCOL_SIZES), "learning",
                  "word sorting", paper=True),
        TaskEntry("word_sorting_bbh_generated",
                  _bound(load_word_sorting_generated, min_words=BBH_WORD_COUNT[0], max_words=BBH_WORD_COUNT[1],
                         name="word_sorting_bbh_generated", **PROTOCOL_SIZES), "learning", "word sorting", paper=True),
        TaskEntry("dyck_languages_generated", _bound(load_dyck_languages_generated, **PROTOCOL_SIZES), "learning",
                  "dyck", paper=True),
        TaskEntry("dyck_languages_bbh_generated",
                  _bound(load_dyck_languages_generated, min_tokens=BBH_DYCK_TOKENS[0], max_tokens=BBH_DYCK_TOKENS[1],
                         max_depth=12, name="dyck_languages_bbh_generated", **PROTOCOL_SIZES), "learning", "dyck",
                  paper=True),
        TaskEntry("mmlu_abstract_algebra", load_mmlu_abstract_algebra, "learning", "mmlu", paper=True),
        *[TaskEntry(f"mmlu_{topic.replace(' ', '_')}", _bound(load_mmlu_subject, topic), group, "mmlu", paper=True)
          for topic, group in mmlu],
        *_gym_entries(),
        TaskEntry("bbh_word_sorting", load_bbh_word_sorting, "external", "word sorting", True, _SDIST),
        TaskEntry("bbh_dyck_languages", load_bbh_dyck_languages, "external", "dyck", True, _SDIST),
        TaskEntry("bigbench_word_sorting_short", load_word_sorting_short, "external", "word sorting", True, _SDIST),
        TaskEntry("bigbench_dyck_languages_short", load_dyck_languages_short, "external", "dyck", True, _SDIST),
        TaskEntry("bigbench_object_counting", load_object_counting, "external", "counting", needs=_SDIST),
        TaskEntry("bigbench_colored_objects", load_colored_objects, "external", "colored objects", needs=_SDIST),
        *_hub_entries(),
        TaskEntry("gpqa_diamond", load_gpqa_diamond, "external", "science questions", True, _GATED),
    ]


GYM_EVALUATION = frozenset({"gym_family_relationships", "gym_spell_backward"})  # held out of all tuning


def _gym_entries() -> list[TaskEntry]:
    from dspy_meta.benchmarks.gym import GYM_TASKS, gym_task_loader

    return [TaskEntry(name, _bound(gym_task_loader(name), **PROTOCOL_SIZES),
                      "evaluation" if name in GYM_EVALUATION else "learning", "reasoning-gym")
            for name in GYM_TASKS]


def _hub_entries() -> list[TaskEntry]:
    from dspy_meta.benchmarks.hub import load_bbh_hub

    hub = "the Hugging Face Hub (BBH, revision pinned)"
    return [TaskEntry(f"bbh_hub_{task}", _bound(load_bbh_hub, task), "external",
                      "word sorting" if task == "word_sorting" else "dyck", True, hub)
            for task in ("word_sorting", "dyck_languages")]


@functools.cache
def _suite() -> dict[str, TaskEntry]:
    return {entry.name: entry for entry in _entries()}


def suite() -> list[TaskEntry]:
    """Every registered task, local tasks first."""
    return list(_suite().values())


def _entry(name: str) -> TaskEntry:
    try:
        return _suite()[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; available: {', '.join(_suite())}") from None


def task_loader(name: str) -> Callable[..., Task]:
    """The function that loads a task (its keyword arguments are the task's settings)."""
    return _entry(name).loader


def available_tasks() -> list[str]:
    return list(_suite())


def offline_tasks() -> list[str]:
    """The tasks that load from the registry packages alone (no sdist, no network)."""
    return [entry.name for entry in suite() if entry.needs is None]


def tasks_in_group(group: Group) -> list[str]:
    """The tasks of one group (``"evaluation"``: the held-out tasks nothing may be tuned on)."""
    return [entry.name for entry in suite() if entry.group == group]


def load_task(name: str, **kwargs: Any) -> Task:
    """Load a task by name (see `available_tasks`); keyword arguments go to its loader."""
    return _entry(name).loader(**kwargs)
