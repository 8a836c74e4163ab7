from dspy.teleprompt.gepa import instruction_proposal

from dspy_meta.optimizers import OptimizerSpec
from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.toy_task import MAGIC_WORD


def test_gepa_sends_its_rewritten_reflection_prompt(student, shout_data, metric, program_engine):
    reflection = ScriptedEngine(lambda call: {"new_instruction": f"Always answer in {MAGIC_WORD}."})
    spec = OptimizerSpec.create("gepa", max_metric_calls=30).with_prompts(
        propose_instruction="CUSTOM: rewrite the instruction for a word-shouting assistant.")
    trainset, valset = shout_data
    program = spec.run(student, trainset=trainset, valset=valset, metric=metric, prompt_model=reflection.as_lm(),
                       task_model=program_engine.as_lm())
    assert program.answer.predict.signature.instructions == f"Always answer in {MAGIC_WORD}."
    assert reflection.calls
    assert {c.instructions for c in reflection.calls} == {
        "CUSTOM: rewrite the instruction for a word-shouting assistant."}
    assert instruction_proposal.ProposeInstruction.instructions.startswith("I provided an assistant")


def test_bootstrap_fewshot_adds_demos_only(student, shout_data, metric, program_engine):
    spec = OptimizerSpec.create("bootstrap_fewshot", max_bootstrapped_demos=2, max_labeled_demos=0)
    original = student.answer.predict.signature.instructions
    program = spec.run(student, trainset=shout_data[0], metric=metric, task_model=program_engine.as_lm())
    # the program LM is wrong without the magic word, so no trace passes the metric
    assert program.answer.predict.demos == []
    labeled = OptimizerSpec.create("bootstrap_fewshot", max_bootstrapped_demos=0, max_labeled_demos=3).run(
        student, trainset=shout_data[0], metric=metric, task_model=program_engine.as_lm())
    assert len(labeled.answer.predict.demos) == 3
    assert labeled.answer.predict.signature.instructions == original
