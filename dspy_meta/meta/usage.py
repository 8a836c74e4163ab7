"""LM usage per level (program, optimizer, meta): calls, tokens and cost, as in the paper's Table 3."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

import dspy

__all__ = ["LevelUsage", "UsageMeter", "LEVELS"]

LEVELS = ("program", "optimizer", "meta")


@dataclass
class LevelUsage:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None  # None when the provider reports no price (local and scripted LMs)

    def to_dict(self) -> dict:
        return asdict(self)

    def minus(self, other: LevelUsage) -> LevelUsage:
        cost = None if self.cost is None else self.cost - (other.cost or 0.0)
        return LevelUsage(self.calls - other.calls, self.input_tokens - other.input_tokens,
                          self.output_tokens - other.output_tokens, cost)


class UsageMeter:
    """Counts the calls an LM makes; `attach` returns a metered copy of an LM.

    The copy reports each finished call (cache hits excluded) as DSPy writes it to the
    LM's history, so copies made from it later (MIPROv2's rollout copies) are metered
    too. The caller's LM object is not changed. DSPy writes no history under
    ``disable_history=True``; the meta-optimizers turn history back on for their run.
    """

    def __init__(self, level: str):
        self.level = level
        self._usage = LevelUsage()
        self._lock = threading.Lock()

    def attach(self, lm: dspy.BaseLM) -> dspy.BaseLM:
        metered = lm.copy()
        write_history = metered.update_history

        def update_history(entry):
            self.record(entry)
            write_history(entry)

        # An instance attribute on our own copy: DSPy's classes and the user's LM stay as they are.
        metered.update_history = update_history
        return metered

    def record(self, entry: dict) -> None:
        if getattr(entry.get("response"), "cache_hit", False):
            return
        usage = entry.get("usage") or {}
        cost = entry.get("cost")
        with self._lock:
            self._usage.calls += 1
            self._usage.input_tokens += int(usage.get("prompt_tokens") or 0)
            self._usage.output_tokens += int(usage.get("completion_tokens") or 0)
            if cost is not None:
                self._usage.cost = (self._usage.cost or 0.0) + float(cost)

    def snapshot(self) -> LevelUsage:
        with self._lock:
            return LevelUsage(**asdict(self._usage))
