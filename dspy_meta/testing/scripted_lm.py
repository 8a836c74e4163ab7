"""A deterministic, scripted language model for tests and demos.

`ScriptedEngine` is a DSPy 3.4 engine (``complete(Request) -> Response``): it reads
the adapter-formatted request back into a `ScriptedCall` (instructions, input
values, requested output fields), asks a *responder* for the output values, and
formats them the way the calling adapter expects (ChatAdapter markers or JSON).
Every call is recorded, so tests can check exactly what an optimizer sent.

Answers are a pure function of the request, so results do not depend on the
order in which threads call the engine.
"""

from __future__ import annotations

import json
import re
import textwrap
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import dspy
from dspy.lm15 import Message, Response, TextPart, Usage

from dspy_meta.lm.llama_engine import text_of

__all__ = ["ScriptedCall", "ScriptedEngine", "Rule", "scripted_lm", "MALFORMED", "FaultInjector"]

_OBJECTIVE_MARK = "your objective is:"
_FIELD_HEADER = re.compile(r"\[\[ ## (\w+) ## \]\]\n")
_OUTPUT_BLOCK = re.compile(r"Your output fields are:\n(.*?)(?:\nAll interactions|\Z)", re.S)
_INPUT_BLOCK = re.compile(r"Your input fields are:\n(.*?)\nYour output fields are:", re.S)
_NUMBERED_FIELD = re.compile(r"^\d+\. `(\w+)`", re.M)

#: A responder may return this to make the engine send text no adapter can parse.
MALFORMED = object()

Answer = Union[Mapping[str, Any], str, BaseException, object]
Responder = Callable[["ScriptedCall"], Answer]


@dataclass(frozen=True)
class ScriptedCall:
    """One request as the scripted LM saw it."""

    index: int
    system: str
    messages: tuple[tuple[str, str], ...]
    instructions: str
    input_fields: tuple[str, ...]
    output_fields: tuple[str, ...]
    inputs: Mapping[str, str]
    json_mode: bool
    temperature: float | None
    model: str
    max_tokens: int | None = None
    sample: int = 0  # its place among the samples of one request (a LiteLLM request's ``n``)
    samples: int = 1

    @property
    def prompt_text(self) -> str:
        """System and all messages as one string (for substring matching)."""
        return "\n".join([self.system, *(text for _, text in self.messages)])


@dataclass
class Rule:
    """Answer calls whose instructions (or whole prompt) contain `match`.

    `answer` is a mapping of output values, or a callable taking the `ScriptedCall`.
    Output fields the answer leaves out are filled with a fixed placeholder.
    """

    match: str | Callable[[ScriptedCall], bool]
    answer: Mapping[str, Any] | Callable[[ScriptedCall], Answer]
    in_prompt: bool = False  # match against the whole prompt, not only the instructions

    def matches(self, call: ScriptedCall) -> bool:
        if callable(self.match):
            return bool(self.match(call))
        haystack = call.prompt_text if self.in_prompt else call.instructions
        return self.match in haystack

    def respond(self, call: ScriptedCall) -> Answer:
        return self.answer(call) if callable(self.answer) else self.answer


def _parse_sections(text: str) -> dict[str, str]:
    """`[[ ## name ## ]]\\nvalue` blocks of one message, values stripped."""
    headers = list(_FIELD_HEADER.finditer(text))
    values = {}
    for i, header in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        value = text[header.end():end]
        value = value.split("\n\nRespond with", 1)[0]
        values[header.group(1)] = value.strip()
    return values


