import os
import time
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
    ({"task": {"name": "word_sorting_generated", "kwargs": {"n_train": "4"}}},
     "task.kwargs.n_train: must be an integer, got '4'"),
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


@pytest.mark.parametrize("api_base", ["https://sk-PLANTED0042@host/v1", "https://host/v1?subscription-key=PLANTED0042",
                                      "https://host/v1?access_key=PLANTED0042", "https://host/key/PLANTED0042/v1",
                                      "https://host/v1?q=1%26api_key%3DPLANTED0042"])
def test_credentials_of_every_url_shape_are_refused_in_api_base(api_base):
    data = {**MINIMAL, "lms": {**MINIMAL["lms"], "meta": {"model": "openai/x", "kwargs": {"api_base": api_base}}}}
    with pytest.raises(ConfigError, match="lms.meta.kwargs.api_base: holds credentials") as refused:
        ExperimentConfig.from_dict(data)
    assert "PLANTED0042" not in str(refused.value)


def test_yaml_aliases_are_refused_before_they_expand(tmp_path):
    # A "billion laughs" tree: each level repeats the one below ten times (here 10**6 leaves; an 866-byte
    # config of this shape made `dspy-meta run` exhaust memory).
    levels = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 6)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("name: x\ntask: word_sorting_generated\nlms:\n  program:\n    model: openai/m\n"
                    "    kwargs:\n      laughs:\n" + "".join(f"        {line}\n" for line in levels) +
                    "  optimizer: openai/m\n  meta: openai/m\n")
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"bomb.yaml: line 9: YAML aliases \(\*a0\) are not allowed"):
        load_config(bomb)
    assert time.perf_counter() - started < 1.0


def test_paths_in_configs_start_at_the_home_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    config = ExperimentConfig.from_dict({**MINIMAL, "output_dir": "~/runs"})
    assert config.output_dir == os.path.join(str(tmp_path), "runs")
