"""Experiment configs: strict pydantic models loaded from ``configs/*.yaml``, validated on load.

Unknown keys and bad values are `ConfigError`s that name the key (``lms.program.model``).
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Field, PydanticSchemaGenerationError, TypeAdapter, ValidationError, field_validator,
    model_validator,
)

from dspy_meta.errors import ConfigError
from dspy_meta.runtime.redact import is_secret_setting, redact
from dspy_meta.runtime.schema import describe_error, error_path, invalid, load_yaml
from dspy_meta.search.budget import MetaBudget

__all__ = ["ConfigError", "LMConfig", "TaskConfig", "RunConfig", "ExperimentConfig", "load_config", "METHODS",
           "find_config", "shipped_configs"]

METHODS = ("zero_shot_cot", "few_shot_cot", "self_consistency", "copro", "mipro_v2", "gepa",
           "meta_prompt", "meta_structure", "meta_teleprompter")
_LEVELS = ("program", "optimizer", "meta")

_Count = Annotated[int, Field(ge=0, strict=True)]
_Positive = Annotated[int, Field(ge=1, strict=True)]


class _Config(BaseModel):
    # Lax only where YAML needs it (lists for tuples); numbers and strings are checked strictly per field.
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Named(_Config):
    """A config that a bare string may stand for: ``"x"`` means ``{_shorthand_key: "x"}``."""

    _shorthand_key: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {cls._shorthand_key: data} if isinstance(data, str) else data


class LMConfig(_Named):
    """An LM for one level: a local registry name or a litellm model string, plus `dspy.LM` settings."""

    _shorthand_key: ClassVar[str] = "model"
    model: Annotated[str, Field(min_length=1, strict=True)]
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("kwargs")
    @classmethod
    def _no_credentials(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        secret = sorted(k for k in kwargs if is_secret_setting(k))
        if secret:
            raise invalid("config", f"{secret} look like secrets; set them in the environment "
                                    "(e.g. OPENAI_API_KEY), never in a config file")
        for name in ("api_base", "base_url"):
            if name in kwargs and redact(str(kwargs[name])) != str(kwargs[name]):
                raise invalid("config_at", "holds credentials; keep them out of config files", at=name)
        return kwargs

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        from dspy_meta.lm.registry import LOCAL_MODELS

        name = model.removeprefix("local/")
        if name not in LOCAL_MODELS and ("/" not in model or model.startswith("local/") or
                                         not all(part.strip() for part in model.split("/", 1))):
            raise invalid("config", f"unknown model {model!r}: use a local model ({sorted(LOCAL_MODELS)}) or a "
                                    "litellm model string 'provider/name' such as 'openai/gpt-4o-mini'")
        return model

    def build(self):
        """The LM; a `ConfigError` for a provider litellm does not know (before any work is done)."""
        import litellm

        from dspy_meta.lm import make_lm
        from dspy_meta.lm.registry import LOCAL_MODELS

        if self.model.removeprefix("local/") not in LOCAL_MODELS:
            provider = self.model.split("/", 1)[0]
            known = {getattr(p, "value", p) for p in litellm.provider_list}
            known |= {p.get("provider") for p in litellm.custom_provider_map or []}
            if provider not in known:
                raise ConfigError(f"model {self.model!r}: unknown provider {provider!r} (litellm knows "
                                  f"{len(known)} providers, such as openai, anthropic, ollama_chat, hosted_vllm)")
        try:
            return make_lm(self.model, **self.kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"model {self.model!r}: {redact(exc)}") from None


class TaskConfig(_Named):
    _shorthand_key: ClassVar[str] = "name"
    name: Annotated[str, Field(strict=True)]
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from dspy_meta.benchmarks import available_tasks

        if name not in available_tasks():
            raise invalid("config", f"unknown task {name!r}; available: {available_tasks()}")
        return name

    @model_validator(mode="after")
    def _known_kwargs(self) -> TaskConfig:
        import inspect

        from dspy_meta.benchmarks.registry import task_loader

        loader = task_loader(self.name)
        parameters = inspect.signature(loader).parameters
        unknown = sorted(set(self.kwargs) - set(parameters))
        if unknown:
            raise invalid("config_at", f"unknown setting(s) {unknown} for task {self.name!r}; known: "
                                       f"{sorted(parameters)}", at="kwargs")
        wrong = _wrong_type(loader, self.kwargs)  # the loader's own error would name no key
        if wrong:
            raise invalid("config_at", wrong[1], at=f"kwargs.{wrong[0]}")
        return self

    def load(self):
        """The task, checked to have enough examples (>= 2 train, >= 1 val and test); a `ConfigError` otherwise."""
        from dspy_meta.benchmarks import load_task

        try:
            task = load_task(self.name, **self.kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"task: {self.name!r} with {self.kwargs} cannot be loaded: {exc}") from None
        sizes = {"train": len(task.train), "val": len(task.val), "test": len(task.test)}
        small = {split: n for split, n in sizes.items() if n < (2 if split == "train" else 1)}
        if small:
            raise ConfigError(f"task: {self.name!r} with {self.kwargs} has too few examples {small}; the "
                              "optimizers need at least 2 training and 1 validation and test example")
        return task


def _wrong_type(loader, kwargs: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first of `kwargs` whose type does not match the loader's annotation, strictly (``n_train: '4'``
    is no integer), and what is wrong; settings whose annotation cannot be checked are left to the loader."""
    try:
        hints = typing.get_type_hints(loader)
    except Exception:  # noqa: BLE001 -- unresolvable annotations: nothing to check against
        return None
    for key, value in kwargs.items():
        try:
            TypeAdapter(hints[key]).validate_python(value, strict=True)
        except ValidationError as exc:
            return key, f"{describe_error(exc.errors()[0])}, got {value!r:.80}"
        except (KeyError, PydanticSchemaGenerationError):
            continue
    return None


