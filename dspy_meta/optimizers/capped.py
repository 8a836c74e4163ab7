"""Predictors whose answers are short by nature ask for no more tokens than they need.

A description or a summary fits in a few sentences, yet a small optimizer LM given the LM's whole
`max_tokens` writes on until it is cut off (measured on the comparisons: ~350 output tokens per MIPROv2
proposer call with a 350-token limit, about 50 s each on a 1.5B local model). `CappedPredict` lowers
`max_tokens` for its own calls to its cap, never raising the LM's own limit. Only predictors with a single
output field are capped: a cut answer still parses.
"""

from __future__ import annotations

import dspy

__all__ = ["CappedPredict", "DESCRIPTION_TOKENS"]

#: Output tokens for a description, observations or a summary (a paragraph of 3-6 sentences).
DESCRIPTION_TOKENS = 160


class CappedPredict(dspy.Predict):
    """`dspy.Predict` that asks for at most `max_answer_tokens` output tokens (or the LM's own lower limit)."""

    def __init__(self, signature, max_answer_tokens: int, **config):
        super().__init__(signature, **config)
        if len(self.signature.output_fields) != 1:
            raise ValueError("only a single-output signature may be capped (a cut answer must still parse)")
        self.max_answer_tokens = max_answer_tokens

    def forward(self, **kwargs):
        lm = kwargs.get("lm") or self.lm or dspy.settings.lm
        own = (getattr(lm, "kwargs", None) or {}).get("max_tokens")
        config = dict(kwargs.pop("config", None) or {})
        asked = config.get("max_tokens", self.config.get("max_tokens", own))
        config["max_tokens"] = min(self.max_answer_tokens, asked) if asked else self.max_answer_tokens
        return super().forward(config=config, **kwargs)
