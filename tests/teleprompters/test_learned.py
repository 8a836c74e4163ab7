"""MetaTeleprompter(learned=...): the learned plan runs as it is, with no meta-LM call and the stock cost."""

import dspy
import pytest

from dspy_meta import MetaTeleprompter, OptimizerSpec
from dspy_meta.learning import LearnedBundle
from dspy_meta.optimizers.copro import BASIC, COPROKind
from dspy_meta.testing.toy_task import Shout, shout_metric

from .conftest import TINY, toy_engines

MODELS = {"program": "scripted/p", "optimizer": "scripted/o", "meta": "scripted/m"}


def learned_copro_bundle(tmp_path):
    """COPRO whose own instruction prompt was 'learned' to name the task (the toy's optimizer LM then
    proposes the instruction that solves it)."""
    stock = COPROKind().default_prompts()[BASIC].instructions
    spec = OptimizerSpec.create("copro", breadth=2, depth=1).with_prompts(
        **{BASIC: f"{stock} The task: shout each word back in capitals."})
    bundle = LearnedBundle.create("toy", {"copro": spec}, {"op": "optimize", "ref": "copro"},
                                  models=MODELS, learning_tasks=["toy"])
    return bundle.save(tmp_path / "toy.json")


def _score(program, examples, lm):
    with dspy.context(lm=lm):
        return sum(shout_metric(e, program(**e.inputs())) for e in examples) / len(examples)


def test_a_learned_bundle_compiles_with_no_meta_call_at_the_stock_optimizers_cost(tmp_path, shout_data):
    trainset, valset = shout_data
    engines = toy_engines()
    teleprompter = MetaTeleprompter(shout_metric, task_model=engines[0].as_lm(), prompt_model=engines[1].as_lm(),
                                    meta_model=engines[2].as_lm(), learned=str(learned_copro_bundle(tmp_path)),
                                    display_progress=False, num_threads=1)
    optimized = teleprompter.compile(Shout(), trainset=trainset, valset=valset)
    assert type(optimized) is Shout and optimized.learned_bundle_ == "toy"
    assert len(engines[2].calls) == 0  # the meta level was paid offline

    # Stock dspy.COPRO with the same settings, on fresh engines: the same number of program and optimizer calls.
    stock_engines = toy_engines()
    stock = dspy.COPRO(prompt_model=stock_engines[1].as_lm(), metric=shout_metric, breadth=2, depth=1)
    with dspy.context(lm=stock_engines[0].as_lm()):
        baseline = stock.compile(Shout(), trainset=trainset, eval_kwargs={"num_threads": 1, "display_progress": False})
    assert len(engines[0].calls) == len(stock_engines[0].calls) > 0
    assert len(engines[1].calls) == len(stock_engines[1].calls) > 0
    # And the learned prompt is what made the difference on this toy: stock COPRO never proposes the fix.
    assert _score(optimized, valset, toy_engines()[0].as_lm()) == 1.0
    assert _score(baseline, valset, toy_engines()[0].as_lm()) == 0.0


def test_with_a_budget_the_bundle_supplies_the_meta_searchs_inputs(tmp_path, shout_data):
    engines = toy_engines()
    teleprompter = MetaTeleprompter(shout_metric, task_model=engines[0].as_lm(), prompt_model=engines[1].as_lm(),
                                    meta_model=engines[2].as_lm(), learned=learned_copro_bundle(tmp_path),
                                    budget=TINY, display_progress=False, seed=0)
    assert set(teleprompter._library(TINY)) == {"copro"}
    optimized = teleprompter.compile(Shout(), trainset=shout_data[0], valset=shout_data[1])
    assert optimized.meta_results_.best_score == 1.0 and not hasattr(optimized, "learned_bundle_")


def test_an_unknown_bundle_fails_before_any_call(shout_data):
    engines = toy_engines()
    teleprompter = MetaTeleprompter(shout_metric, task_model=engines[0].as_lm(), learned="no-such-bundle",
                                    display_progress=False)
    with pytest.raises(ValueError, match="no learned-optimizer bundle 'no-such-bundle'"):
        teleprompter.compile(Shout(), trainset=shout_data[0], valset=shout_data[1])
    assert not engines[0].calls
