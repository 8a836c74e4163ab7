"""A DSPy 3.4 engine around `llama_cpp.Llama`: a real local model, in process.

One `Llama` object is not thread-safe, so calls are serialized with a lock (the
model uses every core anyway; parallel callers gain nothing on CPU). The model is
loaded on the first call, not at construction.

A call its caller gave up on (the run's ``call_timeout``: `dspy_meta.runtime.calls.cancelled`) stops
generating at its next token, and one still waiting for the model when it was given up never starts:
otherwise the next call waits behind generations nobody reads, and on a slow model timeouts cascade.
"""

from __future__ import annotations

import logging
import os
import threading
import zlib
from typing import Any

from dspy.lm15 import Message, Response, TextPart, Usage

from dspy_meta.errors import LMCallTimeout
from dspy_meta.runtime.calls import cancelled

__all__ = ["LlamaCppEngine", "shared_engine", "request_messages", "asks_for_json", "SampleSeeds", "GIVEN_UP"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 512
_INSTALL_HINT = ('llama-cpp-python is not installed. Install the portable build with:\n'
                 '  CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" '
                 'python -m pip install --no-cache-dir llama-cpp-python==0.3.36')


def text_of(value: Any) -> str:
    """Text of a request's system part: a string, or a sequence of parts with `.text`."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return "".join(getattr(part, "text", "") or "" for part in value)


def asks_for_json(messages: list[dict]) -> bool:
    # DSPy's JSONAdapter sends no response_format to engines it cannot probe; it asks in the last message.
    last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    return "Respond with a JSON object" in last_user


def request_messages(request) -> list[dict]:
    """The chat messages of a `dspy.lm15.Request`, system part first."""
    messages = []
    system = text_of(request.system)
    if system:
        messages.append({"role": "system", "content": system})
    messages.extend({"role": m.role, "content": m.text or ""} for m in request.messages)
    return messages


GIVEN_UP = "the LM call was given up by its caller (call_timeout); its generation was stopped"


def _stop_when_given_up(llama, engine: LlamaCppEngine) -> None:
    """Make `llama`'s completions (what its chat handlers call) also stop when the engine's current call is
    given up: a stopping criterion, which llama-cpp-python checks after every sampled token."""
    original = getattr(llama, "create_completion", None)
    if original is None or getattr(llama, "_dspy_meta_stoppable", False):
        return

    def create_completion(*args, stopping_criteria=None, **kwargs):
        given_up = engine._given_up
        if given_up is not None:
            inner = stopping_criteria

            def stopping_criteria(input_ids, logits):
                return given_up.is_set() or (inner is not None and bool(inner(input_ids, logits)))
        return original(*args, stopping_criteria=stopping_criteria, **kwargs)

    llama.create_completion = create_completion  # on this object only: the class is llama-cpp-python's
    llama._dspy_meta_stoppable = True


class SampleSeeds:
    """A seed per sample. DSPy keeps rollout ids out of the request, and llama.cpp reseeds on every
    call, so repeated samples of one prompt at temperature > 0 would otherwise all be identical.
    The n-th sample of a prompt gets the n-th seed: reproducible for a given call sequence."""

    def __init__(self, seed: int):
        self.seed = seed
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def __call__(self, messages: list[dict], temperature: float) -> int:
        if not temperature:
            return self.seed
        text = repr(messages)
        with self._lock:
            count = self._counts.get(text, 0)
            self._counts[text] = count + 1
        return (self.seed + zlib.crc32(text.encode()) + 7919 * count) % (2**31)


class LlamaCppEngine:
    """Engine protocol (`complete(Request) -> Response`) over a GGUF file.

    Args:
        model_path: the GGUF file.
        n_ctx: context window in tokens.
        n_threads: CPU threads (default: all cores).
        default_max_tokens: cap when a request sets no ``max_tokens``.
        seed: sampling seed when a request sets none.
        name: model name reported in responses.
        flash_attn: llama.cpp's flash attention (default off, as in llama-cpp-python). At temperature 0 it
            changes some answers: switching it on changed 6 of 50 (benchmarks/local_engine.py --noise-floor).
    """

    def __init__(self, model_path: str | os.PathLike, *, n_ctx: int = 4096, n_threads: int | None = None,
                 default_max_tokens: int = DEFAULT_MAX_TOKENS, seed: int = 0, name: str | None = None,
                 flash_attn: bool = False):
        self.model_path = str(model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.default_max_tokens = default_max_tokens
        self.seed = seed
        self.name = name or os.path.basename(self.model_path)
        self.flash_attn = flash_attn
        self._llama = None
        self._lock = threading.Lock()
        self._seeds = SampleSeeds(seed)
        self._given_up: threading.Event | None = None  # the running call's (set under the lock)

    slots = 1  # requests decoded at once: callers size their thread count by it

    def llama(self):
        """The loaded `llama_cpp.Llama` (loaded on first use); the batched engine shares its weights."""
        with self._lock:
            return self._model()

    def _model(self):
        if self._llama is None:
            try:
                import llama_cpp
            except ImportError as exc:
                raise RuntimeError(_INSTALL_HINT) from exc
            logger.info("loading %s (n_ctx=%d)", self.model_path, self.n_ctx)
            self._llama = llama_cpp.Llama(model_path=self.model_path, n_ctx=self.n_ctx,
                                          n_threads=self.n_threads or os.cpu_count() or 1, seed=self.seed,
                                          flash_attn=self.flash_attn, verbose=False)
        return self._llama

    def complete(self, request) -> Response:
        messages = request_messages(request)
        config = request.config
        temperature = 0.0 if config.temperature is None else config.temperature
        kwargs: dict[str, Any] = {
            "max_tokens": config.max_tokens or self.default_max_tokens,
            # Deterministic by default: a local default LM should give the same answer twice.
            "temperature": temperature,
            "seed": config.seed if config.seed is not None else self._seeds(messages, temperature),
        }
        if config.top_p is not None:
            kwargs["top_p"] = config.top_p
        if config.stop:
            kwargs["stop"] = list(config.stop)
        if config.response_format is not None or asks_for_json(messages):
            kwargs["response_format"] = {"type": "json_object"}  # grammar-constrained JSON in llama.cpp
        given_up = cancelled()
        with self._lock:
            if given_up is not None and given_up.is_set():  # given up while it waited for the model
                raise LMCallTimeout(GIVEN_UP)
            llama = self._model()
            _stop_when_given_up(llama, self)
            self._given_up = given_up
            try:
                result = llama.create_chat_completion(messages=messages, **kwargs)
            finally:
                self._given_up = None
        if given_up is not None and given_up.is_set():
            raise LMCallTimeout(GIVEN_UP)  # cut short: nobody reads it
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        prompt_tokens, output_tokens = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
        return Response(
            id=result.get("id"), model=self.name,
            message=Message.assistant([TextPart(choice["message"].get("content") or "")]),
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            usage=Usage(input_tokens=prompt_tokens, output_tokens=output_tokens,
                        total_tokens=prompt_tokens + output_tokens),
        )

    def stream(self, request):
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        with self._lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None


_SHARED: dict[tuple, LlamaCppEngine] = {}
_SHARED_LOCK = threading.Lock()


def shared_engine(model_path: str | os.PathLike, **kwargs: Any) -> LlamaCppEngine:
    """One engine per (file, settings) per process, so levels that name the same model share its memory."""
    key = (str(model_path), tuple(sorted(kwargs.items())))
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = LlamaCppEngine(model_path, **kwargs)
        return _SHARED[key]
