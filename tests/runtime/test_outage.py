"""A dead LM is an outage: every call failing the same way ends the run early (issue 30, 9)."""

import threading
import time

import dspy
import pytest

from dspy_meta.errors import RunFailed
from dspy_meta.runtime.outage import FIRST_CALLS, IN_A_ROW, OutageWatch
from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.toy_task import shout_examples

from ..teleprompters.conftest import compile_toy, toy_engines

DATA = shout_examples(8), shout_examples(6, offset=8)


@pytest.mark.parametrize("threads", [None, 4])
def test_an_engine_error_dspy_does_not_classify_on_every_call_fails_the_run_at_once(threads):
    engines = toy_engines()
    engines[0] = ScriptedEngine(lambda call: RuntimeError("the engine crashed"))
    with pytest.raises(RunFailed, match=r"the program LM failed the same way on each of its first \d+ "
                                        r"calls \(none answered\): .*the engine crashed"):
        compile_toy(engines, DATA, num_threads=threads)
    # before: all ~80 program calls of the run were made, each example scored 0, and compile returned the student
    assert len(engines[0].calls) <= FIRST_CALLS + (threads or dspy.settings.num_threads)  # the calls in flight


def test_a_server_that_never_answers_fails_the_run_after_a_few_timeouts():
    release = threading.Event()
    engines = toy_engines()
    engines[0] = ScriptedEngine(lambda call: release.wait(600) and {})
    started = time.monotonic()
    try:
        with pytest.raises(RunFailed, match=r"the program LM failed the same way .*LMCallTimeout"):
            compile_toy(engines, DATA, call_timeout=0.2)
    finally:
        release.set()
    assert len(engines[0].calls) <= FIRST_CALLS + dspy.settings.num_threads and time.monotonic() - started < 60


def test_the_watch_counts_failures_of_one_kind_in_a_row_and_any_answer_restarts_it():
    watch = OutageWatch(first_calls=3, in_a_row=5)
    assert watch.failure(RuntimeError("a")) is None and watch.failure(ValueError("b")) is None  # another kind
    assert watch.failure(ValueError("b")) is None
    assert "first 3 calls" in watch.failure(ValueError("c"))
    watch.answer()
    for _ in range(4):
        assert watch.failure(TimeoutError()) is None  # after an answer it takes longer
    assert "5 calls in a row" in watch.failure(TimeoutError())
    assert OutageWatch().first_calls == FIRST_CALLS and OutageWatch().in_a_row == IN_A_ROW


def test_requests_that_keep_failing_beside_answers_from_the_memo_are_no_outage():
    failing = {e.word for e in DATA[1][:2]}  # two words fail on every try, the rest is answered

    def program(call):
        if call.inputs.get("word") in failing:
            return RuntimeError("cannot answer this one")
        from dspy_meta.testing.toy_task import shout_program_responder
        return shout_program_responder(call, demos_help=False)

    results = compile_toy(toy_engines(program), DATA).meta_results_
    assert results.baseline_score is not None and results.candidates


def test_the_thresholds_are_read_when_a_run_starts(monkeypatch):
    from dspy_meta.runtime import outage

    monkeypatch.setattr(outage, "FIRST_CALLS", 1000)  # how a test that wants every call to fail keeps the run going
    assert OutageWatch().first_calls == 1000
