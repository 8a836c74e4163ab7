"""Experiment configs: dataclasses loaded from ``configs/*.yaml``, validated on load.

Unknown keys and bad values are errors that name the key (``lms.program.model``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from dspy_meta._validation import check_keys
from dspy_meta.meta.budget import MetaBudget
from dspy_meta.redact import is_secret_setting, redact

__all__ = ["ConfigError", "LMConfig", "TaskConfig", "ExperimentConfig", "load_config", "METHODS"]

METHODS = ("zero_shot_cot", "few_shot_cot", "self_consistency", "copro", "mipro_v2",
           "meta_prompt", "meta_structure", "meta_teleprompter")


class ConfigError(ValueError):
    """An invalid config; the message names the key."""


def _check_keys(data: Any, path: str, allowed: set[str], required: set[str] = frozenset()) -> Mapping:
    return check_keys(data, path, allowed, required, error=ConfigError)


def _kwargs(data: Mapping, path: str) -> dict[str, Any]:
    kwargs = data.get("kwargs", {})
    if not isinstance(kwargs, Mapping):
        raise ConfigError(f"{path}.kwargs: must be a mapping")
    return dict(kwargs)


def _int(value: Any, path: str, low: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{path}: must be an integer >= {low}, got {value!r}")
    return value


@dataclass(frozen=True)
class LMConfig:
    """An LM for one level: a local registry name or a litellm model string, plus `dspy.LM` settings."""

    model: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, path: str) -> LMConfig:
        if isinstance(data, str):
            return cls(model=data)
        data = _check_keys(data, path, {"model", "kwargs"}, {"model"})
        if not isinstance(data["model"], str) or not data["model"]:
            raise ConfigError(f"{path}.model: must be a non-empty string")
        kwargs = _kwargs(data, path)
        secret = {k for k in kwargs if is_secret_setting(k)}
        if secret:
            raise ConfigError(f"{path}.kwargs: {sorted(secret)} look like secrets; set them in the environment "
                              "(e.g. OPENAI_API_KEY), never in a config file")
        for name in ("api_base", "base_url"):
            if name in kwargs and redact(str(kwargs[name])) != str(kwargs[name]):
                raise ConfigError(f"{path}.kwargs.{name}: holds credentials; keep them out of config files")
        return cls(model=data["model"], kwargs=kwargs)

    def build(self):
        from dspy_meta.lm import make_lm

        return make_lm(self.model, **self.kwargs)


@dataclass(frozen=True)
class TaskConfig:
    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, path: str) -> TaskConfig:
        from dspy_meta.benchmarks import available_tasks

        if isinstance(data, str):
            data = {"name": data}
        data = _check_keys(data, path, {"name", "kwargs"}, {"name"})
        if data["name"] not in available_tasks():
            raise ConfigError(f"{path}.name: unknown task {data['name']!r}; available: {available_tasks()}")
        return cls(name=data["name"], kwargs=_kwargs(data, path))

    def load(self):
        from dspy_meta.benchmarks import load_task

        return load_task(self.name, **self.kwargs)


_LEVELS = ("program", "optimizer", "meta")


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    task: TaskConfig
    lms: Mapping[str, LMConfig]
    budget: MetaBudget = field(default_factory=MetaBudget)
    methods: tuple[str, ...] = ("zero_shot_cot", "meta_teleprompter")
    seeds: tuple[int, ...] = (0,)
    num_threads: int = 1
    max_bootstrapped_demos: int = 2
    max_labeled_demos: int = 2
    num_samples: int = 4  # for self_consistency
    output_dir: str = "runs"

    @classmethod
    def from_dict(cls, data: Any, source: str = "config") -> ExperimentConfig:
        allowed = {f.name for f in fields(cls)}
        data = _check_keys(data, source, allowed, {"name", "task", "lms"})
        lms_data = _check_keys(data["lms"], "lms", set(_LEVELS), set(_LEVELS))
        lms = {level: LMConfig.from_dict(lms_data[level], f"lms.{level}") for level in _LEVELS}
        try:
            budget = MetaBudget.from_dict(data.get("budget", {}))
        except ValueError as exc:
            raise ConfigError(f"budget: {exc}") from None
        methods = tuple(data.get("methods", cls.methods))
        unknown = [m for m in methods if m not in METHODS]
        if unknown or not methods:
            raise ConfigError(f"methods: unknown method(s) {unknown}; available: {list(METHODS)}")
        seeds = tuple(_int(s, f"seeds[{i}]") for i, s in enumerate(data.get("seeds", cls.seeds)))
        if not seeds:
            raise ConfigError("seeds: at least one seed is needed")
        name = data["name"]
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"name: must be letters, digits, '-' or '_', got {name!r}")
        output_dir = data.get("output_dir", cls.output_dir)
        if not isinstance(output_dir, str):
            raise ConfigError("output_dir: must be a string")
        return cls(
            name=name, task=TaskConfig.from_dict(data["task"], "task"), lms=lms, budget=budget, methods=methods,
            seeds=seeds, num_threads=_int(data.get("num_threads", cls.num_threads), "num_threads", 1),
            max_bootstrapped_demos=_int(data.get("max_bootstrapped_demos", cls.max_bootstrapped_demos),
                                        "max_bootstrapped_demos"),
            max_labeled_demos=_int(data.get("max_labeled_demos", cls.max_labeled_demos), "max_labeled_demos"),
            num_samples=_int(data.get("num_samples", cls.num_samples), "num_samples", 1), output_dir=output_dir,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "task": {"name": self.task.name, "kwargs": dict(self.task.kwargs)},
                "lms": {level: {"model": c.model, "kwargs": dict(c.kwargs)} for level, c in self.lms.items()},
                "budget": self.budget.to_dict(), "methods": list(self.methods), "seeds": list(self.seeds),
                "num_threads": self.num_threads, "max_bootstrapped_demos": self.max_bootstrapped_demos,
                "max_labeled_demos": self.max_labeled_demos, "num_samples": self.num_samples,
                "output_dir": self.output_dir}


def load_config(path: str | Path) -> ExperimentConfig:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return ExperimentConfig.from_dict(data, source=str(path))
