"""Config of an equal-budget comparison (``configs/compare_*.yaml``), validated on load.

::

    name: word_sorting_short            # letters, digits, '-', '_'
    task: {name: bigbench_word_sorting_short, kwargs: {...}}
    lms: {program: ..., optimizer: ..., meta: ...}   # as in experiment configs
    program_calls: 60                   # the hard cap on program-LM calls of every optimizing method
    seeds: [1, 2, 3]
    methods: [zero_shot_cot, ...]       # default: all of COMPARE_METHODS
    settings:                           # per-method settings, all optional (defaults in DEFAULT_SETTINGS)
      copro: {breadth: 3, depth: 1}
      meta: {budget: {...}}             # the MetaBudget of the three meta methods
    output: benchmarks/results/NAME.json
    work_dir: runs/compare/NAME         # optimized programs
    max_val: 20                         # optional: use only the first N validation (test) examples of the
    max_test: 40                        #   task's split (for tasks whose split is fixed, e.g. MMLU's 10/50/40)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dspy_meta import MetaBudget
from dspy_meta._validation import check_keys
from dspy_meta.experiments.config import ConfigError, LMConfig, TaskConfig

__all__ = ["COMPARE_METHODS", "STOCK_METHODS", "OPTIMIZING_METHODS", "DEFAULT_SETTINGS", "CompareConfig",
           "load_compare_config"]

# Stock: as DSPy ships them. The last three are this project's meta-optimizers.
STOCK_METHODS = ("zero_shot_cot", "self_consistency", "bootstrap_fewshot", "copro", "mipro_v2", "gepa")
META_METHODS = ("meta_prompt", "meta_structure", "meta_teleprompter")
COMPARE_METHODS = STOCK_METHODS + META_METHODS
# Methods that spend program calls while optimizing (and so run under the cap).
OPTIMIZING_METHODS = ("bootstrap_fewshot", "copro", "mipro_v2", "gepa") + META_METHODS

DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {
    "demos": {"max_bootstrapped_demos": 2, "max_labeled_demos": 2},
    "self_consistency": {"n": 3, "temperature": 0.7},
    "copro": {"breadth": 3, "depth": 1, "init_temperature": 1.4},
    "mipro_v2": {"num_candidates": 3, "minibatch_size": 35},
    "gepa": {"reflection_minibatch_size": 3, "use_merge": True},
    "meta": {"budget": {"prompt_steps": 1, "structure_steps": 1, "num_examples": 4, "copro_breadth": 2,
                        "copro_depth": 1, "mipro_candidates": 2, "mipro_trials": 2}},
}


@dataclass(frozen=True)
class CompareConfig:
    name: str
    task: TaskConfig
    lms: Mapping[str, LMConfig]
    program_calls: int
    seeds: tuple[int, ...] = (1, 2, 3)
    methods: tuple[str, ...] = COMPARE_METHODS
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: copy.deepcopy(DEFAULT_SETTINGS))
    output: str = ""
    work_dir: str = ""
    num_threads: int = 1
    max_val: int | None = None
    max_test: int | None = None

    @property
    def meta_budget(self) -> MetaBudget:
        return MetaBudget.from_dict(self.settings["meta"]["budget"])

    @classmethod
    def from_dict(cls, data: Any, source: str = "config") -> CompareConfig:
        allowed = {"name", "task", "lms", "program_calls", "seeds", "methods", "settings", "output", "work_dir",
                   "num_threads", "max_val", "max_test"}
        data = check_keys(data, source, allowed, {"name", "task", "lms", "program_calls"}, error=ConfigError)
        name = data["name"]
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"name: must be letters, digits, '-' or '_', got {name!r}")
        levels = ("program", "optimizer", "meta")
        lms_data = check_keys(data["lms"], "lms", set(levels), set(levels), error=ConfigError)
        lms = {level: LMConfig.from_dict(lms_data[level], f"lms.{level}") for level in levels}
        cap = data["program_calls"]
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
            raise ConfigError(f"program_calls: must be a positive integer, got {cap!r}")
        seeds = data.get("seeds", list(cls.seeds))
        if not isinstance(seeds, list) or not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0
                                                            for s in seeds) or len(set(seeds)) != len(seeds):
            raise ConfigError(f"seeds: must be a non-empty list of distinct non-negative integers, got {seeds!r}")
        methods = data.get("methods", list(COMPARE_METHODS))
        unknown = [m for m in methods if m not in COMPARE_METHODS] if isinstance(methods, list) else methods
        if unknown or not methods or len(set(methods)) != len(methods):
            raise ConfigError(f"methods: unknown or repeated method(s) {unknown}; available: {list(COMPARE_METHODS)}")
        settings = _settings(data.get("settings", {}))
        try:
            MetaBudget.from_dict(settings["meta"]["budget"])
        except ValueError as exc:
            raise ConfigError(f"settings.meta.budget: {exc}") from None
        threads = data.get("num_threads", 1)
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ConfigError(f"num_threads: must be a positive integer, got {threads!r}")
        for key in ("max_val", "max_test"):
            value = data.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"{key}: must be a positive integer, got {value!r}")
        for key in ("output", "work_dir"):
            if not isinstance(data.get(key, ""), str):
                raise ConfigError(f"{key}: must be a string")
        return cls(name=name, task=TaskConfig.from_dict(data["task"], "task"), lms=lms, program_calls=cap,
                   seeds=tuple(seeds), methods=tuple(methods), settings=settings,
                   output=data.get("output") or f"benchmarks/results/{name}.json",
                   work_dir=data.get("work_dir") or f"runs/compare/{name}", num_threads=threads,
                   max_val=data.get("max_val"), max_test=data.get("max_test"))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "task": {"name": self.task.name, "kwargs": dict(self.task.kwargs)},
                "lms": {level: {"model": c.model, "kwargs": dict(c.kwargs)} for level, c in self.lms.items()},
                "program_calls": self.program_calls, "seeds": list(self.seeds), "methods": list(self.methods),
                "settings": copy.deepcopy(dict(self.settings)), "output": self.output, "work_dir": self.work_dir,
                "num_threads": self.num_threads, "max_val": self.max_val, "max_test": self.max_test}


def _settings(data: Any) -> dict[str, dict[str, Any]]:
    """The defaults, updated key by key from the config; unknown sections or keys are errors."""
    data = check_keys(data, "settings", set(DEFAULT_SETTINGS), error=ConfigError)
    settings = copy.deepcopy(DEFAULT_SETTINGS)
    for section, values in data.items():
        values = check_keys(values or {}, f"settings.{section}", set(DEFAULT_SETTINGS[section]), error=ConfigError)
        for key, value in values.items():
            if section == "meta":  # budget: a mapping merged over the default budget
                value = {**settings["meta"]["budget"], **dict(check_keys(value, "settings.meta.budget", set(
                    MetaBudget().to_dict()), error=ConfigError))}
            settings[section][key] = value
    return settings


def load_compare_config(path: str | Path) -> CompareConfig:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return CompareConfig.from_dict(data, source=str(path))
