"""What a tracker logs, as plain data: flat parameters, metrics per candidate, scrubbed artifacts.

Nothing here imports a tracking library, so it is tested on its own. Every text passes through
`redact` and every LM setting that names a credential (``api_key``, ``extra_headers``, ...) is
dropped, so no secret reaches a parameter, a tag or an artifact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dspy_meta.runtime.redact import is_secret_setting, redact

__all__ = ["clip", "flatten", "scrub", "model_name", "plan_kind", "plan_prompts", "candidate_params", "run_params",
           "candidate_metrics", "usage_metrics", "running_best"]

_CLIPPED = "...[truncated]"


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, the cut marked."""
    if len(text) <= limit:
        return text
    return text[:max(0, limit - len(_CLIPPED))] + _CLIPPED


def scrub(value: Any) -> Any:
    """A JSON-like value with credential settings dropped and every string redacted."""
    if isinstance(value, Mapping):
        return {str(k): scrub(v) for k, v in value.items() if not is_secret_setting(str(k))}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


def flatten(value: Any, prefix: str, *, skip: Iterable[str] = ()) -> dict[str, str]:
    """``{"a.b.0": "5"}`` for ``{"a": {"b": [5]}}`` under `prefix`; keys in `skip` (at any depth) are left out."""
    skipped = set(skip)
    flat: dict[str, str] = {}

    def walk(item: Any, key: str) -> None:
        if isinstance(item, Mapping):
            for name, child in item.items():
                if str(name) not in skipped and not is_secret_setting(str(name)):
                    walk(child, f"{key}.{name}" if key else str(name))
        elif isinstance(item, (list, tuple)):
            for i, child in enumerate(item):
                walk(child, f"{key}.{i}" if key else str(i))
        else:
            flat[key] = redact(item)

    walk(value, prefix)
    return flat


def model_name(lm: Any) -> str:
    """An LM's model string (never its key, base URL or headers)."""
    return redact(getattr(lm, "model", None) or type(lm).__name__)


def _optimize_steps(plan: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    if plan.get("op") in ("optimize", "transform"):
        yield plan
    for child in (*plan.get("steps", ()), *plan.get("branches", ()), *plan.get("members", ())):
        yield from _optimize_steps(child)


def plan_kind(plan: Mapping[str, Any] | None) -> str:
    """``copro`` for a single optimizer; ``sequence(copro, bootstrap_fewshot)`` for a composite plan."""
    if plan is None:
        return "none (rejected proposal)"
    if plan.get("op") == "optimize":
        return str(plan.get("kind"))
    return f"{plan.get('op')}({', '.join(str(step.get('kind')) for step in _optimize_steps(plan))})"


def plan_prompts(plan: Mapping[str, Any] | None) -> dict[str, Any]:
    """The prompts of every optimizer step of a plan, by step (``copro`` or ``steps.0:copro``)."""
    if plan is None:
        return {}
    if plan.get("op") == "optimize":
        return {str(plan.get("kind")): plan["prompts"]} if plan.get("prompts") else {}
    found: dict[str, Any] = {}

    def walk(node: Mapping[str, Any], path: str) -> None:
        if node.get("op") == "optimize" and node.get("prompts"):
            found[f"{path}:{node.get('kind')}"] = node["prompts"]
        for field in ("steps", "branches", "members"):
            for i, child in enumerate(node.get(field, ())):
                walk(child, f"{path}.{field}.{i}" if path else f"{field}.{i}")

    walk(plan, "")
    return found


def candidate_params(record: Any) -> dict[str, str]:
    """Stage, lineage, optimizer kind, reuse and the plan's settings (prompts go to an artifact)."""
    params = {"stage": record.stage, "lineage": record.lineage, "optimizer": plan_kind(record.plan),
              "reused": str(record.reused)}
    if record.plan is not None:
        params.update(flatten(record.plan, "plan", skip=("prompts",)))
    return {key: redact(value) for key, value in params.items()}


def usage_metrics(usage: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """``{"program.calls": ..., "program.input_tokens": ...}`` for each level's `LevelUsage`."""
    metrics: dict[str, float] = {}
    for level, spent in usage.items():
        values = spent.to_dict() if hasattr(spent, "to_dict") else dict(spent)
        for name, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[f"{prefix}{level}.{name}"] = float(value)
    return metrics


def candidate_metrics(record: Any) -> dict[str, float]:
    """Validation score (when it has one), accepted (0/1), the best it was judged against, usage per level."""
    metrics = {"accepted": float(bool(record.accepted))}
    for name in ("score", "best_before", "calls_per_example"):
        value = getattr(record, name)
        if value is not None:
            metrics[name] = float(value)
    metrics.update(usage_metrics(record.usage, "usage."))
    return metrics


def running_best(records: Iterable[Any]) -> list[tuple[int, float]]:
    """``(index, best validation score so far)`` after each candidate that has a score so far."""
    best: float | None = None
    steps = []
    for record in records:
        if record.score is not None and (best is None or record.score > best):
            best = record.score
        if best is not None:
            steps.append((record.index, best))
    return steps


def run_params(*, budget: Mapping[str, Any], lms: Mapping[str, Any], inputs: Mapping[str, Mapping[str, Any]],
               settings: Mapping[str, Any]) -> dict[str, str]:
    """The parent run's parameters: the meta budget, each level's model string, the input optimizers
    (kind and hyperparameters; their prompts go to an artifact) and the compile's settings."""
    params = flatten(budget, "budget")
    params.update({f"model.{level}": model_name(lm) for level, lm in lms.items()})
    params["optimizers"] = ", ".join(f"{name}={spec.get('kind')}" for name, spec in inputs.items())
    for name, spec in inputs.items():
        params[f"input.{name}.kind"] = str(spec.get("kind"))
        params.update(flatten(spec.get("params", {}), f"input.{name}.params"))
    params.update({key: redact(value) for key, value in settings.items()})
    return params
