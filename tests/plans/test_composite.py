import dspy
import pytest

from dspy_meta.plans import CompositeOptimizer, plan_from_dict
from dspy_meta.testing.toy_task import MAGIC_WORD, Shout

from .test_nodes import TWO_STEP


def test_two_step_plan_end_to_end(student, shout_data, metric, program_engine, optimizer_engine):
    trainset, valset = shout_data
    composite = CompositeOptimizer(plan_from_dict(TWO_STEP), metric, prompt_model=optimizer_engine.as_lm(),
                                   task_model=program_engine.as_lm(), seed=5)
    program = composite.compile(student, trainset=trainset, valset=valset)
    predict = program.answer.predict
    # COPRO found the instruction; BootstrapFewShot, running after it, could then keep passing traces.
    assert MAGIC_WORD in predict.signature.instructions
    assert len(predict.demos) == 2
    assert all(d.answer == d.word.upper() for d in predict.demos)
    assert [r.describe for r in program.plan_trace_] == ["copro", "bootstrap_fewshot"]
    assert [r.extra["seed"] for r in program.plan_trace_] == [5, 6]
    assert student.answer.predict.demos == [] and MAGIC_WORD not in student.answer.predict.signature.instructions
    assert isinstance(composite, dspy.teleprompt.Teleprompter)


def test_order_matters_bootstrap_first_finds_no_demos(student, shout_data, metric, program_engine,
                                                      optimizer_engine):
    reversed_plan = {"op": "sequence", "steps": list(reversed(TWO_STEP["steps"]))}
    program = CompositeOptimizer(reversed_plan, metric, prompt_model=optimizer_engine.as_lm(),
                                 task_model=program_engine.as_lm()).compile(
        student, trainset=shout_data[0], valset=shout_data[1])
    assert program.answer.predict.demos == []
    assert MAGIC_WORD in program.answer.predict.signature.instructions


def test_best_of_keeps_the_branch_that_scores_best(student, shout_data, metric, program_engine, optimizer_engine):
    plan = {"op": "best_of", "branches": [
        {"op": "optimize", "kind": "bootstrap_fewshot", "params": {"max_bootstrapped_demos": 1, "max_labeled_demos": 0}},
        {"op": "optimize", "kind": "copro", "params": {"breadth": 2, "depth": 1}},
    ]}
    program = CompositeOptimizer(plan, metric, prompt_model=optimizer_engine.as_lm(),
                                 task_model=program_engine.as_lm()).compile(
        student, trainset=shout_data[0], valset=shout_data[1])
    assert MAGIC_WORD in program.answer.predict.signature.instructions
    branches = [r for r in program.plan_trace_ if r.op == "branch"]
    assert [(r.describe, r.score, r.chosen) for r in branches] == [("bootstrap_fewshot", 0.0, False),
                                                                   ("copro", 1.0, True)]


def test_best_of_without_valset_is_an_error(student, shout_data, metric):
    plan = {"op": "best_of", "branches": [{"op": "optimize", "kind": "copro"}] * 2}
    with pytest.raises(ValueError, match="needs a valset"):
        CompositeOptimizer(plan, metric).compile(student, trainset=shout_data[0])


def test_composites_nest_as_teleprompters(shout_data, metric, program_engine, optimizer_engine):
    inner = CompositeOptimizer(TWO_STEP, metric, prompt_model=optimizer_engine.as_lm(),
                               task_model=program_engine.as_lm())
    once = inner.compile(Shout(), trainset=shout_data[0], valset=shout_data[1])
    twice = inner.compile(once, trainset=shout_data[0], valset=shout_data[1])
    assert MAGIC_WORD in twice.answer.predict.signature.instructions
    assert len(twice.answer.predict.demos) == 2


def test_invalid_plan_dict_is_rejected_at_compile(student, shout_data, metric):
    with pytest.raises(ValueError, match="unknown optimizer kind"):
        CompositeOptimizer({"op": "optimize", "kind": "nope"}, metric).compile(student, trainset=shout_data[0])
