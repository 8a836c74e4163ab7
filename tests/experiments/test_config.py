from pathlib import Path

import pytest

from dspy_meta.experiments import ConfigError, ExperimentConfig, load_config

# compare_*.yaml are comparison configs, checked in test_compare.py
CONFIGS = sorted(p for p in Path(__file__).resolve().parents[2].joinpath("configs").glob("*.yaml")
                 if not p.name.startswith("compare_"))
MINIMAL = {"name": "x", "task": "word_sorting_generated",
           "lms": {"program": "qwen2.5-coder-0.5b", "optimizer": "qwen2.5-coder-1.5b", "meta": "openai/gpt-4o"}}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_are_valid(path):
    config = load_config(path)
    assert config.methods and config.seeds
    assert ExperimentConfig.from_dict(config.to_dict()) == config


def test_minimal_config_gets_defaults():
    config = ExperimentConfig.from_dict(MINIMAL)
    assert config.lms["meta"].model == "openai/gpt-4o" and config.seeds == (0,)


@pytest.mark.parametrize("change, message", [
    ({"speed": 1}, "config: unknown key"),
    ({"lms": {"program": "a/b", "optimizer": "a/b"}}, "lms: missing key"),
    ({"lms": {**MINIMAL["lms"], "meta": {"model": "openai/x", "kwargs": {"api_key": "sk-123"}}}}, "look like secrets"),
    ({"lms": {**MINIMAL["lms"], "meta": {"modle": "openai/x"}}}, "lms.meta: unknown key"),
    ({"task": "imagenet"}, "task.name: unknown task"),
    ({"methods": ["magic"]}, "methods: unknown method"),
    ({"seeds": [-1]}, r"seeds\[0\]: must be an integer"),
    ({"budget": {"prompt_steps": "two"}}, "budget: budget 'prompt_steps' must be an integer"),
    ({"num_threads": 0}, "num_threads: must be an integer >= 1"),
    ({"name": "../etc"}, "name: must be letters"),
])
def test_bad_configs_name_the_key(change, message):
    with pytest.raises(ConfigError, match=message):
        ExperimentConfig.from_dict({**MINIMAL, **change})


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize("kwargs", [{"api_base": "https://user:pw@host/v1"}, {"extra_headers": {"X": "y"}},
                                    {"Authorization": "Bearer abcdefgh"}])
def test_credentials_are_refused_in_configs(kwargs):
    data = {**MINIMAL, "lms": {**MINIMAL["lms"], "meta": {"model": "openai/x", "kwargs": kwargs}}}
    with pytest.raises(ConfigError, match="lms.meta.kwargs"):
        ExperimentConfig.from_dict(data)
