import uuid

import dspy

from dspy_meta.runtime.usage import CallMemo, UsageLimits, UsageMeter
from dspy_meta.testing import ScriptedEngine


def _answer(call):
    return {"answer": call.inputs["q"].upper()}


def test_meter_counts_calls_and_tokens_but_not_cache_hits():
    engine = ScriptedEngine(_answer)
    meter = UsageMeter("program")
    lm = meter.attach(engine.as_lm(cache=True))
    question = f"cache-test-{uuid.uuid4()}"  # DSPy's cache is on disk: never seen before this test
    with dspy.context(lm=lm):
        dspy.Predict("q -> answer")(q=question)
        dspy.Predict("q -> answer")(q=question)  # DSPy cache hit
    usage = meter.snapshot()
    assert usage.calls == len(engine.calls) == 1
    assert usage.input_tokens > 0 and usage.output_tokens > 0


def test_memo_answers_identical_requests_once_and_keeps_samples_apart():
    engine = ScriptedEngine(_answer)
    memo = CallMemo()
    lm = UsageMeter("program").attach(engine.as_lm(), memo)
    with dspy.context(lm=lm):
        first = dspy.Predict("q -> answer")(q="x").answer
        again = dspy.Predict("q -> answer")(q="x").answer
    with dspy.context(lm=lm.copy(rollout_id=1, temperature=1.0)):
        dspy.Predict("q -> answer")(q="x")
    assert first == again == "X"
    assert len(engine.calls) == 2 and memo.hits == 1
    assert len(memo.drain()) == 2 and memo.drain() == []


def test_limits_name_the_cap_reached():
    from dspy_meta.runtime.usage import LevelUsage

    usage = {"program": LevelUsage(calls=5, input_tokens=50), "optimizer": LevelUsage(), "meta": LevelUsage()}
    assert UsageLimits(program_calls=5).exceeded(usage) == "program calls limit 5 reached (5 used)"
    assert UsageLimits(total_tokens=51).exceeded(usage) is None
    assert UsageLimits(total_tokens=50).exceeded(usage).startswith("total tokens limit 50")


def test_a_finished_call_counts_once_not_also_as_in_flight():
    from dspy.utils.callback import BaseCallback

    from dspy_meta.runtime.usage import LEVELS, guard_meters

    meters = {level: UsageMeter(level) for level in LEVELS}
    limits = UsageLimits(program_calls=2)
    guard_meters(meters, limits)
    seen = []

    class AtCallEnd(BaseCallback):
        def on_lm_end(self, call_id, outputs, exception=None):
            # The call is counted but still inside the meter: what a check on another thread sees now.
            usage = {level: meter.snapshot(pending=True) for level, meter in meters.items()}
            seen.append((usage["program"].calls, limits.exceeded(usage)))

    with dspy.context(lm=meters["program"].attach(ScriptedEngine(_answer).as_lm()), callbacks=[AtCallEnd()]):
        dspy.Predict("q -> answer")(q="x")
    assert seen == [(1, None)]  # before: (2, "program calls limit 2 reached (2 used)") after one call
    assert meters["program"].snapshot(pending=True).calls == 1
