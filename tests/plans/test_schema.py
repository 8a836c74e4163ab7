import pytest

from dspy_meta.optimizers import OptimizerSpec
from dspy_meta.plans import PlanError, PlanLimits, plan_from_dict, plan_grammar, plan_json_schema


def test_the_grammar_shown_to_the_meta_lm_follows_the_models_and_the_limits():
    strict = plan_grammar(["copro"], PlanLimits(refs_only=True, max_branches=3, max_steps=5))
    assert '{"op": "optimize", "ref": NAME, "params": {...optional: lower numeric budgets only}}' in strict
    assert '"op": "optimize", "kind"' not in strict  # a refs-only plan cannot name an optimizer kind
    assert "(2 to 3 branches)" in strict and "At most 5 optimize nodes" in strict
    assert "Available names: ['copro']" in strict
    free = plan_grammar(["copro"], PlanLimits())
    assert '{"op": "optimize", "kind": KIND' in free


def test_the_json_schema_is_generated_from_the_same_models():
    schema = plan_json_schema()
    ops = {definition["properties"]["op"]["const"] for definition in schema["$defs"].values()}
    assert ops == {"optimize", "sequence", "best_of", "transform", "ensemble"}
    assert all(definition.get("additionalProperties") is False for definition in schema["$defs"].values())


@pytest.mark.parametrize("plan, message", [
    ({"op": "best_of", "branches": [{"op": "optimize", "kind": "copro"}, {"op": "optimize", "ref": "x"}]},
     r"plan.branches\[1\].ref: unknown optimizer 'x'"),
    ({"op": "sequence", "steps": [{"op": "optimize", "kind": "copro", "prompts": {}, "ref": "copro"}]},
     r"plan.steps\[0\]: unknown key\(s\) \['kind', 'prompts'\] beside 'ref'"),
    ({"op": "sequence", "steps": "copro"}, r"plan.steps: must be a list"),
    ({"op": "sequence", "steps": [{"op": "optimize", "ref": "copro", "params": {"depth": 5}}]},
     r"plan.steps\[0\].params.depth: may lower"),
])
def test_errors_name_the_json_path_inside_nested_plans(plan, message):
    library = {"copro": OptimizerSpec.create("copro", breadth=4, depth=2)}
    with pytest.raises(PlanError, match=message):
        plan_from_dict(plan, library=library, limits=PlanLimits(cap_overrides=True))
