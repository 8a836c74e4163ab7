"""Tests against the real local model (run with `python -m pytest -m local_lm`)."""

import dspy
import pytest

from dspy_meta.lm import DEFAULT_PROGRAM_LM, make_lm

pytestmark = pytest.mark.local_lm


@pytest.fixture(scope="module")
def local_lm():
    return make_lm(DEFAULT_PROGRAM_LM, cache=False, max_tokens=128)


@pytest.mark.parametrize("adapter", [dspy.ChatAdapter(), dspy.JSONAdapter()], ids=["chat", "json"])
@pytest.mark.parametrize("module", [dspy.Predict, dspy.ChainOfThought], ids=["predict", "cot"])
def test_answers_through_both_adapters(local_lm, adapter, module):
    with dspy.context(lm=local_lm, adapter=adapter):
        prediction = module("question -> answer")(question="What is the capital of France? One word.")
    assert "paris" in prediction.answer.lower()
    usage = local_lm.history[-1]["usage"]
    assert usage["prompt_tokens"] > 20 and usage["completion_tokens"] > 0


def test_long_prompt_does_not_crash(local_lm):
    # A bad (native) llama.cpp build on these CPUs survives short prompts and dies on long ones.
    text = " ".join(f"item{i}" for i in range(300))
    with dspy.context(lm=local_lm):
        prediction = dspy.Predict("text -> first_item")(text=text)
    assert local_lm.history[-1]["usage"]["prompt_tokens"] > 600
    assert isinstance(prediction.first_item, str)


def test_concurrent_calls_from_dspy_executor(local_lm):
    devset = [dspy.Example(question=f"What is {i} plus {i}? Answer with the number only.", answer=str(2 * i))
              .with_inputs("question") for i in range(1, 7)]
    with dspy.context(lm=local_lm):
        result = dspy.Evaluate(devset=devset, metric=lambda e, p, t=None: e.answer in p.answer, num_threads=4,
                               display_progress=False)(dspy.Predict("question -> answer"))
    assert len(result.results) == 6
    assert result.score >= 50.0
