import threading

import dspy
import pytest
from dspy.utils.exceptions import AdapterParseError

from dspy_meta.testing import MALFORMED, Rule, ScriptedEngine


def _echo(call):
    return {"answer": f"echo:{call.inputs.get('question', '')}"}


@pytest.mark.parametrize("adapter", [dspy.ChatAdapter(), dspy.JSONAdapter()], ids=["chat", "json"])
@pytest.mark.parametrize("module", [dspy.Predict, dspy.ChainOfThought], ids=["predict", "cot"])
def test_answers_any_signature_through_both_adapters(adapter, module):
    engine = ScriptedEngine(_echo)
    with dspy.context(lm=engine.as_lm(), adapter=adapter):
        prediction = module("question -> answer")(question="why?")
    assert prediction.answer == "echo:why?"
    assert len(engine.calls) == 1
    call = engine.calls[0]
    assert call.inputs == {"question": "why?"}
    assert call.output_fields[-1] == "answer"
    assert call.json_mode == isinstance(adapter, dspy.JSONAdapter)


def test_records_instructions_and_reports_usage():
    engine = ScriptedEngine(_echo)
    lm = engine.as_lm()
    signature = dspy.Signature("question -> answer", "Answer like a pirate.")
    with dspy.context(lm=lm):
        dspy.Predict(signature)(question="hi")
    assert engine.calls[0].instructions == "Answer like a pirate."
    usage = lm.history[-1]["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0


def test_rules_first_match_wins_and_missing_fields_get_placeholders():
    engine = ScriptedEngine([Rule("pirate", {"answer": "arr"}), Rule(lambda c: True, {})])
    with dspy.context(lm=engine.as_lm()):
        pirate = dspy.Predict(dspy.Signature("question -> answer", "Talk like a pirate."))(question="x")
        other = dspy.Predict(dspy.Signature("question -> answer, note", "Plain."))(question="x")
    assert pirate.answer == "arr"
    assert other.answer == "scripted answer" and other.note == "scripted note"


def test_fault_injection_raises_and_malformed_fails_to_parse():
    engine = ScriptedEngine(lambda call: RuntimeError("boom") if "boom" in call.inputs["question"] else MALFORMED)
    with dspy.context(lm=engine.as_lm()):
        with pytest.raises(Exception, match="boom"):
            dspy.Predict("question -> answer")(question="boom")
        with pytest.raises(AdapterParseError):
            dspy.Predict("question -> answer")(question="fine")


def test_deterministic_under_threads():
    engine = ScriptedEngine(_echo)
    lm = engine.as_lm()
    results = {}

    def ask(i):
        with dspy.context(lm=lm):
            results[i] = dspy.Predict("question -> answer")(question=f"q{i}").answer

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: f"echo:q{i}" for i in range(16)}
    assert sorted(c.index for c in engine.calls) == list(range(16))
