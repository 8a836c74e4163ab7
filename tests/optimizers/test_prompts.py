import dspy
import pytest
from dspy.teleprompt import copro_optimizer

from dspy_meta.optimizers import PromptSet, PromptTemplate


def test_reads_installed_dspy_text():
    template = PromptTemplate.from_signature(copro_optimizer.BasicGenerateInstruction)
    assert template.instructions == copro_optimizer.BasicGenerateInstruction.instructions
    assert template.field_descriptions["proposed_instruction"] == "The improved instructions for the language model"


def test_apply_rewrites_text_but_not_interface():
    template = PromptTemplate("Be brief.", {"basic_instruction": "What we had."})
    updated = template.apply(copro_optimizer.BasicGenerateInstruction)
    assert updated.instructions == "Be brief."
    assert updated.fields["basic_instruction"].json_schema_extra["desc"] == "What we had."
    assert list(updated.fields) == list(copro_optimizer.BasicGenerateInstruction.fields)
    # the installed class is untouched
    assert copro_optimizer.BasicGenerateInstruction.instructions != "Be brief."


def test_apply_rejects_unknown_fields_unless_lenient():
    template = PromptTemplate("x", {"no_such_field": "y"})
    with pytest.raises(ValueError, match="no_such_field"):
        template.apply(copro_optimizer.BasicGenerateInstruction)
    assert template.apply(copro_optimizer.BasicGenerateInstruction, strict=False).instructions == "x"


@pytest.mark.parametrize("bad", [{"instructions": ""}, {"instructions": 3}, {"instructions": "x", "extra": 1},
                                 {"instructions": "x", "field_descriptions": {"a": 1}},
                                 {"instructions": "x" * 9000}])
def test_invalid_templates_are_rejected(bad):
    with pytest.raises(ValueError):
        PromptTemplate.from_dict(bad)


def test_round_trip_and_replace():
    prompts = PromptSet({"a": PromptTemplate("one", {"f": "d"})})
    assert PromptSet({k: PromptTemplate.from_dict(v) for k, v in prompts.to_dict().items()}) == prompts
    replaced = prompts.replace(a=PromptTemplate("two"))
    assert replaced["a"].instructions == "two" and prompts["a"].instructions == "one"
    with pytest.raises(KeyError):
        prompts.replace(b=PromptTemplate("x"))
    with pytest.raises(TypeError):
        PromptSet({"a": "not a template"})
    assert isinstance(dspy.Signature, type)