def _parse_request(index: int, request, model: str) -> ScriptedCall:
    system = text_of(request.system)
    messages = tuple((m.role, m.text or "") for m in request.messages)
    instructions = ""
    if _OBJECTIVE_MARK in system:
        instructions = textwrap.dedent(system.split(_OBJECTIVE_MARK, 1)[1]).strip()
    out_block = _OUTPUT_BLOCK.search(system)
    in_block = _INPUT_BLOCK.search(system)
    output_fields = tuple(_NUMBERED_FIELD.findall(out_block.group(1))) if out_block else ()
    input_fields = tuple(_NUMBERED_FIELD.findall(in_block.group(1))) if in_block else ()
    last_user = next((text for role, text in reversed(messages) if role == "user"), "")
    json_mode = request.config.response_format is not None or "Respond with a JSON object" in last_user
    return ScriptedCall(
        index=index,
        system=system,
        messages=messages,
        instructions=instructions,
        input_fields=input_fields,
        output_fields=output_fields,
        inputs=_parse_sections(last_user),
        json_mode=json_mode,
        temperature=request.config.temperature,
        model=model,
        max_tokens=request.config.max_tokens,
        sample=getattr(request.config, "sample", 0),
        samples=getattr(request.config, "samples", 1),
    )


def _placeholder(field_name: str) -> str:
    return "Step by step." if field_name == "reasoning" else f"scripted {field_name}"


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


class ScriptedEngine:
    """DSPy engine whose answers come from a responder function or a list of rules.

    Args:
        responder: a callable ``(ScriptedCall) -> answer`` or a sequence of `Rule`s (first
            match wins). An answer is a mapping of output values, a raw string sent as is,
            an exception instance to raise (fault injection), or `MALFORMED`.
        default: answer for calls no rule matches; by default every output field gets a
            placeholder value.
        model: the model name reported in responses.
    """

    def __init__(
        self,
        responder: Responder | Sequence[Rule],
        *,
        default: Mapping[str, Any] | Callable[[ScriptedCall], Answer] | None = None,
        model: str = "scripted",
        faults: Callable[[ScriptedCall], Answer | None] | None = None,
    ):
        self.responder = responder
        self.default = default
        self.model = model
        self.faults = faults
        self.calls: list[ScriptedCall] = []
        self._lock = threading.Lock()

    # -- the engine protocol -------------------------------------------------
    def complete(self, request) -> Response:
        with self._lock:
            call = _parse_request(len(self.calls), request, self.model)
            self.calls.append(call)
        fault = self.faults(call) if self.faults else None
        answer = fault if fault is not None else self._answer(call)
        if isinstance(answer, BaseException):
            raise answer
        text = self._format(call, answer)
        prompt_tokens = _estimate_tokens(call.prompt_text)
        output_tokens = _estimate_tokens(text)
        return Response(
            id=f"scripted-{call.index}",
            model=self.model,
            message=Message.assistant([TextPart(text)]),
            finish_reason="stop",
            usage=Usage(input_tokens=prompt_tokens, output_tokens=output_tokens,
                        total_tokens=prompt_tokens + output_tokens),
        )

    def stream(self, request):
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        pass

    # -- helpers -------------------------------------------------------------
    def as_lm(self, model: str | None = None, **kwargs) -> dspy.LM:
        """A `dspy.LM` backed by this engine (cache off unless asked for)."""
        kwargs.setdefault("cache", False)
        return dspy.LM(model or f"scripted/{self.model}", engine=self, **kwargs)

    def calls_matching(self, text: str) -> list[ScriptedCall]:
        """Recorded calls whose instructions contain `text`."""
        with self._lock:
            return [c for c in self.calls if text in c.instructions]

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()

    def _answer(self, call: ScriptedCall) -> Answer:
        if callable(self.responder):
            return self.responder(call)
        for rule in self.responder:
            if rule.matches(call):
                return rule.respond(call)
        if callable(self.default):
            return self.default(call)
        return self.default or {}

    @staticmethod
    def _format(call: ScriptedCall, answer: Answer) -> str:
        if answer is MALFORMED:
            return "I cannot follow the requested format, sorry."
        if isinstance(answer, str):
            return answer
        if not isinstance(answer, Mapping):
            raise TypeError(f"responder returned {type(answer).__name__}; expected a mapping, str or exception")
        values = {name: answer.get(name, _placeholder(name)) for name in call.output_fields} or dict(answer)
        if call.json_mode:
            return json.dumps(values)
        parts = [f"[[ ## {name} ## ]]\n{_as_text(value)}" for name, value in values.items()]
        return "\n\n".join([*parts, "[[ ## completed ## ]]"])


