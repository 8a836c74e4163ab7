import json

import pytest

from dspy_meta.experiments import ExperimentConfig, run_experiment
from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.toy_task import MAGIC_WORD, aligning_meta_responder, shout_optimizer_responder


def sorting_program(call):
    """Program LM: sorts the list only when its instruction carries the magic word."""
    words = call.inputs.get("question", "").split("List:")[-1].split()
    return {"reasoning": "-", "answer": " ".join(sorted(words) if MAGIC_WORD in call.instructions else words)}


@pytest.fixture
def config():
    return ExperimentConfig.from_dict({
        "name": "scripted", "task": {"name": "word_sorting_generated",
                                     "kwargs": {"max_words": 3, "n_train": 6, "n_val": 8, "n_test": 10}},
        "lms": {"program": "scripted/p", "optimizer": "scripted/o", "meta": "scripted/m"},
        "budget": {"prompt_steps": 1, "structure_steps": 1, "copro_breadth": 2, "copro_depth": 1,
                   "mipro_candidates": 2, "mipro_trials": 2},
        "methods": ["zero_shot_cot", "few_shot_cot", "copro", "meta_teleprompter"], "seeds": [0, 1],
        "max_bootstrapped_demos": 1, "max_labeled_demos": 0,
    })


def test_runs_every_method_and_seed_and_writes_outputs(config, tmp_path):
    lms = {"program": ScriptedEngine(sorting_program).as_lm(),
           "optimizer": ScriptedEngine(shout_optimizer_responder).as_lm(),
           "meta": ScriptedEngine(aligning_meta_responder).as_lm()}
    results = run_experiment(config, output=tmp_path, lms=lms)
    assert [(r["method"], r["seed"]) for r in results["runs"]] == [
        (m, s) for s in (0, 1) for m in config.methods]
    summary = results["summary"]
    sorted_already = summary["zero_shot_cot"]["test"]["mean"]  # lists that happen to be in order
    assert sorted_already < 1.0
    assert summary["meta_teleprompter"]["test"]["mean"] == 1.0
    assert summary["copro"]["test"]["mean"] == pytest.approx(sorted_already)  # unaligned COPRO finds nothing
    assert summary["meta_teleprompter"]["usage"]["meta"]["calls"] > 0
    assert summary["zero_shot_cot"]["usage"]["program"]["calls"] == 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["summary"].keys() == summary.keys()
    table = (tmp_path / "results.md").read_text()
    assert "| meta_teleprompter | 1.00 ± 0.00 | 1.00 ± 0.00 |" in table
    assert (tmp_path / "trajectory.png").read_bytes()[:4] == b"\x89PNG"
    learned = json.loads((tmp_path / "meta_teleprompter" / "seed0" / "learned_optimizers.json").read_text())
    assert "copro" in learned["best_optimizers"]
    assert (tmp_path / "copro" / "seed1" / "program.json").exists()
    trajectory = [r for r in results["runs"] if r["method"] == "meta_teleprompter"][0]["trajectory"]
    calls = [c for c, _ in trajectory]
    assert calls == sorted(calls) and trajectory[-1][1] == 1.0


def test_rerunning_the_same_command_resumes_without_lm_calls(config, tmp_path):
    def engines():
        return {"program": ScriptedEngine(sorting_program), "optimizer": ScriptedEngine(shout_optimizer_responder),
                "meta": ScriptedEngine(aligning_meta_responder)}

    first_engines = engines()
    first = run_experiment(config, output=tmp_path, lms={k: e.as_lm() for k, e in first_engines.items()})
    assert (tmp_path / "meta_teleprompter" / "seed0" / "checkpoint" / "run.json").exists()
    assert all(e.calls for e in first_engines.values())
    again_engines = engines()
    again = run_experiment(config, output=tmp_path, lms={k: e.as_lm() for k, e in again_engines.items()})
    assert again["summary"] == first["summary"]
    # every method/seed finished before: nothing is called again
    assert [len(e.calls) for e in again_engines.values()] == [0, 0, 0]
