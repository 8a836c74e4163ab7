"""`dspy-meta learn` on scripted LMs: a learned COPRO beats stock across tasks; the bundle, refusals, and
resuming after Ctrl-C and SIGKILL with no finished evaluation done twice (see learn_job.py for the toy)."""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dspy
import pytest
import yaml

from dspy_meta import MetaTeleprompter
from dspy_meta.benchmarks import load_task
from dspy_meta.errors import ConfigError, RunDirError
from dspy_meta.experiments import learn as learn_module
from dspy_meta.experiments.compare import score_examples
from dspy_meta.experiments.learn import run_learning
from dspy_meta.experiments.learn_cli import learn_command
from dspy_meta.experiments.learn_config import LearnConfig, load_learn_config
from dspy_meta.learning import load_bundle
from dspy_meta.experiments.learn_proposals import propose_transferable_prompts
from dspy_meta.optimizers.spec import OptimizerSpec
from dspy_meta.testing import ScriptedEngine

from .learn_job import COMMAND, TRANSFER_HINT, scripted_engines, stopping_after, transfer_meta

REPO = Path(__file__).resolve().parents[2]
LOCAL_CONFIG = REPO / "configs" / "learn" / "learn_local.yaml"  # not in configs/: see the config's header
CONFIG = {
    "name": "toy", "tasks": ["word_sorting_generated", "word_sorting_bbh_generated"],
    "task_kwargs": {"word_sorting_generated": {"max_words": 3, "n_train": 4, "n_val": 6, "n_test": 1},
                    "word_sorting_bbh_generated": {"min_words": 3, "max_words": 5, "n_train": 4, "n_val": 6,
                                                   "n_test": 1}},
    "lms": {"program": "scripted/p", "optimizer": "scripted/o", "meta": "scripted/m"},
    "kind": "copro", "params": {"breadth": 2, "depth": 1}, "space": {"breadth": [2, 3]}, "trials": 2, "seeds": [1],
}


def write_config(folder: Path, name: str = "learn", **changes) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "work_dir": str(folder / name), **changes}))
    return path


def learn(path: Path, engines=None):
    engines = engines or scripted_engines()
    bundle = run_learning(load_learn_config(path), lms={level: e.as_lm() for level, e in engines.items()},
                          command=COMMAND, progress=False)
    return bundle, {level: len(e.calls) for level, e in engines.items()}


def results_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path.parent / path.stem / "results.jsonl").read_text().splitlines()]


def calls_in(results: list[dict], level: str) -> int:
    return sum(part.get(level, {}).get("calls", 0) for r in results for part in r["usage"].values())


def timeless(results: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in results]


