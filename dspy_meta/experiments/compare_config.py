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
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from dspy_meta.experiments.config import RunConfig, Seeds, read_yaml
from dspy_meta.runtime.schema import invalid
from dspy_meta.search.budget import MetaBudget

__all__ = ["BASELINE_METHOD", "COMPARE_METHODS", "DEFAULTS_METHODS", "STOCK_METHODS", "OPTIMIZING_METHODS",
           "DEFAULT_SETTINGS", "CompareConfig", "load_compare_config"]

# Stock: as DSPy ships them. The meta methods are this project's meta-optimizers.
# The *_defaults / *_auto_light methods run as a user would run them, with no cap: their table reports their
# actual cost (`DEFAULTS_METHODS`); every other optimizing method runs under the config's program-call cap.
DEFAULTS_METHODS = ("mipro_v2_auto_light", "gepa_auto_light", "copro_defaults", "meta_teleprompter_defaults")
STOCK_METHODS = ("zero_shot_cot", "self_consistency", "bootstrap_fewshot", "copro", "mipro_v2", "gepa",
                 "mipro_v2_auto_light", "gepa_auto_light", "copro_defaults")
META_METHODS = ("meta_prompt", "meta_structure", "meta_teleprompter", "meta_teleprompter_defaults")
COMPARE_METHODS = STOCK_METHODS + META_METHODS
# Methods that spend program calls while optimizing.
OPTIMIZING_METHODS = ("bootstrap_fewshot", "copro", "mipro_v2", "gepa") + DEFAULTS_METHODS + META_METHODS[:3]
BASELINE_METHOD = "zero_shot_cot"  # the unoptimized program: scored once per comparison, shared by every seed
# The protocol that resolves a few points (see `dspy_meta.experiments.stats`).
PROTOCOL_MIN_VAL, PROTOCOL_MIN_TEST, PROTOCOL_MIN_SEEDS = 50, 300, 3

DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {
    "demos": {"max_bootstrapped_demos": 2, "max_labeled_demos": 2},
    "self_consistency": {"n": 3, "temperature": 0.7},
    "copro": {"breadth": 3, "depth": 1, "init_temperature": 1.4},
    "mipro_v2": {"num_candidates": 3, "minibatch_size": 35},
    "gepa": {"reflection_minibatch_size": 3, "use_merge": True},
    "meta": {"budget": {"prompt_steps": 1, "structure_steps": 1, "num_examples": 4, "copro_breadth": 2,
                        "copro_depth": 1, "mipro_candidates": 2, "mipro_trials": 2}},
}

_Positive = Annotated[int, Field(ge=1, strict=True)]


class CompareConfig(RunConfig):
    program_calls: _Positive
    seeds: Seeds = (1, 2, 3)
    methods: tuple[str, ...] = COMPARE_METHODS
    settings: dict[str, dict[str, Any]] = Field(default_factory=lambda: copy.deepcopy(DEFAULT_SETTINGS))
    output: Annotated[str, Field(strict=True)] = ""
    work_dir: Annotated[str, Field(strict=True)] = ""
    num_threads: _Positive = 1
    max_val: _Positive | None = None
    max_test: _Positive | None = None

    @property
    def meta_budget(self) -> MetaBudget:
        return MetaBudget.from_dict(self.settings["meta"]["budget"])

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [m for m in methods if m not in COMPARE_METHODS]
        if unknown or not methods or len(set(methods)) != len(methods):
            raise invalid("config", f"unknown or repeated method(s) {unknown}; available: {list(COMPARE_METHODS)}")
        return methods

    @field_validator("settings", mode="before")
    @classmethod
    def _merged_settings(cls, data: Any) -> Any:
        return _settings(data)

    @model_validator(mode="after")
    def _paths(self) -> CompareConfig:
        object.__setattr__(self, "output", self.output or f"benchmarks/results/{self.name}.json")
        object.__setattr__(self, "work_dir", self.work_dir or f"runs/compare/{self.name}")
        return self


def _settings(data: Any) -> dict[str, dict[str, Any]]:
    """The defaults, updated key by key from the config; unknown sections or keys are errors."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise invalid("config", "must be a mapping")
    unknown = sorted(set(data) - set(DEFAULT_SETTINGS))
    if unknown:
        raise invalid("config", f"unknown key(s) {unknown}; allowed: {sorted(DEFAULT_SETTINGS)}")
    settings = copy.deepcopy(DEFAULT_SETTINGS)
    for section, values in data.items():
        values = values or {}
        extra = sorted(set(values) - set(DEFAULT_SETTINGS[section])) if isinstance(values, Mapping) else values
        if extra or not isinstance(values, Mapping):
            raise invalid("config_at", f"unknown key(s) {extra}; allowed: {sorted(DEFAULT_SETTINGS[section])}",
                          at=section)
        for key, value in values.items():
            if section == "meta":  # budget: a mapping merged over the default budget, then validated
                merged = {**settings["meta"]["budget"], **dict(value or {})}
                try:
                    MetaBudget.from_dict(merged)
                except ValueError as exc:
                    raise invalid("config_at", str(exc), at="meta.budget") from None
                value = merged
            settings[section][key] = value
    return settings


def load_compare_config(path: str | Path) -> CompareConfig:
    return CompareConfig.from_dict(read_yaml(path), source=str(path))
