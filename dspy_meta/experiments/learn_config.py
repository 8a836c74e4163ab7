"""Config of a learning run (``dspy-meta learn CONFIG``): one inner optimizer kind, meta-learned across tasks.

::

    name: copro_local                       # letters, digits, '-', '_'
    tasks: [word_sorting_generated, ...]    # learning tasks of the registry; held-out (evaluation) tasks refused
    task_kwargs:                            # optional, per task: the loader's settings over the defaults
      word_sorting_generated: {max_words: 3}  # (n_train 20, n_val 50 where the loader takes them)
    lms: {program: ..., optimizer: ..., meta: ...}   # as in experiment configs
    kind: copro                             # the inner optimizer kind to learn
    params: {breadth: 3, depth: 1}          # the reference (trial 0) params, and every trial's outside `space`
    space: {breadth: [2, 3, 4]}             # the searched params: each a list of choices
    trials: 12                              # learned trials after trial 0 (the stock reference)
    seeds: [1]                              # each trial runs once per task and seed
    search_seed: 0                          # the TPE sampler's and the example sampling's seed
    examples_per_task: 2                    # training examples of each task shown to the meta LM
    num_threads: 1
    output: runs/learn/NAME/bundle.json     # the learned bundle (best so far, rewritten after every trial)
    work_dir: runs/learn/NAME               # trials, results and the manifest: what a resumed run reuses

The learning signal is each task's validation split; no learning run reads a test split. `trials`,
`num_threads`, `output` and `name` may change between resumes (more trials extend a run); everything
else is part of the run's fingerprint (`learning_fingerprint`), and a changed one is refused.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, PrivateAttr, field_validator, model_validator

from dspy_meta.experiments.config import RunConfig, Seeds, TaskConfig, read_yaml
from dspy_meta.runtime.schema import invalid

__all__ = ["DEFAULT_SPLIT_SIZES", "LearnConfig", "load_learn_config", "learning_fingerprint"]

DEFAULT_SPLIT_SIZES = {"n_train": 20, "n_val": 50}  # applied where a task's loader takes them
FINGERPRINT_VERSION = 1

_Count = Annotated[int, Field(ge=0, strict=True)]
_Positive = Annotated[int, Field(ge=1, strict=True)]
_ChoiceValue = bool | int | float | str | None  # what an Optuna categorical choice may be


class LearnConfig(RunConfig):
    task: None = None  # a learning run has `tasks`, never one `task` (refused below, with a pointer)
    tasks: Annotated[tuple[str, ...], Field(min_length=1)]
    task_kwargs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    kind: Annotated[str, Field(strict=True)] = "copro"
    params: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, Annotated[list[_ChoiceValue], Field(min_length=1)]] = Field(default_factory=dict)
    trials: _Count = 12
    seeds: Seeds = (1,)
    search_seed: _Count = 0
    examples_per_task: _Positive = 2
    num_threads: _Positive = 1
    output: Annotated[str, Field(strict=True)] = ""
    work_dir: Annotated[str, Field(strict=True)] = ""
    _source: str = PrivateAttr(default="")

    @model_validator(mode="before")
    @classmethod
    def _no_single_task(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "task" in data:
            raise invalid("config", "a learning config names its tasks as a list under `tasks`, not one `task` "
                                    "(an experiment or comparison config? use `dspy-meta run` or `dspy-meta compare`)")
        return data

    @field_validator("tasks")
    @classmethod
    def _learning_tasks(cls, tasks: tuple[str, ...]) -> tuple[str, ...]:
        from dspy_meta.benchmarks.registry import available_tasks, tasks_in_group

        unknown = [t for t in tasks if t not in available_tasks()]
        if unknown:
            raise invalid("config", f"unknown task(s) {unknown}; learning tasks: {tasks_in_group('learning')}")
        held_out = [t for t in tasks if t in tasks_in_group("evaluation")]
        if held_out:
            raise invalid("config", f"{held_out} are held-out evaluation tasks: nothing may be learned on them "
                                    f"(learning tasks: {tasks_in_group('learning')})")
        if len(set(tasks)) != len(tasks):
            raise invalid("config", f"must be distinct, got {list(tasks)}")
        return tasks

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        from dspy_meta.optimizers import available_kinds

        if kind not in available_kinds():
            raise invalid("config", f"unknown optimizer kind {kind!r}; available: {available_kinds()}")
        return kind

    @model_validator(mode="after")
    def _checked(self) -> LearnConfig:
        self._check_task_kwargs()
        self._check_params_and_space()
        object.__setattr__(self, "work_dir", self.work_dir or f"runs/learn/{self.name}")
        object.__setattr__(self, "output", self.output or str(Path(self.work_dir) / "bundle.json"))
        return self

    def _check_task_kwargs(self) -> None:
        unknown = sorted(set(self.task_kwargs) - set(self.tasks))
        if unknown:
            raise invalid("config_at", f"settings of task(s) {unknown} not in `tasks`", at="task_kwargs")
        for name in self.tasks:
            try:
                TaskConfig(name=name, kwargs=self.resolved_task_kwargs(name))
            except ValueError as exc:  # pydantic's ValidationError: its first error names the setting
                error = exc.errors()[0] if hasattr(exc, "errors") else {"msg": str(exc), "ctx": {}}
                where = (error.get("ctx") or {}).get("at", "kwargs").removeprefix("kwargs").lstrip(".")
                raise invalid("config_at", error["msg"], at=f"task_kwargs.{name}" + (f".{where}" if where else "")) \
                    from None

    def _check_params_and_space(self) -> None:
        from dspy_meta.optimizers.base import get_kind

        kind = get_kind(self.kind)
        space = {}
        try:
            kind.validate_params(self.params)
        except ValueError as exc:
            raise invalid("config_at", str(exc), at="params") from None
        for name, choices in self.space.items():
            if name not in kind.params:
                raise invalid("config_at", f"{self.kind} has no parameter {name!r}; known: {sorted(kind.params)}",
                              at="space")
            try:
                checked = [kind.params[name].validate(name, value) for value in choices]
                for value in checked:  # the whole set, as a trial would run it (cross-parameter rules too)
                    kind.validate_params({**self.params, name: value})
            except ValueError as exc:
                raise invalid("config_at", str(exc), at=f"space.{name}") from None
            if len(set(map(repr, checked))) != len(checked):
                raise invalid("config_at", f"choices must be distinct, got {choices}", at=f"space.{name}")
            space[name] = checked  # ints widened to floats where the parameter is a float
        object.__setattr__(self, "space", space)

    # -- what the run uses ------------------------------------------------------------------------
    def resolved_task_kwargs(self, name: str) -> dict[str, Any]:
        """The loader settings of task `name`: the default split sizes its loader takes, then the config's."""
        from dspy_meta.benchmarks.registry import task_loader

        accepted = inspect.signature(task_loader(name)).parameters
        defaults = {key: value for key, value in DEFAULT_SPLIT_SIZES.items() if key in accepted}
        return {**defaults, **self.task_kwargs.get(name, {})}

    def reference_params(self) -> dict[str, Any]:
        """Trial 0's params: the kind's defaults overlaid with `params` (every parameter, validated)."""
        from dspy_meta.optimizers.base import get_kind

        return get_kind(self.kind).validate_params(self.params)

    @property
    def source(self) -> str:
        """The config file this was loaded from ('' when built from a mapping)."""
        return self._source

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"task"})


def learning_fingerprint(config: LearnConfig) -> dict[str, Any]:
    """Everything a learning run's finished work depends on (the task data's hashes are added by the run)."""
    from dspy_meta.optimizers.spec import OptimizerSpec

    data = config.to_dict()
    return {"version": FINGERPRINT_VERSION, "tasks": data["tasks"],
            "task_kwargs": {name: config.resolved_task_kwargs(name) for name in config.tasks},
            "lms": data["lms"], "kind": config.kind, "reference_params": config.reference_params(),
            "space": data["space"], "seeds": data["seeds"], "search_seed": config.search_seed,
            "examples_per_task": config.examples_per_task,
            # the installed DSPy's stock prompts: the reference every gain is measured against
            "stock_prompts": OptimizerSpec.create(config.kind).fingerprint()}


def load_learn_config(path: str | Path) -> LearnConfig:
    config = LearnConfig.from_dict(read_yaml(path), source=str(path))
    config._source = str(path)
    return config
