"""Learned-optimizer bundles: a versioned, checked file of specs, plan and provenance."""

import json
import logging

import pytest

from dspy_meta import OptimizerSpec
from dspy_meta.errors import ConfigError
from dspy_meta.learning import BUNDLE_FORMAT, LearnedBundle, load_bundle, shipped_bundles

MODELS = {"program": "qwen2.5-coder-0.5b", "optimizer": "qwen2.5-coder-1.5b", "meta": "qwen2.5-coder-1.5b"}


def make_bundle(**changes) -> LearnedBundle:
    copro = OptimizerSpec.create("copro", breadth=2, depth=1)
    learned = copro.with_prompts(basic_generate_instruction="Write an instruction that makes the task explicit.")
    kwargs = {"models": MODELS, "learning_tasks": ["word_sorting_generated", "mmlu_miscellaneous"],
              "seeds": [1, 2], "scores": {"objective": 0.07}, "command": "dspy-meta learn configs/learn_local.yaml",
              **changes}
    return LearnedBundle.create("test", {"copro": learned}, {"op": "optimize", **learned.to_dict()}, **kwargs)


def test_a_bundle_round_trips_through_its_file_with_provenance(tmp_path):
    bundle = make_bundle()
    path = bundle.save(tmp_path / "b.json")
    data = json.loads(path.read_text())
    assert data["format"] == BUNDLE_FORMAT and data["version"] == 1
    assert data["provenance"]["models"] == MODELS and data["provenance"]["dspy_version"].startswith("3.4")
    loaded = load_bundle(path)
    assert loaded == bundle
    spec = loaded.spec("copro")
    assert isinstance(spec, OptimizerSpec) and spec.params["breadth"] == 2
    assert spec.prompts["basic_generate_instruction"].instructions.startswith("Write an instruction")
    assert loaded.plan_node().describe() == "copro"


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.update(format="something-else"), "not a dspy-meta learned-optimizer bundle"),
    (lambda d: d["optimizers"]["copro"].update(kind="nope"), "optimizer 'copro' is not a valid spec"),
    (lambda d: d["optimizers"]["copro"]["params"].update(breadth="many"), "optimizer 'copro' is not a valid spec"),
    (lambda d: d.update(plan={"op": "loop"}), "plan"),
    (lambda d: d["provenance"]["models"].pop("meta"), "missing \\['meta'\\]"),
    (lambda d: d.update(version=99), "version"),
    (lambda d: d.update(extra=1), "unknown bundle key"),
])
def test_a_damaged_bundle_is_refused_naming_the_problem(tmp_path, edit, match):
    data = make_bundle().to_dict()
    edit(data)
    path = tmp_path / "b.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=match):
        load_bundle(path)


def test_missing_and_unreadable_bundles_say_what_ships(tmp_path):
    with pytest.raises(ConfigError, match="no learned-optimizer bundle 'nowhere.json'.*shipped: "):
        load_bundle("nowhere.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot be read as JSON"):
        load_bundle(tmp_path / "x.json")
    assert all(path.is_file() for path in shipped_bundles().values())
    with pytest.raises(ConfigError, match="has no optimizer 'gepa'"):
        make_bundle().spec("gepa")


def test_a_bundle_from_another_dspy_minor_version_loads_with_a_warning(tmp_path, caplog):
    data = make_bundle().to_dict()
    data["provenance"]["dspy_version"] = "3.2.0"
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING, logger="dspy_meta.learning.bundle"):
        bundle = load_bundle(path)
    assert bundle.name == "test" and "learned with DSPy 3.2.0" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dspy_meta.learning.bundle"):
        load_bundle(make_bundle().save(tmp_path / "new.json"))
    assert not caplog.text
