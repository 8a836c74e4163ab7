import json

import pytest

from dspy_meta.teleprompters import MetaBudget, MetaStructureOptimizer
from dspy_meta.optimizers import OptimizerSpec
from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.toy_task import MAGIC_WORD, Shout, shout_metric

LIBRARY = {
    "copro": OptimizerSpec.create("copro", breadth=2, depth=1).with_prompts(
        basic_generate_instruction="Propose an instruction to shout words."),
    "bootstrap": OptimizerSpec.create("bootstrap_fewshot", max_bootstrapped_demos=0, max_labeled_demos=2),
}
GOOD_PLAN = {"op": "sequence", "steps": [{"op": "optimize", "ref": "copro"}, {"op": "optimize", "ref": "bootstrap"}]}


def needs_instruction_and_demos(call):
    """Program LM: right only with the magic instruction *and* few-shot demos."""
    has_demos = any(role == "assistant" for role, _ in call.messages)
    word = call.inputs.get("word", "")
    return {"reasoning": "-", "answer": word.upper() if MAGIC_WORD in call.instructions and has_demos else word}


def _optimizer(meta_responder, steps=2, **kwargs):
    from dspy_meta.testing.toy_task import shout_optimizer_responder

    return MetaStructureOptimizer(
        shout_metric, LIBRARY, budget=MetaBudget(structure_steps=steps), seed=0, display_progress=False,
        task_model=ScriptedEngine(needs_instruction_and_demos).as_lm(),
        prompt_model=ScriptedEngine(shout_optimizer_responder).as_lm(), meta_model=meta_responder.as_lm(), **kwargs)


def test_invalid_plan_is_rejected_fed_back_and_a_valid_one_wins(shout_data):
    def meta(call):
        if call.inputs["feedback"] == "none":
            return {"analysis": "try textgrad", "plan": json.dumps({"op": "optimize", "ref": "textgrad"})}
        return {"analysis": "instruction then demos", "plan": json.dumps(GOOD_PLAN)}

    meta_engine = ScriptedEngine(meta)
    program = _optimizer(meta_engine).compile(Shout(), trainset=shout_data[0], valset=shout_data[1])
    results = program.meta_results_
    stages = [(c.stage, c.score, c.accepted) for c in results.candidates]
    assert stages == [("structure-init:copro", 0.0, True), ("structure-init:bootstrap", 0.0, False),
                      ("structure", None, False), ("structure", 1.0, True),  # step 1: retry after feedback
                      ("structure", None, False), ("structure", 1.0, False)]  # step 2: same plan again
    assert results.candidates[-1].reused
    assert "unknown optimizer 'textgrad'" in results.candidates[2].reason
    assert "unknown optimizer 'textgrad'" in meta_engine.calls[1].inputs["feedback"]
    # the meta LM was shown the optimizers and the plans tried so far
    assert "copro" in meta_engine.calls[0].inputs["available_optimizers"]
    assert '"ref": "bootstrap"' in meta_engine.calls[0].inputs["tried_plans"]
    assert results.best_plan["op"] == "sequence"
    predict = program.answer.predict
    assert MAGIC_WORD in predict.signature.instructions and len(predict.demos) == 2
    assert results.best_score == 1.0 and results.baseline_score == 0.0


@pytest.mark.parametrize("plan_text", ["{{{", "[]", json.dumps({"op": "sequence", "steps": []}),
                                       json.dumps({"op": "optimize", "kind": "copro", "exec": "print(1)"})])
def test_garbage_plans_never_crash_the_run(shout_data, plan_text):
    meta_engine = ScriptedEngine(lambda call: {"analysis": "", "plan": plan_text})
    program = _optimizer(meta_engine).compile(Shout(), trainset=shout_data[0], valset=shout_data[1])
    rejected = [c for c in program.meta_results_.candidates if c.stage == "structure"]
    assert len(rejected) == 4 and all(c.score is None and c.reason.startswith("invalid proposal") for c in rejected)


def test_repeated_plan_is_not_run_again(shout_data):
    meta_engine = ScriptedEngine(lambda call: {"analysis": "", "plan": json.dumps(GOOD_PLAN)})
    optimizer = _optimizer(meta_engine, steps=2)
    program = optimizer.compile(Shout(), trainset=shout_data[0], valset=shout_data[1])
    first, second = [c for c in program.meta_results_.candidates if c.stage == "structure"]
    assert not first.reused and second.reused
    assert second.usage["program"].calls == 0 and second.usage["optimizer"].calls == 0
    assert second.usage["meta"].calls == 1


def test_input_optimizers_are_validated_before_any_call(shout_data):
    with pytest.raises(TypeError, match="must be an OptimizerSpec"):
        MetaStructureOptimizer(shout_metric, {"x": "copro"}, display_progress=False).compile(
            Shout(), trainset=shout_data[0], valset=shout_data[1])
    with pytest.raises(ValueError, match="at least one input optimizer"):
        MetaStructureOptimizer(shout_metric, [], display_progress=False).compile(
            Shout(), trainset=shout_data[0], valset=shout_data[1])
