"""Test kit: a deterministic scripted LM (no network, no API key)."""

from dspy_meta.testing.scripted_lm import (
    MALFORMED, FaultInjector, Rule, ScriptedCall, ScriptedEngine, scripted_lm,
    with_latency,
)

__all__ = ["MALFORMED", "FaultInjector", "Rule", "ScriptedCall", "ScriptedEngine", "scripted_lm", "with_latency"]
