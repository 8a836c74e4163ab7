import json
import logging

import pytest

from dspy_meta.search.proposals import parse_prompt_proposal
from dspy_meta.teleprompters import MetaBudget, MetaPromptOptimizer
from dspy_meta.optimizers import OptimizerSpec
from dspy_meta.testing import MALFORMED, ScriptedEngine
from dspy_meta.testing.toy_task import MAGIC_WORD, Shout

from .conftest import TINY

COPRO = OptimizerSpec.create("copro", breadth=2, depth=1)


def _compile(lms, data, meta_engine=None, steps=1, spec=COPRO):
    trainset, valset = data
    if meta_engine is not None:
        lms = {**lms, "meta_model": meta_engine.as_lm()}
    optimizer = MetaPromptOptimizer(lambda e, p, t=None: float(p.answer == e.answer), spec,
                                    budget=MetaBudget(prompt_steps=steps), seed=0, display_progress=False, **lms)
    return optimizer.compile(Shout(), trainset=trainset, valset=valset)


def test_a_better_prompt_is_accepted(lms, shout_data, engines):
    program = _compile(lms, shout_data)
    results = program.meta_results_
    initial, proposal = results.candidates
    assert (initial.stage, initial.score) == ("initial:copro", 0.0)
    assert (proposal.stage, proposal.score, proposal.accepted) == ("prompt:copro", 1.0, True)
    learned = results.best_optimizer
    assert isinstance(learned, OptimizerSpec)
    assert "shout each word back" in learned.prompts["basic_generate_instruction"].instructions
    assert MAGIC_WORD in program.answer.predict.signature.instructions
    assert results.accepted_path == [0, 1]
    assert proposal.analysis == "Words must be repeated in upper case."
    # the meta LM saw task examples and the optimizer's current prompts
    meta_call = engines[2].calls[0]
    assert "river" in meta_call.inputs["task_examples"] or "apple" in meta_call.inputs["task_examples"]
    assert "basic_generate_instruction" in meta_call.inputs["current_prompts"]


def test_a_worse_prompt_is_rejected(lms, shout_data):
    aligned = COPRO.with_prompts(basic_generate_instruction="Propose an instruction to shout words.")

    def worsening(call):
        current = json.loads(call.inputs["current_prompts"])
        return {"task_analysis": "?", "new_prompts": json.dumps({k: "Propose any instruction." for k in current})}

    program = _compile(lms, shout_data, ScriptedEngine(worsening), spec=aligned)
    initial, proposal = program.meta_results_.candidates
    assert initial.score == 1.0 and proposal.score == 0.0
    assert not proposal.accepted and proposal.reason.startswith("did not beat the best of prompt:copro so far (1.000): "
                                                           "better on 0, worse on 6 of 6 examples")
    assert program.meta_results_.best_optimizer == aligned
    assert MAGIC_WORD in program.answer.predict.signature.instructions


@pytest.mark.parametrize("answer, reason", [
    (MALFORMED, "invalid proposal"),
    ({"task_analysis": "x", "new_prompts": "not json at all"}, "not valid JSON"),
    # Nothing but an invented name (no guidance): nothing to repair, refused.
    ({"task_analysis": "x", "task_guidance": "", "new_prompts": json.dumps({"rm -rf": "x"})}, "unknown prompt name"),
    ({"task_analysis": "x", "new_prompts": json.dumps({"basic_generate_instruction": ""})}, "is empty"),
])
def test_garbage_is_rejected_with_a_logged_reason_and_the_run_finishes(lms, shout_data, caplog, answer, reason):
    meta_engine = ScriptedEngine(lambda call: answer)
    with caplog.at_level(logging.WARNING, logger="dspy_meta"):
        program = _compile(lms, shout_data, meta_engine, steps=2)
    results = program.meta_results_
    rejected = [c for c in results.candidates if c.stage == "prompt:copro"]
    # two steps, two attempts each; each retry is told why the previous answer was rejected
    assert len(rejected) == 4 and all(c.score is None and reason in c.reason for c in rejected)
    feedback = [c.inputs["feedback"] for c in meta_engine.calls]
    assert feedback[0] == "none" and feedback[-1].startswith("Your previous proposal was rejected")
    assert any(reason in message for message in caplog.messages)
    assert results.best_optimizer == COPRO
    assert results.returned_baseline  # nothing beat the unoptimized program


def test_parse_prompt_proposal_rules():
    prompts = COPRO.prompts
    updates = parse_prompt_proposal('```json\n{"basic_generate_instruction": "New."}\n```', prompts)
    assert updates["basic_generate_instruction"].instructions == "New."
    assert (updates["basic_generate_instruction"].field_descriptions
            == prompts["basic_generate_instruction"].field_descriptions)
    with pytest.raises(ValueError, match="repeats the current prompts"):
        parse_prompt_proposal(json.dumps({"basic_generate_instruction":
                                          prompts["basic_generate_instruction"].instructions}), prompts)
    with pytest.raises(ValueError, match="does not have"):
        parse_prompt_proposal(json.dumps({"basic_generate_instruction":
                                          {"instructions": "x", "field_descriptions": {"evil": "y"}}}), prompts)
    with pytest.raises(ValueError, match="must be a string"):
        parse_prompt_proposal(json.dumps({"basic_generate_instruction": 3}), prompts)


