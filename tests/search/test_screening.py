import json

from dspy_meta.teleprompters import MetaBudget, MetaPromptOptimizer
from dspy_meta.optimizers import OptimizerSpec
from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.toy_task import Shout, shout_metric, shout_optimizer_responder, shout_program_responder

ALIGNED = OptimizerSpec.create("copro", breadth=2, depth=1).with_prompts(
    basic_generate_instruction="Propose an instruction to shout words.")


def _worsening(call):
    current = json.loads(call.inputs["current_prompts"])
    return {"task_analysis": "?", "task_guidance": "", "new_prompts": json.dumps({k: "Any." for k in current})}


def _run(data, screen_size):
    engines = [ScriptedEngine(lambda c: shout_program_responder(c, demos_help=False)),
               ScriptedEngine(shout_optimizer_responder), ScriptedEngine(_worsening)]
    program = MetaPromptOptimizer(
        shout_metric, ALIGNED, budget=MetaBudget(prompt_steps=1, screen_size=screen_size), seed=0,
        display_progress=False, task_model=engines[0].as_lm(), prompt_model=engines[1].as_lm(),
        meta_model=engines[2].as_lm()).compile(Shout(), trainset=data[0], valset=data[1])
    return program.meta_results_, engines


def test_a_clearly_worse_candidate_stops_after_its_minibatch(shout_data):
    full, full_engines = _run(shout_data, screen_size=0)
    screened, screened_engines = _run(shout_data, screen_size=2)
    assert [c.accepted for c in screened.candidates] == [c.accepted for c in full.candidates] == [True, False]
    assert screened.candidates[1].reason.startswith("screened out: 0.000 on a 2-example minibatch")
    assert screened.best_score == full.best_score == 1.0
    saved = full.usage["program"].calls - screened.usage["program"].calls
    assert saved == len(shout_data[1]) - 2  # the rest of the validation set was never asked


def test_a_promising_candidate_is_scored_on_the_full_valset(shout_data, lms):
    program = MetaPromptOptimizer(shout_metric, OptimizerSpec.create("copro", breadth=2, depth=1),
                                  budget=MetaBudget(prompt_steps=1, screen_size=2), seed=0, display_progress=False,
                                  **lms).compile(Shout(), trainset=shout_data[0], valset=shout_data[1])
    initial, proposal = program.meta_results_.candidates
    assert proposal.accepted and proposal.score == 1.0 and proposal.reason.startswith("improved on the best of prompt:")


def test_small_minibatches_screen_out_only_clear_losers():
    from dspy_meta.search.screening import screening_bound

    # the local demo's case: 1 of 5 right while the best has 7 of 20: too little evidence to stop it
    assert screening_bound(0.2, 5, 0.9) > 0.35
    # nothing right on 10 examples while the best is perfect: clearly worse
    assert screening_bound(0.0, 10, 0.9) < 1.0
    # more examples or less confidence give tighter bounds
    assert screening_bound(0.2, 40, 0.9) < screening_bound(0.2, 10, 0.9) < screening_bound(0.2, 10, 0.99)


def test_screening_confidence_is_validated():
    import pytest

    with pytest.raises(ValueError, match="screen_confidence_pct"):
        MetaBudget(screen_confidence_pct=100)
