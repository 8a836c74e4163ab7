from typing import Literal

import dspy

from dspy_meta.runtime.adapter_memo import AdapterMemo, request_key
from dspy_meta.testing import ScriptedEngine


class _CountingAdapter(dspy.ChatAdapter):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def __call__(self, lm, lm_kwargs, signature, demos, inputs):
        self.calls += 1
        return super().__call__(lm, lm_kwargs, signature, demos, inputs)


def _engine():
    return ScriptedEngine(lambda call: {"answer": str(call.inputs.get("q", "")).upper()})


def test_repeated_predictor_calls_reach_the_adapter_once():
    base = _CountingAdapter()
    adapter = AdapterMemo().wrap(base)
    engine = _engine()
    with dspy.context(lm=engine.as_lm(), adapter=adapter):
        first = dspy.Predict("q -> answer")(q="x")
        again = dspy.Predict("q -> answer")(q="x")
        other = dspy.Predict("q -> answer")(q="y")
    assert first.answer == again.answer == "X" and other.answer == "Y"
    assert adapter.calls == 2 and len(engine.calls) == 2
    assert isinstance(adapter, dspy.ChatAdapter) and base.calls == 0  # the user's adapter object is not used


def test_instructions_demos_settings_and_lm_are_part_of_the_key():
    adapter = AdapterMemo().wrap(dspy.ChatAdapter())
    engine = _engine()
    lm = engine.as_lm()
    with dspy.context(lm=lm, adapter=adapter):
        dspy.Predict("q -> answer")(q="x")
        dspy.Predict(dspy.Signature("q -> answer", "Other instructions."))(q="x")
        with_demo = dspy.Predict("q -> answer")
        with_demo.demos = [dspy.Example(q="a", answer="A")]
        with_demo(q="x")
        dspy.Predict("q -> answer", temperature=0.7)(q="x")
    with dspy.context(lm=lm.copy(rollout_id=3, temperature=1.0), adapter=adapter):
        dspy.Predict("q -> answer")(q="x")
    assert len(engine.calls) == 5


def _choice_signature(annotation):
    class Choose(dspy.Signature):
        q: str = dspy.InputField()
        answer: annotation = dspy.OutputField()

    return Choose


def test_same_named_types_stay_apart_and_non_plain_inputs_are_not_memoized():
    adapter = dspy.ChatAdapter()
    lm = _engine().as_lm()
    first, second = _choice_signature(Literal["A"]), _choice_signature(Literal["B"])
    assert first.__name__ == second.__name__
    assert request_key(adapter, lm, {}, first, [], {"q": "x"}) != request_key(adapter, lm, {}, second, [], {"q": "x"})
    assert request_key(adapter, lm, {}, first, [], {"q": object()}) is None
    assert request_key(adapter, lm, {}, first, [{"q": object()}], {"q": "x"}) is None


def test_a_failing_call_is_not_remembered():
    answers = iter([ValueError("flaky"), {"answer": "ok"}])

    def respond(call):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    engine = ScriptedEngine(respond)
    adapter = AdapterMemo().wrap(dspy.ChatAdapter())
    with dspy.context(lm=engine.as_lm(num_retries=0), adapter=adapter):
        try:
            dspy.Predict("q -> answer")(q="x")
        except Exception:
            pass
        assert dspy.Predict("q -> answer")(q="x").answer == "ok"


def test_two_engines_behind_one_model_name_stay_apart():
    adapter = AdapterMemo().wrap(dspy.ChatAdapter())
    shouting = ScriptedEngine(lambda call: {"answer": "X"})
    whispering = ScriptedEngine(lambda call: {"answer": "x"})
    with dspy.context(adapter=adapter):
        with dspy.context(lm=shouting.as_lm()):
            loud = dspy.Predict("q -> answer")(q="x").answer
        with dspy.context(lm=whispering.as_lm()):
            quiet = dspy.Predict("q -> answer")(q="x").answer
    assert (loud, quiet) == ("X", "x")


def test_values_that_compare_equal_across_types_stay_apart():
    adapter, lm = dspy.ChatAdapter(), _engine().as_lm()
    signature = dspy.Signature("q -> answer")
    keys = {request_key(adapter, lm, {}, signature, [], {"q": value}) for value in (1, 1.0, True, "1", [1], (1,))}
    assert len(keys) == 6