def _distinct_seeds(seeds: tuple[int, ...]) -> tuple[int, ...]:
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"must be distinct, got {list(seeds)}")
    return seeds


# The seeds of a comparison or a learning run: at least one, each >= 0, no repeats.
Seeds = Annotated[tuple[Annotated[int, Field(ge=0, strict=True)], ...], Field(min_length=1),
                  AfterValidator(_distinct_seeds)]


class RunConfig(_Config):
    """What experiment and comparison configs share: a safe name, the three levels' LMs, and loading
    from a mapping with errors that name the key."""

    name: Annotated[str, Field(strict=True)]
    task: TaskConfig
    lms: dict[str, LMConfig]

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if not name.replace("_", "").replace("-", "").isalnum():
            raise invalid("config", f"must be letters, digits, '-' or '_', got {name!r}")
        return name

    @field_validator("lms", mode="before")
    @classmethod
    def _three_levels(cls, lms: Any) -> Any:
        if isinstance(lms, Mapping):
            unknown, missing = sorted(set(lms) - set(_LEVELS)), sorted(set(_LEVELS) - set(lms))
            if unknown:
                raise invalid("config", f"unknown key(s) {unknown}; allowed: {list(_LEVELS)}")
            if missing:
                raise invalid("config", f"missing key(s) {missing}")
        return lms

    @model_validator(mode="after")
    def _expand_home(self) -> RunConfig:
        # "~/runs" is the home folder's, as in a shell; `Path("~/runs")` alone makes a folder named "~".
        for name in type(self).model_fields:
            value = getattr(self, name)
            if (name == "output" or name.endswith("_dir")) and isinstance(value, str) and value.startswith("~"):
                object.__setattr__(self, name, os.path.expanduser(value))
        return self

    @classmethod
    def from_dict(cls, data: Any, source: str = "config"):
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: must be a mapping, got {type(data).__name__}")
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise ConfigError(_config_error(exc, source)) from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class ExperimentConfig(RunConfig):
    budget: MetaBudget = Field(default_factory=MetaBudget)
    methods: tuple[str, ...] = ("zero_shot_cot", "meta_teleprompter")
    seeds: Annotated[tuple[_Count, ...], Field(min_length=1)] = (0,)
    num_threads: _Positive = 1
    max_bootstrapped_demos: _Count = 2
    max_labeled_demos: _Count = 2
    num_samples: _Positive = 4  # for self_consistency
    output_dir: Annotated[str, Field(strict=True)] = "runs"

    @field_validator("seeds", mode="before")
    @classmethod
    def _one_seed(cls, seeds: Any) -> Any:
        return [seeds] if isinstance(seeds, int) and not isinstance(seeds, bool) else seeds

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [m for m in methods if m not in METHODS]
        if unknown or not methods:
            raise invalid("config", f"unknown method(s) {unknown}; available: {list(METHODS)}")
        return methods


def _config_error(exc: ValidationError, source: str) -> str:
    """The first error as ``path: what is wrong``; a misspelt key (the likely cause of a "missing" one) first."""
    errors = exc.errors()
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc, kind, ctx = tuple(error["loc"]), error["type"], error.get("ctx") or {}
    if kind == "extra_forbidden":
        return f"{error_path(loc[:-1]) or source}: unknown key(s) {[loc[-1]]}"
    if kind == "missing":
        return f"{error_path(loc[:-1]) or source}: missing key(s) {[loc[-1]]}"
    if kind == "config_at":
        return f"{error_path(loc + (ctx['at'],))}: {error['msg']}"
    detail = error["msg"] if kind == "config" else describe_error(error)
    return f"{error_path(loc) or source}: {detail}"


def _shipped_folder() -> Path:
    """The shipped configs: ``dspy_meta/configs`` in an installed wheel; in a checkout, the repository's
    ``configs/``, the one copy (the wheel's build copies it into the package: see ``setup.py``)."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "configs"
    return installed if installed.is_dir() else package.parent / "configs"


def shipped_configs() -> dict[str, Path]:
    """The configs that come with the package, by name (``demo``, ``quick``, ``compare_word_sorting_short``)."""
    folder = _shipped_folder()
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def find_config(name_or_path: str | Path) -> Path:
    """A config file: `name_or_path` when that file exists; else, for a bare name (``demo``, ``demo.yaml``) or
    the README's ``configs/<name>.yaml``, the shipped config of that name, so it works from any directory.
    A `ConfigError` otherwise, listing the shipped names."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = path.name.removesuffix(".yaml").removesuffix(".yml")
    shipped = shipped_configs()
    if str(path.parent) in (".", "configs") and name in shipped:
        return shipped[name]
    raise ConfigError(f"config file {str(path)!r} does not exist, and no config of that name is shipped "
                      f"(shipped: {', '.join(shipped) or 'none'})")


def read_yaml(path: str | Path) -> Any:
    """A config file's content (a path, or a shipped config's name: `find_config`); `ConfigError` when it is
    missing, not YAML, or uses YAML aliases (`load_yaml`)."""
    path = find_config(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    return load_yaml(text, str(path))


def load_config(path: str | Path) -> ExperimentConfig:
    return ExperimentConfig.from_dict(read_yaml(path), source=str(path))
