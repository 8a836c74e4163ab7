import json

import pytest

from dspy_meta.optimizers import OptimizerSpec, PromptTemplate, available_kinds, get_kind


def test_all_required_kinds_are_registered():
    assert {"copro", "mipro_v2", "bootstrap_fewshot", "gepa"} <= set(available_kinds())


@pytest.mark.parametrize("kind", ["copro", "mipro_v2", "bootstrap_fewshot", "gepa"])
def test_json_round_trip_is_exact(kind):
    spec = OptimizerSpec.create(kind, label="mine")
    if spec.prompts:
        name = next(iter(spec.prompts))
        spec = spec.with_prompts(**{name: PromptTemplate("Rewritten ✓ prompt", {})})
    text = spec.to_json()
    again = OptimizerSpec.from_json(text)
    assert again == spec
    assert again.to_json() == text
    assert json.loads(text)["kind"] == kind


def test_defaults_come_from_the_installed_dspy():
    from dspy.propose import grounded_proposer

    spec = OptimizerSpec.create("mipro_v2")
    assert spec.prompts["describe_program"].instructions == grounded_proposer.DescribeProgram.instructions
    assert set(spec.prompts) == set(get_kind("mipro_v2").default_prompts())
    assert OptimizerSpec.create("bootstrap_fewshot").prompts == {}


def test_with_prompts_string_keeps_field_descriptions():
    spec = OptimizerSpec.create("copro")
    new = spec.with_prompts(basic_generate_instruction="Sort words, then propose.")
    assert new.prompts["basic_generate_instruction"].instructions == "Sort words, then propose."
    assert (new.prompts["basic_generate_instruction"].field_descriptions
            == spec.prompts["basic_generate_instruction"].field_descriptions)
    assert new.fingerprint() != spec.fingerprint()
    assert spec.with_params(breadth=3).params["breadth"] == 3 and spec.params["breadth"] == 10


@pytest.mark.parametrize("data, message", [
    ({"kind": "nope"}, "unknown optimizer kind 'nope'"),
    ({"kind": "copro", "params": {"breadth": "ten"}}, "'breadth' must be an integer"),
    ({"kind": "copro", "params": {"breadth": True}}, "'breadth' must be an integer"),
    ({"kind": "copro", "params": {"breadth": 1}}, "'breadth' must be >= 2"),
    ({"kind": "copro", "params": {"init_temperature": 9.0}}, "must be <= 2.0"),
    ({"kind": "copro", "params": {"speed": 1}}, "unknown parameter"),
    ({"kind": "copro", "prompts": {"nope": {"instructions": "x"}}}, "unknown prompt name"),
    ({"kind": "copro", "prompts": {"basic_generate_instruction": {"instructions": ""}}}, "non-empty"),
    ({"kind": "copro", "extra": 1}, "unknown optimizer spec key"),
    ({"params": {}}, "needs a 'kind'"),
    ({"kind": "mipro_v2", "params": {"auto": "turbo"}}, "must be one of"),
    ({"kind": "mipro_v2", "params": {"num_trials": None}}, "num_candidates and num_trials"),
])
def test_invalid_specs_say_what_is_wrong(data, message):
    with pytest.raises(ValueError, match=message):
        OptimizerSpec.from_dict(data)


def test_malformed_json_is_rejected():
    with pytest.raises(ValueError, match="not valid JSON"):
        OptimizerSpec.from_json("{kind: copro")


def test_save_and_load(tmp_path):
    spec = OptimizerSpec.create("copro", breadth=3).with_prompts(basic_generate_instruction="Be concise.")
    spec.save(tmp_path / "spec.json")
    assert OptimizerSpec.load(tmp_path / "spec.json") == spec


def test_build_requires_callable_metric():
    with pytest.raises(TypeError, match="metric must be callable"):
        OptimizerSpec.create("copro").build(metric="accuracy")
