"""Checks and small helpers of `MetaSearch.compile` (kept apart so the base class stays short)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import dspy

from dspy_meta.errors import ConfigError
from dspy_meta.lm import engine_slots
from dspy_meta.runtime.checks import forward_inputs, split_trainset
from dspy_meta.runtime.usage import UsageLimits

__all__ = ["threads_to_fill", "check_seed", "price_known", "check_prices", "wait_until", "validate_data"]


def threads_to_fill(program_lm) -> int | None:
    """The thread budget when none is set: a batched local program LM's slot count (one request per slot
    keeps its batch full), else None (DSPy's setting; the search runs sequentially)."""
    slots = engine_slots(program_lm)
    return slots if slots > 1 else None


def check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TypeError(f"seed must be a non-negative integer (as MIPROv2's), got {seed!r}")


def price_known(lm) -> bool:
    """Whether the LM's calls come with a cost: a provider model with a known price (not a custom engine)."""
    if not isinstance(getattr(lm, "engine", "auto"), str):
        return False
    model = str(getattr(lm, "model", ""))
    provider, _, name = model.partition("/")
    try:
        from dspy.clients.model_metadata import model_info

        if name and "input_cost_per_token" in (model_info(provider, name) or {}):
            return True
    except Exception:  # noqa: BLE001 -- no metadata: the price is unknown
        pass
    import litellm

    return any("input_cost_per_token" in (litellm.model_cost.get(m) or {}) for m in (model, name) if m)


def check_prices(limits: UsageLimits | None, lms: dict) -> None:
    if limits is None or limits.total_cost is None:
        return
    unpriced = [f"{level} LM {getattr(lm, 'model', type(lm).__name__)!r}" for level, lm in lms.items()
                if not price_known(lm)]
    if unpriced:
        raise ConfigError(f"usage limit 'total_cost' cannot be enforced: no price is known for the "
                          f"{', '.join(unpriced)}; limit calls or tokens instead")


def wait_until(done: Callable[[], bool], seconds: float) -> None:
    """Poll `done` every 50 ms until it holds or `seconds` have passed."""
    pause = threading.Event()
    for _ in range(int(seconds * 20)):
        if done():
            return
        pause.wait(0.05)


def validate_data(metric, max_metric_failures, student, trainset, valset) -> tuple[list, list]:
    """The checked trainset and valset (a valset split off the trainset when none is given)."""
    if not callable(metric):
        raise TypeError(f"metric must be callable, got {type(metric).__name__}")
    if not isinstance(student, dspy.Module):
        raise TypeError(f"student must be a dspy.Module, got {type(student).__name__}")
    if not student.predictors():
        raise ValueError("student has no predictors to optimize")
    if not isinstance(max_metric_failures, int) or max_metric_failures < 0:
        raise ValueError(f"max_metric_failures must be a non-negative integer, got {max_metric_failures!r}")
    trainset = list(trainset or [])
    if valset is None:
        trainset, valset = split_trainset(trainset)
    valset = list(valset)
    if not trainset:  # as MIPROv2: one training example is enough
        raise ValueError("trainset must not be empty (with no valset, it needs at least 2 examples)")
    if not valset:
        raise ValueError("valset must not be empty")
    wanted = forward_inputs(student)
    for name, data in (("trainset", trainset), ("valset", valset)):
        for i, example in enumerate(data):
            if not isinstance(example, dspy.Example):
                raise TypeError(f"{name}[{i}] must be a dspy.Example, got {type(example).__name__}")
            if example._input_keys is None:
                raise ValueError(f"{name}[{i}] has no inputs marked; call .with_inputs(...) on every example")
            missing = wanted - set(example.inputs().keys())
            if missing:
                raise ValueError(f"{name}[{i}] lacks the program's input(s) {sorted(missing)}")
    labels = set(valset[0].labels().keys())  # a metric may need none (DSPy's games tutorial), but then none
    for i, example in enumerate(valset):
        missing = labels - {k for k, v in example.labels().items() if v is not None}
        if missing:
            raise ValueError(f"valset[{i}] lacks the label(s) {sorted(missing)} that valset[0] has")
    return trainset, valset