def test_a_rewrite_of_an_invented_prompt_name_is_dropped_not_the_whole_proposal():
    prompts, invented = COPRO.prompts, json.dumps({"sort_words": "Sort the words."})
    with pytest.raises(ValueError, match=r"unknown prompt name\(s\) \['sort_words'\]"):
        parse_prompt_proposal(invented, prompts, guidance="Answer in capitals.")  # no repairs asked for
    repairs = []
    updates = parse_prompt_proposal(invented, prompts, guidance="Answer in capitals.", repairs=repairs)
    assert set(updates) == set(prompts) and repairs == [
        f"dropped the rewrite of unknown prompt name(s) ['sort_words']; known: {sorted(prompts)}"]
    with pytest.raises(ValueError, match="unknown prompt name"):  # nothing left to try: still refused
        parse_prompt_proposal(invented, prompts, repairs=[])


def test_a_repaired_proposal_runs_and_the_repair_is_told_to_the_meta_lm(lms, shout_data):
    seen_feedback = []

    def inventing_meta(call):
        seen_feedback.append(call.inputs["feedback"])
        return {"task_analysis": "Upper-casing words.", "new_prompts": json.dumps({"shout_words": "Shout."}),
                "task_guidance": f"The program must shout each word back in capitals ({len(seen_feedback)})."}

    program = _compile(lms, shout_data, ScriptedEngine(inventing_meta), steps=2)
    stages = [(c.stage, c.score is not None) for c in program.meta_results_.candidates]
    assert stages == [("initial:copro", True), ("prompt:copro", True), ("prompt:copro", True)]
    assert "[repaired: dropped the rewrite of unknown prompt name(s) ['shout_words']" in \
        program.meta_results_.candidates[1].analysis
    assert seen_feedback[0] == "none" and seen_feedback[1].startswith("Your previous proposal was repaired")


def test_bad_optimizer_argument_fails_before_any_lm_call(lms, shout_data, engines):
    with pytest.raises(TypeError, match="OptimizerSpec"):
        MetaPromptOptimizer(lambda *a: 1.0, "copro", display_progress=False, **lms).compile(
            Shout(), trainset=shout_data[0], valset=shout_data[1])
    assert all(not engine.calls for engine in engines)


def test_budget_from_tiny_preset_is_used(lms, shout_data):
    optimizer = MetaPromptOptimizer(lambda e, p, t=None: float(p.answer == e.answer), COPRO, budget=TINY,
                                    display_progress=False, **lms)
    program = optimizer.compile(Shout(), trainset=shout_data[0], valset=shout_data[1])
    assert len(program.meta_results_.candidates) == 1 + TINY.prompt_steps


def test_task_guidance_aligns_an_optimizer_whose_prompts_were_copied(lms, shout_data):
    """Small meta LMs often return the prompts unchanged; their task guidance still aligns the optimizer."""
    def copying_meta(call):
        return {"task_analysis": "Upper-casing words.", "new_prompts": call.inputs["current_prompts"],
                "task_guidance": "The program must shout each word back in capitals."}

    program = _compile(lms, shout_data, ScriptedEngine(copying_meta), steps=2)
    results = program.meta_results_
    assert [(c.stage, c.score, c.accepted) for c in results.candidates] == [
        ("initial:copro", 0.0, True), ("prompt:copro", 1.0, True),
        ("prompt:copro", None, False), ("prompt:copro", None, False)]  # step 2: two attempts, nothing new
    assert "no new task guidance" in results.candidates[2].reason  # same guidance again changes nothing
    learned = results.best_optimizer.prompts["basic_generate_instruction"].instructions
    assert learned.startswith(COPRO.prompts["basic_generate_instruction"].instructions)
    assert learned.endswith("Task-specific guidance: The program must shout each word back in capitals.")


def test_guidance_replaces_earlier_guidance_and_keeps_accepted_rewrites():
    base = COPRO.prompts
    first = parse_prompt_proposal('{"basic_generate_instruction": "Rewritten by the meta LM."}', base,
                                  guidance="Sort words.")
    current = base.replace(**first)
    assert current["basic_generate_instruction"].instructions == "Rewritten by the meta LM."
    second = parse_prompt_proposal("", current, guidance="Sort words; output them only.")
    rewritten = second["basic_generate_instruction"].instructions
    assert rewritten == "Rewritten by the meta LM.\n\nTask-specific guidance: Sort words; output them only."
    other = second["generate_instruction_given_attempts"].instructions
    assert other.count("Task-specific guidance:") == 1 and other.endswith("output them only.")
