"""Learned-optimizer bundles: inner optimizers and a plan learned offline across tasks, as one versioned file.

A bundle holds, for each learned inner optimizer, its `OptimizerSpec` (kind, hyperparameters, its own
prompts), the structure plan that combines them, and where it came from: the LMs at each level, the
learning tasks, budgets, seeds, the cross-task scores, and the DSPy and dspy-meta versions it was learned
with. It is plain JSON, checked on load (`load_bundle`): specs and plan are validated as any spec or plan
is, and a bundle learned under another DSPy minor version loads with a warning (DSPy's optimizers may
have changed under the learned prompts).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from dspy_meta.errors import ConfigError
from dspy_meta.optimizers.spec import OptimizerSpec
from dspy_meta.plans.nodes import PlanNode, plan_from_dict
from dspy_meta.runtime.files import write_atomic
from dspy_meta.runtime.schema import StrictModel

__all__ = ["BUNDLE_FORMAT", "LearnedBundle", "Provenance", "load_bundle", "shipped_bundles"]

logger = logging.getLogger(__name__)

BUNDLE_FORMAT = "dspy-meta-learned-optimizers"
BUNDLE_VERSION = 1
_SHIPPED = "bundles"  # package data folder of the bundles shipped with dspy-meta


def _versions() -> tuple[str, str]:
    import dspy

    from dspy_meta import __version__

    return dspy.__version__, __version__


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


class Provenance(StrictModel):
    """Where a bundle came from; enough to reproduce it (`command`) and to judge where it applies."""

    _what = "bundle provenance"

    models: dict[str, str]                       # level -> model name: program, optimizer, meta
    learning_tasks: list[str]
    budgets: dict[str, Any] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=list)
    scores: dict[str, Any] = Field(default_factory=dict)   # the cross-task objective and per-task results
    dspy_version: str
    dspy_meta_version: str
    created: str                                 # ISO date
    command: str = ""                            # the command that reproduces the bundle

    @field_validator("models")
    @classmethod
    def _levels(cls, models: dict[str, str]) -> dict[str, str]:
        missing = sorted({"program", "optimizer", "meta"} - set(models))
        if missing:
            raise ValueError(f"needs the model of every level; missing {missing}")
        return models


class LearnedBundle(StrictModel):
    """Learned inner optimizers (name -> `OptimizerSpec` as a dict), the plan over them, and provenance."""

    _what = "bundle"

    format: Literal["dspy-meta-learned-optimizers"] = BUNDLE_FORMAT
    version: Annotated[int, Field(ge=1, le=BUNDLE_VERSION)] = BUNDLE_VERSION
    name: Annotated[str, Field(min_length=1)]
    optimizers: Annotated[dict[str, dict[str, Any]], Field(min_length=1)]
    plan: dict[str, Any] | None = None
    provenance: Provenance

    @field_validator("optimizers")
    @classmethod
    def _valid_specs(cls, optimizers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, data in optimizers.items():
            try:
                OptimizerSpec.from_dict(data)
            except (ValueError, TypeError, KeyError) as exc:
                raise ValueError(f"optimizer {name!r} is not a valid spec: {exc}") from None
        return optimizers

    @field_validator("plan")
    @classmethod
    def _valid_plan(cls, plan: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        if plan is not None:  # its "ref"s name the bundle's own optimizers
            library = {name: OptimizerSpec.from_dict(data) for name, data in info.data.get("optimizers", {}).items()}
            try:
                plan_from_dict(plan, library=library)
            except ValueError as exc:
                raise ValueError(f"is not a valid plan: {exc}") from None
        return plan

    # -- what a compile uses ---------------------------------------------------------------------------
    def spec(self, name: str) -> OptimizerSpec:
        """The learned optimizer `name` as an `OptimizerSpec` (a drop-in for its stock twin)."""
        try:
            return OptimizerSpec.from_dict(self.optimizers[name])
        except KeyError:
            raise ConfigError(f"bundle {self.name!r} has no optimizer {name!r}; it has {sorted(self.optimizers)}") \
                from None

    def specs(self) -> dict[str, OptimizerSpec]:
        return {name: self.spec(name) for name in self.optimizers}

    def plan_node(self) -> PlanNode:
        """The learned plan; without one, the first learned optimizer alone."""
        if self.plan is not None:
            return plan_from_dict(self.plan, library=self.specs())
        return plan_from_dict({"op": "optimize", **next(iter(self.optimizers.values()))})

    # -- files ---------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, (json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n").encode("utf-8"))
        return path

    @classmethod
    def create(cls, name: str, optimizers: dict[str, OptimizerSpec], plan: PlanNode | dict | None, *,
               models: dict[str, str], learning_tasks: list[str], **provenance: Any) -> LearnedBundle:
        """A bundle stamped with today's date and the installed DSPy and dspy-meta versions."""
        dspy_version, own_version = _versions()
        plan_dict = plan.to_dict() if plan is not None and not isinstance(plan, dict) else plan
        return cls(name=name, optimizers={k: spec.to_dict() for k, spec in optimizers.items()}, plan=plan_dict,
                   provenance=Provenance(models=dict(models), learning_tasks=list(learning_tasks),
                                         dspy_version=dspy_version, dspy_meta_version=own_version,
                                         created=datetime.date.today().isoformat(), **provenance))


def shipped_bundles() -> dict[str, Path]:
    """The bundles that ship inside the package, by name (``MetaTeleprompter(learned=NAME)``)."""
    folder = resources.files("dspy_meta.learning") / _SHIPPED
    try:
        return {entry.name.removesuffix(".json"): Path(str(entry)) for entry in folder.iterdir()
                if entry.name.endswith(".json")}
    except (FileNotFoundError, NotADirectoryError):
        return {}


def load_bundle(source: str | os.PathLike | LearnedBundle) -> LearnedBundle:
    """A checked bundle from a shipped name, a path, or a `LearnedBundle`; a `ConfigError` naming the problem."""
    if isinstance(source, LearnedBundle):
        bundle = source
    else:
        shipped = shipped_bundles()
        path = shipped.get(str(source)) or Path(source).expanduser()
        if not path.is_file():
            names = ", ".join(sorted(shipped)) or "none yet"
            raise ConfigError(f"no learned-optimizer bundle {str(source)!r}: not a file, and not a shipped bundle "
                              f"(shipped: {names})")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"bundle {path} cannot be read as JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
            raise ConfigError(f"{path} is not a dspy-meta learned-optimizer bundle (format {BUNDLE_FORMAT!r})")
        bundle = LearnedBundle(**data)
    dspy_version, _ = _versions()
    if _minor(bundle.provenance.dspy_version) != _minor(dspy_version):
        logger.warning("bundle %r was learned with DSPy %s; DSPy %s is installed: its optimizers may differ "
                       "under the learned prompts", bundle.name, bundle.provenance.dspy_version, dspy_version)
    return bundle
