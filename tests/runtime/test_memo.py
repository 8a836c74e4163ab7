import json
import threading

import dspy
import pytest

from dspy_meta.runtime.memo import CallMemo, NotPlain, copy_answer, freeze
from dspy_meta.runtime.usage import UsageMeter
from dspy_meta.testing import ScriptedEngine


def _engine():
    return ScriptedEngine(lambda call: {"answer": str(call.inputs.get("q", "")).upper()})


def test_freeze_is_type_exact_and_lenient_only_when_asked():
    values = [1, 1.0, True, "1", [1], (1,), {"a": 1}, {"a": 1.0}, None, 0.0, -0.0, {"a": 1, "b": 2}, {"b": 2, "a": 1}]
    assert len({freeze(v) for v in values}) == len(values)  # key order is kept: DSPy renders dicts in order
    assert freeze({"b": [1, "x"], "a": 2.5}) == freeze({"b": [1, "x"], "a": 2.5})
    with pytest.raises(NotPlain):
        freeze({"a": object()})
    with pytest.raises(NotPlain):
        freeze({1: "non-string key"})
    assert freeze({"format": dict}, lenient=True) == freeze({"format": dict}, lenient=True)


def test_copies_of_answers_do_not_share_mutable_parts():
    answer = [{"text": "a", "logprobs": [0.1]}, "b"]
    copied = copy_answer(answer)
    copied[0]["logprobs"].append(0.2)
    copied[0]["text"] = "changed"
    assert answer == [{"text": "a", "logprobs": [0.1]}, "b"]


def test_concurrent_askers_wait_for_one_call():
    memo, started, release, calls = CallMemo(), threading.Event(), threading.Event(), []

    def slow():
        calls.append(1)
        started.set()
        release.wait(5)
        return ["answer"]

    results = []
    first = threading.Thread(target=lambda: results.append(memo.get_or_call("k", slow)))
    first.start()
    started.wait(5)
    others = [threading.Thread(target=lambda: results.append(memo.get_or_call("k", slow))) for _ in range(3)]
    for thread in others:
        thread.start()
    release.set()
    for thread in (first, *others):
        thread.join(5)
    assert results == [["answer"]] * 4 and len(calls) == 1 and memo.hits == 3


def test_a_failed_call_is_not_remembered():
    memo = CallMemo()

    def failing():
        raise RuntimeError("provider down")

    with pytest.raises(RuntimeError):
        memo.get_or_call("k", failing)
    assert memo.get_or_call("k", lambda: ["ok"]) == ["ok"] and memo.hits == 0
    assert memo.get_or_call("k", failing) == ["ok"]


def test_saved_answers_serve_a_resumed_run_with_new_lm_objects():
    engine = _engine()
    memo = CallMemo()
    with dspy.context(lm=UsageMeter("program").attach(engine.as_lm(), memo)):
        dspy.Predict("q -> answer")(q="x")
    saved = json.loads(json.dumps(memo.drain()))
    assert len(saved) == 1 and memo.drain() == []

    restarted, fresh_engine = CallMemo(), _engine()  # a new process: new engine and LM objects
    restarted.load(saved)
    with dspy.context(lm=UsageMeter("program").attach(fresh_engine.as_lm(), restarted)):
        assert dspy.Predict("q -> answer")(q="x").answer == "X"
        dspy.Predict("q -> answer")(q="y")
    assert len(fresh_engine.calls) == 1 and restarted.hits == 1


class _ProviderLM:
    """What the memo reads of a provider LM: model and settings, among them credentials."""

    def __init__(self, **kwargs):
        self.model = "openai/some-model"
        self.kwargs = {"temperature": 0.0, **kwargs}


def test_credentials_are_not_part_of_keys_nor_of_saved_answers():
    memo = CallMemo()
    request = ((), {"messages": [{"role": "user", "content": "hi"}]})
    first = memo.key(_ProviderLM(api_key="sk-very-secret-1", auth_token="tok-secret-1"), *request)
    second = memo.key(_ProviderLM(api_key="sk-other-secret-2", auth_token="tok-secret-2"), *request)
    assert first == second and "secret" not in repr(first)
    memo.get_or_call(first, lambda: ["hello"])
    saved = json.dumps(memo.drain())
    assert "secret" not in saved and "hello" in saved
    assert memo.key(_ProviderLM(api_base="https://user:pw@host/v1"), *request) != first  # another server


def test_a_setting_changed_in_place_changes_the_key():
    engine = _engine()
    memo = CallMemo()
    lm = UsageMeter("program").attach(engine.as_lm(), memo)
    with dspy.context(lm=lm):
        dspy.Predict("q -> answer")(q="x")
        lm.kwargs["temperature"] = 0.5
        dspy.Predict("q -> answer")(q="x")
        lm.kwargs["temperature"] = 0.5  # the same value again: the same request
        dspy.Predict("q -> answer")(q="x")
    assert len(engine.calls) == 2


def test_saved_keys_depend_on_values_not_on_object_identity():
    memo = CallMemo()
    shared = "hello " * 50
    same_object = ((), {"messages": [{"role": "user", "content": shared}, {"role": "user", "content": shared}]})
    equal_copies = ((), {"messages": [{"role": "user", "content": "".join(["hello "] * 50)},
                                      {"role": "user", "content": "".join(["hello "] * 50)}]})
    lm = _ProviderLM()
    first, second = memo.key(lm, *same_object), memo.key(lm, *equal_copies)
    assert first == second and memo.stable_key(first) == memo.stable_key(second)


def test_another_engine_on_the_same_lm_object_is_another_lm():
    memo = CallMemo()
    lm = _ProviderLM()
    request = ((), {"messages": [{"role": "user", "content": "hi"}]})
    lm.engine = object()
    first = memo.key(lm, *request)
    lm.engine = object()  # swapped in place: the cached identity must not be reused
    assert memo.key(lm, *request) != first


def test_a_list_setting_changed_in_place_changes_the_key():
    memo = CallMemo()
    lm = _ProviderLM(stop=["END"])
    request = ((), {"messages": [{"role": "user", "content": "hi"}]})
    first = memo.key(lm, *request)
    lm.kwargs["stop"].append("STOP")
    assert memo.key(lm, *request) != first


def test_saved_keys_tell_unhashable_engines_of_different_kinds_apart():
    from dataclasses import dataclass

    @dataclass
    class EngineA:  # a dataclass without frozen=True is unhashable
        name: str = "a"

    @dataclass
    class EngineB:
        name: str = "a"

    memo = CallMemo()
    request = ((), {"messages": [{"role": "user", "content": "hi"}]})
    keys = []
    for engine in (EngineA(), EngineB()):
        lm = _ProviderLM()
        lm.engine = engine
        keys.append(memo.stable_key(memo.key(lm, *request)))
    assert keys[0] != keys[1]
