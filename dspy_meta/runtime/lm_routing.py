"""How DSPy routes an LM's requests, read from the LM without calling it."""

from __future__ import annotations

from typing import Any

__all__ = ["samples_in_one_request"]


def samples_in_one_request(lm: Any) -> bool:
    """Whether `lm` answers a call's ``n`` samples in one request, prompt sent (and paid) once.

    In DSPy 3.4 only the LiteLLM route sends ``n`` to the provider; canonical engines (DSPy's native
    providers, custom engines such as the local ones and the scripted test LMs) answer ``n`` by that many
    requests one after another, where ``n`` single requests sent in parallel are as cheap and faster.
    Unknown LMs, or a DSPy whose routing this cannot read, count as one request per sample.
    """
    spec = getattr(lm, "_engine_spec", None)
    if not isinstance(spec, str):
        return False
    if spec == "litellm":
        return True
    try:
        from dspy.clients.backend_selection import select_backend

        return not select_backend(lm).native
    except Exception:  # a routing error here is not ours to raise: the call itself will report it
        return False
