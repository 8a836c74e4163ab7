import json

import dspy
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

    kwargs.setdefault("budget", MetaBudget(structure_steps=steps))
    return MetaStructureOptimizer(
        shout_metric, LIBRARY, seed=0, display_progress=False,
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
    assert stages[:6] == [("structure-init:copro", 0.0, True), ("structure-init:bootstrap", 0.0, False),
                          ("structure", None, False), ("structure", 1.0, True),  # step 1: retry after feedback
                          ("structure", None, False), ("structure", None, False)]  # step 2: textgrad, then a repeat
    assert "repeats one already tried" in results.candidates[5].reason
    # ... so the step still evaluates a new plan, drawn by exploration
    assert stages[6][0] == "structure-explore" and not results.candidates[6].reused
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
    candidates = program.meta_results_.candidates
    rejected = [c for c in candidates if c.stage == "structure"]
    assert len(rejected) == 4 and all(c.score is None and c.reason.startswith("invalid proposal") for c in rejected)
    explored = [c for c in candidates if c.stage == "structure-explore"]
    assert len(explored) == 2 and len({json.dumps(c.plan, sort_keys=True) for c in explored}) == 2
    assert not any(c.reused for c in explored)


def test_a_repeated_plan_costs_only_the_meta_call_and_exploration_draws_a_new_one(shout_data):
    meta_engine = ScriptedEngine(lambda call: {"analysis": "", "plan": json.dumps(GOOD_PLAN)})
    program = _optimizer(meta_engine, steps=2).compile(Shout(), trainset=shout_data[0], valset=shout_data[1])
    candidates = program.meta_results_.candidates
    first = next(c for c in candidates if c.stage == "structure")
    repeats = [c for c in candidates if c.stage == "structure"][1:]
    assert not first.reused and first.score == 1.0 and len(repeats) == 2
    for repeat in repeats:
        assert repeat.usage["program"].calls == 0 and repeat.usage["optimizer"].calls == 0
        assert repeat.usage["meta"].calls == 1
    assert [c.stage for c in candidates].count("structure-explore") == 1


def test_an_over_budget_plan_is_repaired_and_the_meta_lm_is_told(shout_data):
    over = {"op": "sequence", "steps": [{"op": "optimize", "ref": "copro", "params": {"breadth": 50}},
                                        {"op": "optimize", "ref": "bootstrap"}]}
    meta_engine = ScriptedEngine(lambda call: {"analysis": "more breadth", "plan": json.dumps(over)})
    program = _optimizer(meta_engine, steps=2).compile(Shout(), trainset=shout_data[0], valset=shout_data[1])
    repaired = next(c for c in program.meta_results_.candidates if c.stage == "structure")
    assert repaired.score == 1.0 and repaired.plan["steps"][0]["params"]["breadth"] == 2
    assert "copro.params.breadth: 50 is over the budget, lowered to 2" in repaired.analysis
    assert "was repaired" in meta_engine.calls[1].inputs["feedback"]


def test_a_structure_transform_can_win_and_the_result_resumes(shout_data, tmp_path):
    """The program answers 'APPLE.': only the normalize transform makes it right."""
    def trailing_period(call):
        return {"reasoning": "-", "answer": call.inputs.get("word", "").upper() + "."}

    plan = {"op": "sequence", "steps": [{"op": "optimize", "ref": "bootstrap"}, {
        "op": "transform", "kind": "normalize", "params": {"steps": "strip_trailing_period"}}]}

    def run():
        return MetaStructureOptimizer(
            shout_metric, LIBRARY, budget=MetaBudget(structure_steps=1), seed=0, display_progress=False,
            task_model=ScriptedEngine(trailing_period).as_lm(), run_dir=str(tmp_path / "run"),
            prompt_model=ScriptedEngine(lambda c: {"proposed_instruction": "x"}).as_lm(),
            meta_model=ScriptedEngine(lambda c: {"analysis": "", "plan": json.dumps(plan)}).as_lm(),
        ).compile(Shout(), trainset=shout_data[0], valset=shout_data[1])

    program = run()
    results = program.meta_results_
    assert results.baseline_score == 0.0 and results.best_score == 1.0
    winner = next(c for c in results.candidates if c.accepted and c.score == 1.0)
    assert winner.calls_per_example == 1.0  # normalizing costs no LM call
    from dspy_meta.programs import structure_of

    assert structure_of(program)["kind"] == "normalize"
    resumed = run()  # from the checkpoint: the structure is rebuilt, not lost
    assert structure_of(resumed) == structure_of(program)
    assert resumed.meta_results_.usage["program"].calls == results.usage["program"].calls


def test_input_optimizers_are_validated_before_any_call(shout_data):
    with pytest.raises(TypeError, match="must be an OptimizerSpec"):
        MetaStructureOptimizer(shout_metric, {"x": "copro"}, display_progress=False).compile(
            Shout(), trainset=shout_data[0], valset=shout_data[1])
    with pytest.raises(ValueError, match="at least one input optimizer"):
        MetaStructureOptimizer(shout_metric, [], display_progress=False).compile(
            Shout(), trainset=shout_data[0], valset=shout_data[1])


def test_k_proposals_per_step_are_one_batch_with_the_same_records_at_any_thread_count(shout_data):
    second = {"op": "optimize", "ref": "bootstrap", "params": {"max_labeled_demos": 1}}

    def records(num_threads):
        meta = ScriptedEngine(lambda call: {"analysis": "", "plan": json.dumps(GOOD_PLAN if call.index == 0 else second)})
        program = _optimizer(meta, num_threads=num_threads, budget=MetaBudget(structure_steps=1, structure_proposals=2)
                             ).compile(Shout(), trainset=shout_data[0], valset=shout_data[1])
        assert len(meta.calls) == 2  # one meta call per proposal
        return [(c.stage, c.plan, c.score, c.accepted) for c in program.meta_results_.candidates]

    sequential = records(None)
    proposed = [r for r in sequential if r[0] == "structure"]
    assert [p[2] for p in proposed] == [1.0, 0.0] and proposed[0][3] and not proposed[1][3]
    assert records(4) == sequential


DEMO_COUNTS = {f"labeled_{n}": OptimizerSpec.create("bootstrap_fewshot", max_bootstrapped_demos=0, max_labeled_demos=n)
               for n in (1, 2, 3)}


def _each_program_wrong_on_a_third(valset):
    """Program LM: with n demos it is wrong on the validation examples i with i % 3 == n - 1, without demos on
    all; so each one-optimizer program scores 2/3, and only a vote of all three gets everything right."""
    wrong_with = {example.word: i % 3 + 1 for i, example in enumerate(valset)}

    def respond(call):
        word = call.inputs.get("word", "")
        demos = sum(1 for role, _ in call.messages if role == "assistant")
        right = demos and wrong_with.get(word) != demos
        return {"reasoning": "-", "answer": word.upper() if right else f"{word}-{demos}"}

    return respond


def _ensemble_run(trainset, valset, steps, **kwargs):
    from dspy_meta.testing.toy_task import shout_optimizer_responder

    plan = {"op": "sequence", "steps": [{"op": "optimize", "ref": "labeled_1"},
                                        {"op": "transform", "kind": "self_consistency", "params": {"samples": 3}}]}
    return MetaStructureOptimizer(
        shout_metric, DEMO_COUNTS, budget=MetaBudget(structure_steps=steps), seed=0, display_progress=False,
        task_model=ScriptedEngine(_each_program_wrong_on_a_third(valset)).as_lm(),
        prompt_model=ScriptedEngine(shout_optimizer_responder).as_lm(),
        meta_model=ScriptedEngine(lambda c: {"analysis": "", "plan": json.dumps(plan)}).as_lm(), **kwargs,
    ).compile(Shout(), trainset=trainset, valset=valset)


def test_an_ensemble_of_the_found_programs_closes_the_run_and_wins_by_the_paired_test():
    from dspy_meta.programs import structure_of
    from dspy_meta.testing.toy_task import shout_examples

    trainset, valset = shout_examples(8), shout_examples(12, offset=8)
    program = _ensemble_run(trainset, valset, steps=0)
    results = program.meta_results_
    *inputs, closing = results.candidates
    assert [c.score for c in inputs] == [pytest.approx(2 / 3, abs=1e-3)] * 3
    assert closing.stage == "ensemble-of-found" and closing.score == 1.0 and closing.accepted
    assert "improved on the best of the run so far (0.667): better on 4, worse on 0" in closing.reason
    assert closing.usage["program"].calls == 0  # every member answer was remembered
    assert closing.calls_per_example == 3.0
    assert results.best_score == 1.0 and structure_of(program)["kind"] == "ensemble"
    with dspy.context(lm=ScriptedEngine(_each_program_wrong_on_a_third(valset)).as_lm()):
        assert [shout_metric(e, program(word=e.word)) for e in valset] == [1.0] * 12


def test_the_closing_ensemble_runs_after_a_usage_limit_stopped_the_search():
    from dspy_meta.testing.toy_task import shout_examples

    trainset, valset = shout_examples(8), shout_examples(12, offset=8)
    # Baseline and the three inputs take 48 program calls; the structure step's plan (sampled answers) needs
    # 36 more.
    program = _ensemble_run(trainset, valset, steps=1, usage_limits={"program_calls": 52})
    results = program.meta_results_
    assert results.stopped_reason.startswith("budget") and results.usage["program"].calls <= 52
    closing = results.candidates[-1]
    assert closing.stage == "ensemble-of-found" and closing.accepted and results.best_score == 1.0