def test_two_servers_behind_one_model_name_stay_apart():
    adapter, signature = dspy.ChatAdapter(), dspy.Signature("q -> answer")
    first = dspy.LM("openai/same-model", api_base="http://one.invalid/v1")
    second = dspy.LM("openai/same-model", api_base="http://two.invalid/v1")
    assert request_key(adapter, first, {}, signature, [], {"q": "x"}) != \
        request_key(adapter, second, {}, signature, [], {"q": "x"})


def _messages(adapter, signature, demos, inputs):
    return adapter.format(signature, demos, inputs)


def test_cached_formatting_gives_dspy_s_messages():
    demos = [dspy.Example(q="a", answer="A"), {"q": "b", "answer": "B"}, {"q": "only an input"}]
    first = dspy.Signature("q -> answer", "Answer in capitals.")
    second = first.with_instructions("Answer in lower case.")
    for plain in (dspy.ChatAdapter(), dspy.JSONAdapter(), dspy.XMLAdapter()):
        wrapped = AdapterMemo().wrap(plain)
        for signature in (first, second, first):
            for shown in (demos, demos[:1], []):
                assert _messages(wrapped, signature, shown, {"q": "x"}) == _messages(plain, signature, shown, {"q": "x"})
        assert AdapterMemo.cached_messages(wrapped) == {"system": 2, "demos": 6}


def test_cached_demo_messages_are_copies_and_unusual_demos_are_formatted_as_usual():
    signature = dspy.Signature("q -> answer")
    wrapped = AdapterMemo().wrap(dspy.ChatAdapter())
    demos = [{"q": "a", "answer": "A"}]
    wrapped.format_demos(signature, demos)[0]["content"] = "changed by a caller"
    assert wrapped.format_demos(signature, demos)[0]["content"] != "changed by a caller"
    odd = [{"q": object(), "answer": "A"}]  # not plain data: no key, no cache
    assert wrapped.format_demos(signature, odd) == dspy.ChatAdapter().format_demos(signature, odd)
    assert AdapterMemo.cached_messages(wrapped)["demos"] == 1


class _OwnStructure(dspy.ChatAdapter):
    """An adapter with its own formatting: it may depend on more than the signature."""

    def __init__(self):
        super().__init__()
        self.structures = 0

    def format_field_structure(self, signature):
        self.structures += 1
        return f"Structure #{self.structures}\n" + super().format_field_structure(signature)


def test_an_adapter_s_own_formatting_is_not_cached():
    wrapped = AdapterMemo().wrap(_OwnStructure())
    signature = dspy.Signature("q -> answer")
    first = wrapped.format(signature, [], {"q": "x"})
    second = wrapped.format(signature, [], {"q": "x"})
    assert wrapped.structures == 2 and first[0]["content"] != second[0]["content"]


class _FormatCounter(dspy.utils.callback.BaseCallback):
    def __init__(self):
        self.formats = 0
        self.parses = 0

    def on_adapter_format_start(self, call_id, instance, inputs):
        self.formats += 1

    def on_adapter_parse_start(self, call_id, instance, inputs):
        self.parses += 1


def test_adapter_callbacks_fire_once_per_formatted_call():
    counter = _FormatCounter()
    engine = _engine()
    with dspy.context(lm=engine.as_lm(), adapter=AdapterMemo().wrap(dspy.ChatAdapter()), callbacks=[counter]):
        dspy.Predict("q -> answer")(q="x")
        dspy.Predict("q -> answer")(q="x")  # answered by the memo: not formatted
    assert (counter.formats, counter.parses) == (1, 1)


def test_demo_messages_follow_the_order_of_nested_dicts_as_dspy_renders_them():
    class Lookup(dspy.Signature):
        table: dict = dspy.InputField()
        answer: str = dspy.OutputField()

    plain, wrapped = dspy.ChatAdapter(), AdapterMemo().wrap(dspy.ChatAdapter())
    for table in ({"a": 1, "b": 2}, {"b": 2, "a": 1}, {"a": 0.0}, {"a": -0.0}):
        demos = [{"table": table, "answer": "x"}]
        assert wrapped.format_demos(Lookup, demos) == plain.format_demos(Lookup, demos)
