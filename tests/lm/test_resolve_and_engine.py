import threading

import dspy
import pytest

from dspy_meta.lm import LlamaCppEngine, make_lm


class FakeLlama:
    """Stands in for llama_cpp.Llama: records the kwargs, answers in ChatAdapter format."""

    def __init__(self):
        self.requests = []
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()

    def create_chat_completion(self, messages, **kwargs):
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        self.requests.append((messages, kwargs))
        content = '{"answer": "42"}' if "response_format" in kwargs else "[[ ## answer ## ]]\n42\n\n[[ ## completed ## ]]"
        with self.lock:
            self.active -= 1
        return {"id": "x", "choices": [{"message": {"content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 5}}


@pytest.fixture
def engine():
    engine = LlamaCppEngine("/nonexistent.gguf", name="fake")
    engine._llama = FakeLlama()
    return engine


def test_engine_honours_settings_and_reports_usage(engine):
    lm = dspy.LM("local/fake", engine=engine, cache=False, max_tokens=64, temperature=0.3, stop=["\n\n\n"])
    with dspy.context(lm=lm):
        assert dspy.Predict("question -> answer")(question="x").answer == "42"
    messages, kwargs = engine._llama.requests[0]
    assert messages[0]["role"] == "system" and messages[-1]["role"] == "user"
    assert kwargs["max_tokens"] == 64 and kwargs["temperature"] == 0.3 and kwargs["stop"] == ["\n\n\n"]
    assert lm.history[-1]["usage"]["prompt_tokens"] == 11 and lm.history[-1]["usage"]["completion_tokens"] == 5


def test_engine_defaults_are_deterministic_and_bounded(engine):
    with dspy.context(lm=dspy.LM("local/fake", engine=engine, cache=False)):
        dspy.Predict("question -> answer")(question="x")
    _, kwargs = engine._llama.requests[0]
    assert kwargs["temperature"] == 0.0 and kwargs["seed"] == 0 and kwargs["max_tokens"] == 512


def test_json_adapter_turns_on_json_mode_when_asked(engine):
    lm = dspy.LM("local/fake", engine=engine, cache=False)
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        assert dspy.Predict("question -> answer")(question="x").answer == "42"
    assert engine._llama.requests[-1][1]["response_format"] == {"type": "json_object"}


def test_calls_are_serialized(engine):
    lm = dspy.LM("local/fake", engine=engine, cache=False)
    program = dspy.Predict("question -> answer")
    with dspy.context(lm=lm):
        result = dspy.Evaluate(devset=[dspy.Example(question=str(i), answer="42").with_inputs("question")
                                       for i in range(12)],
                               metric=lambda e, p, t=None: p.answer == e.answer, num_threads=6,
                               display_progress=False)(program)
    assert result.score == 100.0
    assert engine._llama.max_active == 1 and len(engine._llama.requests) == 12


def test_flash_attention_reaches_the_model(monkeypatch):
    import llama_cpp

    built = []
    monkeypatch.setattr(llama_cpp, "Llama", lambda **kwargs: built.append(kwargs) or FakeLlama())
    LlamaCppEngine("/nonexistent.gguf", flash_attn=True).llama()
    LlamaCppEngine("/nonexistent.gguf").llama()
    assert [kwargs["flash_attn"] for kwargs in built] == [True, False]


def test_make_lm_routes_names():
    lm = make_lm("openai/gpt-4o-mini", api_base="http://127.0.0.1:9/v1", api_key="k")
    assert lm.model == "openai/gpt-4o-mini" and lm.engine == "litellm"
    assert make_lm("anthropic/claude-3-haiku").model == "anthropic/claude-3-haiku"
    given = dspy.LM("openai/x")
    assert make_lm(given) is given
    with pytest.raises(ValueError, match="unknown LM 'gpt4'"):
        make_lm("gpt4")
    with pytest.raises(ValueError, match="non-empty string"):
        make_lm("")


def test_a_made_up_provider_fails_by_name_before_any_call():
    """Issue 30: 'not-a-provider/model' passed the name check and failed only after 34 LM calls."""
    with pytest.raises(ValueError, match="unknown LM 'not-a-provider/model': no provider 'not-a-provider'"):
        make_lm("not-a-provider/model")
    for name in ("openai/gpt-4o-mini", "ollama_chat/llama3", "hosted_vllm/org/model"):
        assert make_lm(name).model == name  # providers litellm knows
    assert make_lm("my-gateway/model", custom_llm_provider="openai").model == "my-gateway/model"


def test_providers_registered_at_run_time_are_known():
    import uuid

    from dspy_meta.testing import ScriptedEngine
    from dspy_meta.testing.scripted_lm import register_litellm_provider

    provider = f"scripted-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ValueError, match="no provider"):
        make_lm(f"{provider}/model")
    register_litellm_provider(provider, ScriptedEngine(lambda call: {}))
    assert make_lm(f"{provider}/model").model == f"{provider}/model"


def test_a_made_up_provider_stops_compile_before_any_call():
    from dspy_meta import MetaTeleprompter
    from dspy_meta.errors import ConfigError
    from dspy_meta.testing import ScriptedEngine
    from dspy_meta.testing.toy_task import Shout, shout_examples, shout_metric

    engine = ScriptedEngine(lambda call: {})
    with pytest.raises(ConfigError, match="task_model: unknown LM 'not-a-provider/model'"):
        MetaTeleprompter(shout_metric, prompt_model=engine.as_lm(), task_model="not-a-provider/model",
                         display_progress=False).compile(Shout(), trainset=shout_examples(4),
                                                         valset=shout_examples(3, offset=10))
    assert engine.calls == []


def test_repeated_samples_at_temperature_get_different_seeds(engine):
    lm = dspy.LM("local/fake", engine=engine, cache=False)
    with dspy.context(lm=lm):
        dspy.Predict("question -> answer")(question="x")  # temperature 0: the engine's fixed seed
        for rollout in range(3):
            with dspy.context(lm=lm.copy(rollout_id=rollout, temperature=1.0)):
                dspy.Predict("question -> answer")(question="x")
    seeds = [kwargs["seed"] for _, kwargs in engine._llama.requests]
    assert seeds[0] == 0 and len(set(seeds[1:])) == 3
