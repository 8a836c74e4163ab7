"""The meta LM's worked examples must be valid answers: a small model copies them closely."""

import json
import re

from dspy_meta.optimizers import OptimizerSpec
from dspy_meta.optimizers.prompts import PromptSet, PromptTemplate
from dspy_meta.plans.nodes import PlanLimits, Sequential, TransformStep, parse_plan
from dspy_meta.search.proposals import ProposeCompositeOptimizer, ProposeOptimizerPrompts, parse_prompt_proposal


def _worked_example(instructions: str) -> str:
    assert "Worked example" in instructions
    return instructions.split("Worked example", 1)[1]


def test_the_worked_plan_parses_under_the_structure_searchs_limits():
    example = _worked_example(ProposeCompositeOptimizer.instructions)
    plan_text = " ".join(example.split("plan:", 1)[1].split())
    library = {"bootstrap": OptimizerSpec.create("bootstrap_fewshot"), "copro": OptimizerSpec.create("copro")}
    plan = parse_plan(plan_text, library=library, limits=PlanLimits(refs_only=True, cap_overrides=True))
    assert isinstance(plan, Sequential)
    assert isinstance(plan.nodes[-1], TransformStep) and plan.nodes[-1].kind == "normalize"


def test_the_worked_prompt_rewrite_is_an_accepted_proposal():
    example = _worked_example(ProposeOptimizerPrompts.instructions)
    guidance = re.search(r"task_guidance:(.*?)new_prompts:", example, re.S).group(1)
    new_prompts = example.split("new_prompts:", 1)[1].strip()
    assert json.loads(new_prompts) == {}
    current = PromptSet({"basic": PromptTemplate("Propose an instruction.", {})})
    updates = parse_prompt_proposal(new_prompts, current, guidance=guidance)
    assert "count day by day" in updates["basic"].instructions