def bundle_data(bundle) -> dict:
    data = bundle.to_dict()
    data["provenance"].pop("created")
    return data


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: the toy learning run, start to end, with no stop."""
    path = write_config(tmp_path_factory.mktemp("learn"))
    bundle, calls = learn(path)
    return path, bundle, calls


def test_a_learned_copro_beats_stock_across_the_tasks_and_its_bundle_compiles(uninterrupted):
    path, bundle, calls = uninterrupted
    assert Path(load_learn_config(path).output) == path.parent / "learn" / "bundle.json"
    saved = load_bundle(path.parent / "learn" / "bundle.json")
    assert bundle_data(saved) == bundle_data(bundle)
    scores, provenance = saved.provenance.scores, saved.provenance
    assert scores["objective_per_trial"][0] == 0.0 and scores["best_trial"] >= 1
    assert scores["best_objective"] > 0 and all(gain > 0 for gain in scores["per_task_gain"].values())
    assert set(scores["stock_accuracy"]) == set(CONFIG["tasks"])
    assert scores["losses"] == dict.fromkeys(CONFIG["tasks"], 0)
    assert provenance.models == {"program": "scripted/p", "optimizer": "scripted/o", "meta": "scripted/m"}
    assert provenance.learning_tasks == CONFIG["tasks"] and provenance.seeds == [1] and provenance.command == COMMAND
    assert provenance.budgets["space"] == {"breadth": [2, 3]} and provenance.budgets["trials"] == 2
    assert provenance.budgets["task_sizes"]["word_sorting_generated"] == {"train": 4, "val": 6}
    # Every call is counted (the meters agree with what the engines saw).
    assert provenance.budgets["calls_spent"] == calls and calls["meta"] == 2
    learned = saved.spec("copro")
    assert all(TRANSFER_HINT in t.instructions for t in learned.prompts.values())
    record = json.loads((path.parent / "learn" / "record.json").read_text())
    assert record["complete"] and [t["objective"] for t in record["trials"]] == scores["objective_per_trial"]
    assert [t["prompts_from"] for t in record["trials"]] == ["stock", "meta", "meta"]
    # MetaTeleprompter(learned=...) compiles a task with the learned COPRO, with no meta-LM call.
    engines = scripted_engines()
    task = load_task("word_sorting_generated", max_words=4, n_train=4, n_val=6, n_test=1, seed=3)
    teleprompter = MetaTeleprompter(task.metric, task_model=engines["program"].as_lm(),
                                    prompt_model=engines["optimizer"].as_lm(), meta_model=engines["meta"].as_lm(),
                                    learned=str(path.parent / "learn" / "bundle.json"), display_progress=False)
    program = teleprompter.compile(task.make_program(), trainset=task.train, valset=task.val)
    assert program.learned_bundle_ == "toy" and not engines["meta"].calls
    scores = score_examples(program, task.val, task.metric, scripted_engines()["program"].as_lm(), 1)
    assert scores == [1.0] * len(task.val)


def test_the_meta_lm_sees_every_task_and_a_rejected_proposal_is_asked_again_with_the_reason():
    answers = iter(["not json", None])

    def meta(call):
        answer = next(answers)
        return transfer_meta(call) if answer is None else {"analysis": "-", "new_prompts": answer}

    engine = ScriptedEngine(meta)
    stock = OptimizerSpec.create("copro")
    proposal = propose_transferable_prompts(engine.as_lm(), stock, task_examples="=== Task a\n...\n=== Task b\n...",
                                            history="none yet", key="k")
    assert proposal.spec is not None and len(proposal.rejections) == 1 and "not valid JSON" in proposal.rejections[0]
    assert "rejected" in engine.calls[1].inputs["feedback"] and "=== Task b" in engine.calls[0].inputs["task_examples"]
    failing = ScriptedEngine(lambda call: {"analysis": "-", "new_prompts": "[]"})
    assert propose_transferable_prompts(failing.as_lm(), stock, task_examples="-", history="-", key="k").spec is None
    assert len(failing.calls) == 2


def test_a_trial_whose_proposal_fails_keeps_the_best_prompts_and_a_repeated_candidate_is_not_rerun(tmp_path):
    engines = {**scripted_engines(), "meta": ScriptedEngine(lambda call: {"analysis": "-", "new_prompts": "{"})}
    path = write_config(tmp_path, trials=1, space={"breadth": [2]})
    bundle, calls = learn(path, engines)
    trial = json.loads((tmp_path / "learn" / "trials" / "0001.json").read_text())
    assert trial["prompts_from"] == "best kept" and len(trial["proposal"]["rejections"]) == 2
    assert OptimizerSpec.from_dict(trial["spec"]) == OptimizerSpec.create("copro", breadth=2, depth=1)
    results = results_of(path)
    assert [r.get("reused_from") for r in results] == [None, None, 0, 0]
    assert calls["program"] == calls_in(results[:2], "program") and calls["meta"] == 2
    assert bundle.provenance.scores["best_trial"] == 0  # no trial beat stock: the bundle holds stock COPRO


def test_held_out_tasks_and_bad_settings_are_refused_naming_the_key(tmp_path, capsys):
    for change, message in [({"tasks": ["word_sorting_generated", "gym_spell_backward"]}, "held-out evaluation"),
                            ({"space": {"breadth": [1, 2]}}, "space.breadth: parameter 'breadth' must be >= 2"),
                            ({"space": {"width": [2]}}, "space: copro has no parameter 'width'"),
                            ({"task": "word_sorting_generated"}, "names its tasks as a list under `tasks`"),
                            ({"trails": 3}, r"unknown key\(s\) \['trails'\]")]:
        with pytest.raises(ConfigError, match=message):
            LearnConfig.from_dict({**CONFIG, **change})
    args = argparse.Namespace(config=str(write_config(tmp_path, tasks=["mmlu_professional_law"])), verbose=False)
    assert learn_command(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "held-out" in err[0] and not (tmp_path / "learn").exists()


def test_a_changed_config_refuses_to_resume_naming_what_changed(tmp_path):
    path = write_config(tmp_path, trials=0)
    learn(path)
    for change, changed in [({"params": {"breadth": 3, "depth": 1}}, "reference_params"),
                            ({"space": {"breadth": [2, 4]}}, "space"),
                            ({"task_kwargs": {**CONFIG["task_kwargs"], "word_sorting_generated": {"max_words": 4}}},
                             "task_kwargs.word_sorting_generated")]:
        engines = scripted_engines()
        with pytest.raises(RunDirError, match=f"other settings \\(changed: [^)]*{changed}"):
            learn(write_config(tmp_path, trials=0, **change), engines)
        assert not any(e.calls for e in engines.values())


def test_more_trials_extend_a_finished_run_and_a_finished_run_makes_no_call(tmp_path, uninterrupted, monkeypatch,
                                                                          capsys):
    path = write_config(tmp_path, trials=1)
    _, first = learn(path)
    extended = write_config(tmp_path, trials=2)  # same work_dir: `trials` may change between resumes
    bundle, second = learn(extended)
    results = results_of(extended)
    assert second["program"] == calls_in(results[4:], "program") > 0 and second["meta"] == 1
    assert bundle_data(bundle) == bundle_data(uninterrupted[1])
    assert timeless(results) == timeless(results_of(uninterrupted[0]))
    _, third = learn(extended)
    assert third == {"program": 0, "optimizer": 0, "meta": 0}
    # The command line on the finished run: the summary, and no call.
    engines = scripted_engines()
    monkeypatch.setattr(learn_module, "_build_lms", lambda config: {k: e.as_lm() for k, e in engines.items()})
    assert learn_command(argparse.Namespace(config=str(extended), verbose=False)) == 0
    out = capsys.readouterr().out
    assert "best: trial 1" in out and f"bundle: {tmp_path / 'learn' / 'bundle.json'}" in out
    assert not any(e.calls for e in engines.values())


def test_ctrl_c_loses_at_most_the_evaluation_in_flight(tmp_path, uninterrupted):
    path = write_config(tmp_path)
    results_file = tmp_path / "learn" / "results.jsonl"

    def interrupt():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        learn(path, scripted_engines(stopping_after(3, results_file, interrupt)))
    before = results_of(path)
    assert len(before) == 3
    bundle, calls = learn(path)
    after = results_of(path)
    assert after[:3] == before and calls["program"] == calls_in(after[3:], "program")
    assert bundle_data(bundle) == bundle_data(uninterrupted[1])


def test_a_killed_run_resumes_with_no_finished_evaluation_run_again(tmp_path, uninterrupted):
    path = write_config(tmp_path)
    blocked = tmp_path / "blocked"
    env = {**os.environ, "LEARN_JOB_BLOCK_AFTER": "3", "LEARN_JOB_BLOCKED": str(blocked)}
    job = subprocess.Popen([sys.executable, str(REPO / "tests" / "experiments" / "learn_job.py"), str(path)],
                           cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while not blocked.exists():  # the job says when it is inside its 4th evaluation; polling only waits
            assert job.poll() is None, job.communicate()[0].decode()[-3000:]
            assert time.monotonic() < deadline, "the job never reached its 4th evaluation"
            time.sleep(0.05)
    finally:
        job.send_signal(signal.SIGKILL)
        job.wait(timeout=60)
    assert job.returncode == -signal.SIGKILL
    before = results_of(path)
    assert len(before) == 3  # trial 0 on both tasks, trial 1 on the first; trial 1's second was in flight
    assert sorted(p.name for p in (tmp_path / "learn" / "trials").iterdir()) == ["0000.json", "0001.json"]

    engines = scripted_engines()
    bundle, calls = learn(path, engines)
    after = results_of(path)
    assert after[:3] == before
    keys = [(r["trial"], r["task"], r["seed"]) for r in after]
    assert len(set(keys)) == len(keys) == 6
    # Every call of the resumed run went to an evaluation it had to do, or to trial 2's proposal (trial 1's was
    # on file): nothing finished before the kill ran again.
    assert calls["program"] == calls_in(after[3:], "program") and calls["optimizer"] == calls_in(after[3:], "optimizer")
    trial_2 = json.loads((tmp_path / "learn" / "trials" / "0002.json").read_text())
    assert calls["meta"] == trial_2["meta_usage"]["meta"]["calls"] == 1
    # And it ends where the uninterrupted run ends.
    assert timeless(after) == timeless(results_of(uninterrupted[0]))
    assert bundle_data(bundle) == bundle_data(uninterrupted[1])
    assert bundle_data(load_bundle(tmp_path / "learn" / "bundle.json")) == bundle_data(uninterrupted[1])


def test_the_shipped_local_learning_config_is_valid():
    config = load_learn_config(LOCAL_CONFIG)
    assert config.kind == "copro" and config.trials >= 10 and len(config.tasks) >= 3
    assert config.lms["program"].model == "qwen2.5-coder-0.5b"
    assert all(config.resolved_task_kwargs(t).get("n_val", 50) >= 50 for t in config.tasks)
    assert dspy.settings.lm is None  # nothing was loaded