class FaultInjector:
    """Deterministic faults on about `rate` of all calls; a faulted request's next try succeeds.

    Whether the n-th sighting of a request text fails is decided by a hash of (text, n),
    never twice in a row for the same text. A fault is either a retryable rate-limit error
    (DSPy retries it at once: ``retry_after=0``) or, for ChatAdapter-format requests,
    unparseable text (DSPy then falls back to JSON, which is answered properly). So a
    faulty run must end with the same result as a clean one.
    """

    def __init__(self, rate: float = 0.2, *, malformed_share: float = 0.5, seed: int = 0):
        self.rate = rate
        self.malformed_share = malformed_share
        self.seed = seed
        self.seen: dict[str, tuple[int, bool]] = {}  # text -> (sightings, last one faulted)
        self.injected = {"transient": 0, "malformed": 0}
        self._lock = threading.Lock()

    def __call__(self, call: ScriptedCall):
        import hashlib

        from dspy.lm15 import RateLimitError

        text = call.prompt_text
        with self._lock:
            sightings, last_faulted = self.seen.get(text, (0, False))
            digest = int(hashlib.sha256(f"{self.seed}:{sightings}:{text}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            faulted = not last_faulted and digest < self.rate
            self.seen[text] = (sightings + 1, faulted)
            if not faulted:
                return None
            if not call.json_mode and digest < self.rate * self.malformed_share:
                self.injected["malformed"] += 1
                return MALFORMED
            self.injected["transient"] += 1
        error = RateLimitError("scripted rate limit")
        error.retry_after = 0
        return error


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def scripted_lm(responder: Responder | Sequence[Rule], **kwargs) -> tuple[dspy.LM, ScriptedEngine]:
    """Shortcut: a `dspy.LM` and its `ScriptedEngine` (kwargs go to the engine)."""
    engine = ScriptedEngine(responder, **kwargs)
    return engine.as_lm(), engine


def register_litellm_provider(provider: str, engine: ScriptedEngine) -> None:
    """Serve litellm model strings ``"<provider>/<name>"`` from `engine`, offline.

    Exercises DSPy's real litellm path (API keys, ``api_base``, retries) without a network:
    ``dspy.LM(f"{provider}/x", api_key=...)`` sends its requests to the scripted engine.
    """
    from types import SimpleNamespace

    import litellm
    from litellm import CustomLLM

    class _ScriptedProvider(CustomLLM):
        def completion(self, model, messages, *args, **kwargs):
            optional = kwargs.get("optional_params") or {}
            system = "\n".join(m["content"] for m in messages if m["role"] == "system")
            samples = int(optional.get("n") or 1)  # one request, `n` answers: one scripted call per sample
            texts = []
            for sample in range(samples):
                request = SimpleNamespace(
                    system=system,
                    messages=[SimpleNamespace(role=m["role"], text=m["content"])
                              for m in messages if m["role"] != "system"],
                    config=SimpleNamespace(response_format=optional.get("response_format"),
                                           temperature=optional.get("temperature"),
                                           max_tokens=optional.get("max_tokens"), sample=sample, samples=samples))
                texts.append(engine.complete(request).message.parts[0].text)
            response = litellm.completion(model="gpt-3.5-turbo", messages=messages, mock_response=texts[0])
            if samples > 1:
                response.choices = [litellm.Choices(index=i, finish_reason="stop",
                                                    message=litellm.Message(role="assistant", content=text))
                                    for i, text in enumerate(texts)]
            return response

    others = [p for p in (litellm.custom_provider_map or []) if p.get("provider") != provider]
    litellm.custom_provider_map = [*others, {"provider": provider, "custom_handler": _ScriptedProvider()}]


def with_latency(responder: Callable[[ScriptedCall], Any], latency_s: float) -> Callable[[ScriptedCall], Any]:
    """`responder` answering after `latency_s` seconds, as a remote LM would (for timing benchmarks)."""
    def respond(call: ScriptedCall) -> Any:
        if latency_s:
            time.sleep(latency_s)
        return responder(call)
    return respond
