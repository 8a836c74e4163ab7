import json

import pytest

from dspy_meta.optimizers import OptimizerSpec
from dspy_meta.plans import BestOf, OptimizeStep, PlanError, PlanLimits, Sequential, parse_plan, plan_from_dict

TWO_STEP = {"op": "sequence", "steps": [
    {"op": "optimize", "kind": "copro", "params": {"breadth": 3, "depth": 1}},
    {"op": "optimize", "kind": "bootstrap_fewshot", "params": {"max_bootstrapped_demos": 2, "max_labeled_demos": 0}},
]}


def test_parses_and_round_trips():
    plan = parse_plan(json.dumps(TWO_STEP))
    assert isinstance(plan, Sequential)
    assert [s.spec.kind for s in plan.steps()] == ["copro", "bootstrap_fewshot"]
    assert plan.steps().__next__().spec.params["breadth"] == 3
    assert plan_from_dict(plan.to_dict()) == plan
    assert plan.describe() == "copro -> bootstrap_fewshot"


def test_accepts_a_json_fence_and_library_refs():
    library = {"tuned_copro": OptimizerSpec.create("copro", breadth=2).with_prompts(
        basic_generate_instruction="Tuned.")}
    text = "```json\n" + json.dumps({"op": "best_of", "branches": [
        {"op": "optimize", "ref": "tuned_copro"},
        {"op": "optimize", "ref": "tuned_copro", "params": {"depth": 1}}]}) + "\n```"
    plan = parse_plan(text, library=library)
    assert isinstance(plan, BestOf)
    first, second = plan.nodes
    assert isinstance(first, OptimizeStep) and first.spec == library["tuned_copro"]
    assert second.spec.params["depth"] == 1
    assert second.spec.prompts["basic_generate_instruction"].instructions == "Tuned."
    assert plan.describe() == "best_of(tuned_copro | tuned_copro)"


def _nest(depth):
    node = {"op": "optimize", "kind": "copro"}
    for _ in range(depth - 1):
        node = {"op": "sequence", "steps": [node]}
    return node


@pytest.mark.parametrize("plan, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be an object"),
    ({"op": "loop", "steps": []}, "plan.op: must be one of"),
    ({"op": "optimize", "kind": "textgrad"}, "unknown optimizer kind 'textgrad'"),
    ({"op": "optimize", "kind": "copro", "params": {"breadth": "5"}}, "plan: parameter 'breadth' must be an integer"),
    ({"op": "optimize", "kind": "copro", "params": {"depth": 99}}, "'depth' must be <= 10"),
    ({"op": "optimize", "kind": "copro", "code": "import os"}, "unknown key"),
    ({"op": "optimize", "ref": "missing"}, "plan.ref: unknown optimizer 'missing'"),
    ({"op": "sequence", "steps": []}, "plan.steps: must be a non-empty list"),
    ({"op": "sequence", "steps": [{"op": "optimize", "kind": "copro"}, {"op": "optimize"}]},
     r"plan.steps\[1\]: missing key\(s\) \['kind'\]"),
    ({"op": "best_of", "branches": [{"op": "optimize", "kind": "copro"}]}, "best_of needs 2 to 4 branches"),
    ({"op": "sequence", "steps": [{"op": "optimize", "kind": "copro"}] * 9}, "9 optimize steps; at most 8"),
    (_nest(5), "deeper than 4 levels"),
    ({"op": "sequence"}, "missing key"),
])
def test_invalid_plans_are_rejected_with_a_reason(plan, message):
    with pytest.raises(PlanError, match=message):
        if isinstance(plan, str):
            parse_plan(plan)
        else:
            plan_from_dict(plan)


def test_limits_are_configurable():
    assert plan_from_dict(_nest(5), limits=PlanLimits(max_depth=5))
    with pytest.raises(PlanError, match="at most 1"):
        plan_from_dict(TWO_STEP, limits=PlanLimits(max_steps=1))


def test_meta_plans_may_only_use_the_library_and_lower_budgets():
    library = {"copro": OptimizerSpec.create("copro", breadth=4, depth=2),
               "mipro": OptimizerSpec.create("mipro_v2", num_candidates=4, num_trials=6)}
    strict = PlanLimits(refs_only=True, cap_overrides=True)
    lowered = plan_from_dict({"op": "optimize", "ref": "copro", "params": {"breadth": 2}}, library=library,
                             limits=strict)
    assert lowered.spec.params["breadth"] == 2
    with pytest.raises(PlanError, match="use an available optimizer by name"):
        plan_from_dict({"op": "optimize", "kind": "gepa", "params": {"max_metric_calls": 100000}},
                       library=library, limits=strict)
    with pytest.raises(PlanError, match=r"plan.params.breadth: may lower .* \(4\) but not raise it \(got 50\)"):
        plan_from_dict({"op": "optimize", "ref": "copro", "params": {"breadth": 50}}, library=library, limits=strict)
    with pytest.raises(PlanError, match="only numeric budgets may be overridden"):
        plan_from_dict({"op": "optimize", "ref": "mipro", "params": {"auto": "heavy"}}, library=library,
                       limits=strict)


def test_a_name_written_as_the_op_is_repaired_when_repairs_are_asked_for():
    # The 1.5B meta LM wrote {"op": "bootstrap_fewshot"} in a word-sorting comparison run.
    library = {"bootstrap_fewshot": OptimizerSpec.create("bootstrap_fewshot", max_bootstrapped_demos=2),
               "copro": OptimizerSpec.create("copro", breadth=2, depth=1)}
    text = json.dumps({"op": "sequence", "steps": [{"op": "bootstrap_fewshot"},
                                                   {"op": "normalize", "params": {"steps": "strip"}}]})
    with pytest.raises(PlanError, match=r"plan.steps\[0\].op: must be one of"):
        parse_plan(text, library=library)  # strict unless the caller takes repairs
    repairs = []
    plan = parse_plan(text, library=library, repairs=repairs)
    assert plan.to_dict() == parse_plan(json.dumps({"op": "sequence", "steps": [
        {"op": "optimize", "ref": "bootstrap_fewshot"},
        {"op": "transform", "kind": "normalize", "params": {"steps": "strip"}}]}), library=library).to_dict()
    assert repairs == ['plan.steps[0]: "op": "bootstrap_fewshot" read as {"op": "optimize", "ref": "bootstrap_fewshot"}',
                       'plan.steps[1]: "op": "normalize" read as {"op": "transform", "kind": "normalize"}']
    # A name that is neither an optimizer of the library nor a transform is still refused, with its path.
    with pytest.raises(PlanError, match=r"plan.op: must be one of .*got 'mipro_v2'"):
        parse_plan(json.dumps({"op": "mipro_v2"}), library=library, repairs=[])
