"""A timed-out call to an in-process llama.cpp engine stops generating (issue 30, 12): the next call
does not wait behind generations nobody reads. The model is faked; nothing here depends on timing: the
fakes hold each generation at a known token until the test has seen the caller give up."""

import threading

import dspy
import pytest

from dspy_meta.errors import LMCallTimeout
from dspy_meta.lm import BatchedLlamaEngine, LlamaCppEngine
from dspy_meta.lm.continuous_batch import ContinuousBatcher, Job
from dspy_meta.runtime.calls import call_within

from .test_batched_engine import FakeFormatter
from .test_batched_engine import FakeLlama as TokenizingLlama
from .test_continuous_batch import FakeBackend, reference

HOLD_AT = 3  # the fakes hold a generation at this token until released


def _until(condition) -> None:
    """Wait for a state the test's threads reach by themselves (a bound only against a hang)."""
    pause = threading.Event()
    for _ in range(60_000):
        if condition():
            return
        pause.wait(0.001)
    raise AssertionError("the state was never reached")


class GeneratingLlama:
    """Stands in for llama_cpp.Llama as its chat handlers use it: the chat completion goes through
    `create_completion`, which generates up to `max_tokens` tokens, checking `stopping_criteria` after each."""

    def __init__(self):
        self.holding, self.release, self.finished = threading.Event(), threading.Event(), threading.Event()
        self.generated: list[int] = []

    def create_chat_completion(self, messages, max_tokens, **kwargs):
        return self.create_completion(prompt=messages, max_tokens=max_tokens)

    def create_completion(self, prompt, max_tokens, stopping_criteria=None, **kwargs):
        n = 0
        try:
            for n in range(1, max_tokens + 1):
                if n == HOLD_AT and not self.generated:
                    self.holding.set()
                    assert self.release.wait(60)
                if stopping_criteria is not None and stopping_criteria([], []):
                    break
            return {"id": "x", "choices": [{"message": {"content": "[[ ## answer ## ]]\n42\n\n[[ ## completed ## ]]"},
                                            "finish_reason": "length"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": n}}
        finally:
            self.generated.append(n)
            self.finished.set()


def _ask(lm, ended: threading.Event | None = None):
    def ask():
        try:
            return lm("question")
        finally:
            if ended is not None:
                ended.set()
    return ask


def test_a_timed_out_call_stops_generating_and_a_call_given_up_while_waiting_never_starts():
    engine = LlamaCppEngine("/nonexistent.gguf", name="fake")
    engine._llama = llama = GeneratingLlama()
    lm = dspy.LM("local/fake", engine=engine, cache=False, max_tokens=100_000, num_retries=0)
    outcome = []
    first = threading.Thread(target=lambda: outcome.append(pytest.raises(LMCallTimeout, call_within, 0.05,
                                                                         _ask(lm))))
    first.start()
    first.join()  # the caller gave up (the generation is held at token HOLD_AT, so it cannot have finished)
    assert outcome and llama.holding.is_set() and not llama.finished.is_set()
    second_ended = threading.Event()
    with pytest.raises(LMCallTimeout):
        call_within(0.05, _ask(lm, second_ended))  # waits for the model behind the first, and is given up
    llama.release.set()
    assert llama.finished.wait(60) and second_ended.wait(60)
    assert llama.generated == [HOLD_AT]  # before: all 100000 tokens, then the second call's generation too
    assert len(lm("again")) == 1 and llama.generated == [HOLD_AT, 100_000]  # the engine goes on


class HeldBackend(FakeBackend):
    """Never ends an answer by itself; holds the decode step `hold_at` until released."""

    def __init__(self, kv_cells, hold_at):
        super().__init__(kv_cells)
        self.hold_at, self.holding, self.release = hold_at, threading.Event(), threading.Event()

    def is_eog(self, token):
        return False

    def decode(self, entries):
        if len(self.batches) == self.hold_at:
            self.holding.set()
            assert self.release.wait(60)
        return super().decode(entries)


def test_the_batcher_drops_a_given_up_job_at_the_next_step_and_serves_the_next():
    backend = HeldBackend(kv_cells=20_000, hold_at=HOLD_AT)
    batcher = ContinuousBatcher(backend, slots=1, kv_cells=20_000, n_batch=64)
    long = Job(prompt=[5, 6, 7], max_tokens=10_000, given_up=threading.Event())
    queued = Job(prompt=[8, 9], max_tokens=10, given_up=threading.Event())
    after = Job(prompt=[5, 6, 7, 1], max_tokens=4)
    errors = []

    def run(job):
        try:
            batcher.run(job)
        except LMCallTimeout as exc:
            errors.append((job, str(exc)))

    threads = [threading.Thread(target=run, args=(job,)) for job in (long, queued)]
    threads[0].start()
    assert backend.holding.wait(60)
    threads[1].start()
    _until(lambda: queued in batcher._queue)  # queued behind the long one (one slot)
    long.given_up.set()
    queued.given_up.set()
    backend.release.set()
    for thread in threads:
        thread.join(60)
    assert {id(job) for job, _ in errors} == {id(long), id(queued)}
    assert long.n_output < HOLD_AT + 2 and batcher.stats["given_up"] == 1  # before: 10000 tokens
    assert "before it started" in dict((id(j), m) for j, m in errors)[id(queued)]
    assert batcher.run(after).text == reference(after)[0] and backend.samplers_open == 0
    batcher.close()


def test_the_batched_engine_gives_its_jobs_the_callers_given_up_event(monkeypatch):
    base = LlamaCppEngine("/nonexistent.gguf", name="fake")
    base._llama = TokenizingLlama()
    engine = BatchedLlamaEngine("/nonexistent.gguf", base=base, slots=1, n_ctx=4096)
    backend = HeldBackend(kv_cells=8192, hold_at=HOLD_AT)
    engine._formatter, engine._batcher = FakeFormatter(), ContinuousBatcher(backend, slots=1, kv_cells=8192)
    lm = dspy.LM("local/fake", engine=engine, cache=False, max_tokens=3000, num_retries=0)
    with pytest.raises(LMCallTimeout):
        call_within(0.05, _ask(lm))
    assert backend.holding.is_set()
    backend.release.set()
    _until(lambda: not engine._batcher._active())
    assert engine.stats["given_up"] == 1 and engine.stats["generated_tokens"] < HOLD_AT + 2  # before: 3000
    engine._batcher.close()


@pytest.mark.local_lm
def test_the_real_model_stops_a_given_up_generation():
    """llama-cpp-python's chat handler really goes through the stopping criterion (the 0.5B model, 1 thread)."""
    import time

    from dspy_meta.lm import assemble_model

    engine = LlamaCppEngine(assemble_model("qwen2.5-coder-0.5b"), n_threads=1, n_ctx=4096)
    lm = dspy.LM("local/qwen", engine=engine, cache=False, max_tokens=3000, temperature=1.0, num_retries=0)
    engine.llama()  # loaded before the clock starts
    with pytest.raises(LMCallTimeout):
        call_within(1.0, _ask(lm))  # 3000 tokens take minutes on one thread
    stopped_by = time.monotonic() + 30
    while engine._lock.locked() and time.monotonic() < stopped_by:  # a free engine: the generation ended
        time.sleep(0.05)
    assert not engine._lock.locked()
    assert len(lm("Say hi.", max_tokens=4)) == 1  # and the engine answers the next call
    engine.close()
