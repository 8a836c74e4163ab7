"""The experiment runner: stale results are refused or recomputed, config errors are found before any work."""

import json
import logging

import pytest

from dspy_meta.errors import ConfigError, StaleResults
from dspy_meta.experiments import ExperimentConfig, run_experiment
from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.toy_task import aligning_meta_responder, shout_optimizer_responder

from .test_runner import sorting_program

BASE = {"name": "scripted", "task": {"name": "word_sorting_generated",
                                     "kwargs": {"max_words": 3, "n_train": 6, "n_val": 8, "n_test": 10}},
        "lms": {"program": "scripted/p", "optimizer": "scripted/o", "meta": "scripted/m"},
        "methods": ["zero_shot_cot", "few_shot_cot"], "seeds": [0], "max_bootstrapped_demos": 1,
        "max_labeled_demos": 0}


def _engines(model="scripted"):
    return {"program": ScriptedEngine(sorting_program, model=model),
            "optimizer": ScriptedEngine(shout_optimizer_responder), "meta": ScriptedEngine(aligning_meta_responder)}


def _lms(engines):
    return {level: engine.as_lm(f"scripted/{engine.model}") for level, engine in engines.items()}


def test_a_changed_config_is_refused_naming_the_runs_then_recomputed_with_force(tmp_path, caplog):
    config = ExperimentConfig.from_dict(BASE)
    run_experiment(config, output=tmp_path, lms=_lms(_engines()))
    changed = ExperimentConfig.from_dict({**BASE, "max_bootstrapped_demos": 2})
    engines = _engines()
    with pytest.raises(StaleResults, match=r"few_shot_cot/seed0 \(differs in \['config'\]\).*--force"):
        run_experiment(changed, output=tmp_path, lms=_lms(engines))
    assert all(not e.calls for e in engines.values())  # refused before any work
    with caplog.at_level(logging.WARNING, logger="dspy_meta"):
        results = run_experiment(changed, output=tmp_path, lms=_lms(engines), force=True)
    assert engines["program"].calls  # recomputed
    assert any("recomputing" in m for m in caplog.messages)
    record = json.loads((tmp_path / "few_shot_cot" / "seed0" / "record.json").read_text())
    assert record["fingerprint"]["config"]["max_bootstrapped_demos"] == 2
    assert results["config"]["max_bootstrapped_demos"] == 2


def test_another_lm_is_refused_and_unchanged_runs_are_reused_saying_so(tmp_path, caplog):
    config = ExperimentConfig.from_dict(BASE)
    run_experiment(config, output=tmp_path, lms=_lms(_engines()))
    with pytest.raises(StaleResults, match=r"differs in \['lms'\]"):
        run_experiment(config, output=tmp_path, lms=_lms(_engines(model="another")))
    engines = _engines()
    with caplog.at_level(logging.WARNING, logger="dspy_meta"):
        run_experiment(config, output=tmp_path, lms=_lms(engines))
    assert all(not e.calls for e in engines.values())
    assert sum("reusing the finished result" in m for m in caplog.messages) == 2


@pytest.mark.parametrize("change, message", [
    ({"task": {"name": "word_sorting_generated", "kwargs": {"n_trian": 6}}}, r"unknown setting\(s\) \['n_trian'\]"),
    ({"task": {"name": "word_sorting_generated", "kwargs": {"n_train": 1}}}, "too few examples"),
    ({"lms": {"program": "gpt4", "optimizer": "scripted/o", "meta": "scripted/m"}}, "unknown model 'gpt4'"),
])
def test_config_errors_are_found_before_the_first_method(tmp_path, change, message):
    engines = _engines()
    with pytest.raises(ConfigError, match=message):
        run_experiment(ExperimentConfig.from_dict({**BASE, **change}), output=tmp_path, lms=_lms(engines))
    assert all(not e.calls for e in engines.values()) and not (tmp_path / "zero_shot_cot").exists()


def test_an_unknown_provider_is_found_before_any_work(tmp_path):
    config = ExperimentConfig.from_dict({**BASE, "lms": {"program": "nosuchprovider/m", "optimizer": "openai/o",
                                                         "meta": "openai/m"}})
    with pytest.raises(ConfigError, match="unknown provider 'nosuchprovider'"):
        run_experiment(config, output=tmp_path)
    assert not list(tmp_path.iterdir())


def test_a_single_seed_number_means_that_seed_and_bad_seeds_are_refused(tmp_path):
    assert ExperimentConfig.from_dict({**BASE, "seeds": 0}).seeds == (0,)
    with pytest.raises(ConfigError, match="seeds: must be one or more non-negative integers"):
        run_experiment(ExperimentConfig.from_dict(BASE), seeds=[-1], output=tmp_path, lms=_lms(_engines()))
