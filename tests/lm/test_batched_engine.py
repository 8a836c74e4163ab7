"""The batched engine's request handling, with the model and the batcher faked (no llama.cpp needed)."""

import threading
import time

import dspy
import pytest

from dspy_meta.lm import BatchedLlamaEngine, LlamaCppEngine, engine_slots, make_lm, resolve
from dspy_meta.lm import batched_engine

ANSWER = b"[[ ## answer ## ]]\n42\n\n[[ ## completed ## ]]"


class FakeLlama:
    def tokenize(self, text, add_bos, special):
        assert special and not add_bos
        return list(range(len(text.split())))


class FakeFormatter:
    def __call__(self, *, messages):
        from types import SimpleNamespace

        prompt = " ".join(f"<{m['role']}> {m['content']}" for m in messages) + " <assistant>"
        return SimpleNamespace(prompt=prompt, stop=["<|im_end|>"], added_special=True)


class FakeBatcher:
    """Records the jobs; answers in ChatAdapter format (JSON when a grammar is set)."""

    def __init__(self):
        self.jobs, self.active, self.max_active = [], 0, 0
        self.lock = threading.Lock()
        self.stats = {}

    def run(self, job):
        with self.lock:
            self.jobs.append(job)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        time.sleep(0.01)
        job.text = b'{"answer": "42"}' if job.grammar else ANSWER
        job.n_output, job.finish_reason = 5, "stop"
        with self.lock:
            self.active -= 1
        return job


@pytest.fixture
def engine(monkeypatch):
    monkeypatch.setattr(batched_engine, "_json_grammar", lambda: "JSON-GRAMMAR")
    base = LlamaCppEngine("/nonexistent.gguf", name="fake")
    base._llama = FakeLlama()
    engine = BatchedLlamaEngine("/nonexistent.gguf", base=base, slots=4, n_ctx=4096)
    engine._formatter, engine._batcher = FakeFormatter(), FakeBatcher()
    return engine


def test_settings_reach_the_job_and_usage_comes_back(engine):
    lm = dspy.LM("local/fake", engine=engine, cache=False, max_tokens=64, temperature=0.3, top_p=0.8,
                 stop=["\n\n\n"])
    with dspy.context(lm=lm):
        assert dspy.Predict("question -> answer")(question="x").answer == "42"
    job = engine._batcher.jobs[0]
    assert job.max_tokens == 64 and job.temperature == 0.3 and job.top_p == 0.8
    assert job.stops == (b"\n\n\n", b"<|im_end|>") and job.grammar is None
    usage = lm.history[-1]["usage"]
    assert usage["prompt_tokens"] == len(job.prompt) and usage["completion_tokens"] == 5


def test_defaults_are_deterministic_and_bounded(engine):
    with dspy.context(lm=dspy.LM("local/fake", engine=engine, cache=False)):
        dspy.Predict("question -> answer")(question="x")
    job = engine._batcher.jobs[0]
    assert job.temperature == 0.0 and job.seed == 0 and job.max_tokens == 512 and job.top_p == 0.95


def test_json_adapter_gets_the_json_grammar(engine):
    with dspy.context(lm=dspy.LM("local/fake", engine=engine, cache=False), adapter=dspy.JSONAdapter()):
        assert dspy.Predict("question -> answer")(question="x").answer == "42"
    assert engine._batcher.jobs[-1].grammar == "JSON-GRAMMAR"


def test_window_truncates_max_tokens_and_rejects_long_prompts(engine):
    engine.n_ctx = 400
    with dspy.context(lm=dspy.LM("local/fake", engine=engine, cache=False, max_tokens=1000)):
        dspy.Predict("question -> answer")(question="x")
        job = engine._batcher.jobs[0]
        assert job.max_tokens == 400 - len(job.prompt)
        with pytest.raises(Exception, match="exceed context window"):
            dspy.Predict("question -> answer")(question="word " * 500)


def test_samples_get_the_sequential_engines_seeds(engine):
    sequential = LlamaCppEngine("/nonexistent.gguf", name="fake")
    messages = [{"role": "user", "content": "same prompt"}]
    batched_seeds = [engine._seeds(messages, 1.0) for _ in range(3)]
    assert batched_seeds == [sequential._seeds(messages, 1.0) for _ in range(3)]
    assert len(set(batched_seeds)) == 3 and engine._seeds(messages, 0.0) == 0


def test_concurrent_calls_are_not_serialized(engine):
    program = dspy.Predict("question -> answer")
    with dspy.context(lm=dspy.LM("local/fake", engine=engine, cache=False)):
        result = dspy.Evaluate(devset=[dspy.Example(question=str(i), answer="42").with_inputs("question")
                                       for i in range(12)],
                               metric=lambda e, p, t=None: p.answer == e.answer, num_threads=6,
                               display_progress=False)(program)
    assert result.score == 100.0
    assert engine._batcher.max_active > 1 and len(engine._batcher.jobs) == 12


def test_models_without_a_gguf_template_fall_back_to_the_sequential_engine(engine, monkeypatch):
    engine._batcher = None
    monkeypatch.setattr(BatchedLlamaEngine, "_template_formatter", staticmethod(lambda llama: None))
    calls = []
    monkeypatch.setattr(engine.base, "complete", lambda request: calls.append(request) or "sequential answer")
    assert engine.complete(object()) == "sequential answer" and len(calls) == 1


def test_make_lm_chooses_the_engine_mode(monkeypatch, tmp_path):
    monkeypatch.setattr(resolve, "assemble_model", lambda name, cache_dir=None: tmp_path / f"{name}.gguf")
    monkeypatch.delenv("DSPY_META_ENGINE", raising=False)
    batched = make_lm("qwen2.5-coder-0.5b", engine_mode="batched", slots=6, n_ctx=2048)
    sequential = make_lm("local/qwen2.5-coder-0.5b", n_ctx=2048)  # the default
    assert isinstance(batched.engine, BatchedLlamaEngine) and type(sequential.engine) is LlamaCppEngine
    assert batched.engine.base is sequential.engine  # one model in memory per file and settings
    assert engine_slots(batched) == 6 and engine_slots(sequential) == 1 and engine_slots(dspy.LM("openai/x")) == 1
    assert make_lm("qwen2.5-coder-0.5b", engine_mode="batched", slots=6, n_ctx=2048).engine is batched.engine
    assert batched.engine.flash_attn is True  # measured faster; a setting turns it off
    plain = make_lm("qwen2.5-coder-0.5b", engine_mode="batched", slots=6, n_ctx=2048, flash_attn=False).engine
    assert plain.flash_attn is False and plain is not batched.engine and plain.base is batched.engine.base
    # Sequential: off by default (today's answers); on when asked, in an engine of its own.
    assert sequential.engine.flash_attn is False
    flash = make_lm("qwen2.5-coder-0.5b", engine_mode="sequential", n_ctx=2048, flash_attn=True).engine
    assert type(flash) is LlamaCppEngine and flash.flash_attn is True and flash is not sequential.engine
    monkeypatch.setenv("DSPY_META_ENGINE", "batched")
    assert isinstance(make_lm("qwen2.5-coder-0.5b", slots=6, n_ctx=2048).engine, BatchedLlamaEngine)
    with pytest.raises(ValueError, match="engine_mode"):
        make_lm("qwen2.5-coder-0.5b", engine_mode="turbo")
    monkeypatch.setenv("DSPY_META_ENGINE", "turbo")
    with pytest.raises(ValueError, match="DSPY_META_ENGINE"):
        make_lm("qwen2.5-coder-0.5b")
