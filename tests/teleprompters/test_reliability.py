import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dspy
import pytest
from dspy.lm15 import AuthError

from dspy_meta import MetaTeleprompter
from dspy_meta.errors import RunFailed
from dspy_meta.testing import FaultInjector, ScriptedEngine
from dspy_meta.testing.scripted_lm import register_litellm_provider
from dspy_meta.testing.toy_task import (
    Shout, aligning_meta_responder, shout_examples, shout_metric,
)

from .conftest import TINY, compile_toy, toy_engines

ROOT = Path(__file__).resolve().parents[2]


def _engines(faults=None):
    return toy_engines(faults=faults)


_compile = compile_toy


def _outcome(results):
    return [(c.stage, c.score, c.accepted, c.reused, c.plan) for c in results.candidates]


def _job(run_dir, out):
    return [sys.executable, "-m", "tests.teleprompters.resume_job", str(run_dir), str(out)]


def test_sigkill_midway_then_resume_gives_the_uninterrupted_result(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(_job(tmp_path / "clean", tmp_path / "clean.json"), cwd=ROOT, env=env, check=True, timeout=300)
    clean = json.loads((tmp_path / "clean.json").read_text())

    crashed_dir = tmp_path / "crashed"
    job = subprocess.Popen(_job(crashed_dir, tmp_path / "never.json"), cwd=ROOT, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((crashed_dir / "candidates").glob("*.json"))) < 3:
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.wait(30)
    assert job.returncode == -signal.SIGKILL and not (tmp_path / "never.json").exists()
    finished_before_kill = len(list((crashed_dir / "candidates").glob("*.json")))
    assert finished_before_kill >= 3

    subprocess.run(_job(crashed_dir, tmp_path / "resumed.json"), cwd=ROOT, env=env, check=True, timeout=300)
    resumed = json.loads((tmp_path / "resumed.json").read_text())
    assert resumed["results"] == clean["results"]  # same candidates, scores, plans and usage totals
    assert resumed["instructions"] == clean["instructions"]
    # finished candidates were not run again: the resumed process made fewer program and optimizer calls
    assert resumed["calls"][0] < clean["calls"][0] and resumed["calls"][1] < clean["calls"][1]


def test_resume_refuses_a_different_run(tmp_path, shout_data):
    _compile(_engines(), shout_data, run_dir=str(tmp_path))
    with pytest.raises(ValueError, match="holds a different run .*seed"):
        _compile(_engines(), shout_data, run_dir=str(tmp_path), seed=1)


def test_completed_run_resumes_without_any_lm_call(tmp_path, shout_data):
    first = _compile(_engines(), shout_data, run_dir=str(tmp_path)).meta_results_
    engines = _engines()
    again = _compile(engines, shout_data, run_dir=str(tmp_path)).meta_results_
    assert again.to_dict() == first.to_dict()
    assert [len(e.calls) for e in engines] == [0, 0, 0]


@pytest.mark.parametrize("limits, level", [({"program_calls": 25}, "program"), ({"total_calls": 40}, None),
                                           ({"meta_calls": 1}, "meta")])
def test_usage_limits_stop_cleanly_and_are_never_overshot_by_concurrent_calls(shout_data, limits, level):
    results = _compile(_engines(), shout_data, usage_limits=limits, num_threads=4).meta_results_
    cap = next(iter(limits.values()))
    used = results.usage[level].calls if level else sum(u.calls for u in results.usage.values())
    print(f"limit {limits}: used {used} calls")
    assert results.stopped_reason.startswith("budget: ")
    # Calls in flight hold their place under the limit: 4 threads never pass it (they did by up to 3 calls);
    # a call that ends while another asks may be counted twice for an instant, so a run can stop a little early.
    assert cap - 3 <= used <= cap
    unlimited = _compile(_engines(), shout_data).meta_results_
    assert len(results.candidates) < len(unlimited.candidates)


def test_faulty_lms_give_the_same_result(shout_data):
    clean = _compile(_engines(), shout_data)
    injector = FaultInjector(rate=0.2)
    engines = _engines(injector)
    faulty = _compile(engines, shout_data)
    total = sum(len(e.calls) for e in engines)
    print(f"injected {injector.injected} faults in {total} calls")
    assert sum(injector.injected.values()) >= 0.1 * total
    assert injector.injected["transient"] > 0 and injector.injected["malformed"] > 0
    assert _outcome(faulty.meta_results_) == _outcome(clean.meta_results_)
    assert faulty.answer.predict.signature.instructions == clean.answer.predict.signature.instructions


@pytest.mark.parametrize("threads", [None, 4])
def test_permanent_lm_error_stops_at_once_with_a_clear_message(shout_data, threads):
    engines = _engines()
    engines[2] = ScriptedEngine(lambda call: AuthError("invalid API key"))
    start = time.time()
    with pytest.raises(RunFailed, match="the meta LM failed permanently: .*invalid API key"):
        _compile(engines, shout_data, num_threads=threads)
    assert len(engines[2].calls) == 1 and time.time() - start < 30


def test_metric_that_raises_on_some_examples_counts_them_as_failed(shout_data, caplog):
    def flaky_metric(example, prediction, trace=None):
        if example.word == shout_data[1][0].word and getattr(prediction, "answer", "") != example.answer:
            raise KeyError("boom")
        return shout_metric(example, prediction, trace)

    engines = _engines()
    teleprompter = MetaTeleprompter(flaky_metric, budget=TINY, seed=0, display_progress=False,
                                    task_model=engines[0].as_lm(), prompt_model=engines[1].as_lm(),
                                    meta_model=engines[2].as_lm(), max_bootstrapped_demos=1, max_labeled_demos=0)
    with caplog.at_level(logging.WARNING, logger="dspy_meta"):
        results = teleprompter.compile(Shout(), trainset=shout_data[0], valset=shout_data[1]).meta_results_
    assert results.best_score == 1.0
    assert any("metric raised on an example" in m for m in caplog.messages)


def _no_inputs():
    return [dspy.Example(word="a", answer="A"), dspy.Example(word="b", answer="B")]


BAD_INPUTS = [
    ("empty trainset", dict(trainset=[]), ValueError, "must not be empty"),
    ("one example, no valset", dict(trainset=shout_examples(1), valset=None), ValueError, "at least 2"),
    ("inputs not marked", dict(valset=_no_inputs()), ValueError, "with_inputs"),
    ("valset lacks input", dict(valset=[dspy.Example(text="a", answer="A").with_inputs("text")]), ValueError,
     r"lacks the program's input\(s\) \['word'\]"),
    ("not examples", dict(valset=[{"word": "a"}]), TypeError, "must be a dspy.Example"),
    ("metric not callable", dict(metric="accuracy"), TypeError, "metric must be callable"),
    ("metric takes one argument", dict(metric=lambda e: 1.0), TypeError, r"must accept \(example, prediction\)"),
    ("no predictors", dict(student=dspy.Module()), ValueError, "no predictors"),
    ("unknown kind", dict(optimizers={"x": {"kind": "textgrad"}}), TypeError, "must be an OptimizerSpec"),
    ("bad budget", dict(budget={"prompt_steps": "many"}), ValueError, "must be an integer"),
    ("bad usage limit", dict(usage_limits={"total_calls": -5}), ValueError, "must be an integer >= 0"),
    ("unknown usage limit", dict(usage_limits={"dollars": 5}), ValueError, "unknown usage limit"),
]


@pytest.mark.parametrize("case, change, error, message", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_fails_before_any_lm_call(shout_data, case, change, error, message):
    engines = _engines()
    settings = {"metric": shout_metric, "budget": TINY, "display_progress": False}
    data = {"trainset": shout_data[0], "valset": shout_data[1]}
    student = change.pop("student", Shout())
    for key in list(change):
        (data if key in data else settings)[key] = change.pop(key)
    with pytest.raises(error, match=message):
        MetaTeleprompter(task_model=engines[0].as_lm(), prompt_model=engines[1].as_lm(),
                         meta_model=engines[2].as_lm(), **settings).compile(student, **data)
    assert [len(e.calls) for e in engines] == [0, 0, 0]


def test_secrets_never_reach_artifacts_or_logs(tmp_path, shout_data, caplog, monkeypatch):
    secret = "sk-PLANTED-5f3a9c1e7b"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    lms = []
    for level, engine in zip(("program", "optimizer", "meta"), _engines(), strict=True):
        register_litellm_provider(f"scripted-{level}", engine)  # the real litellm path, served offline
        lms.append(dspy.LM(f"scripted-{level}/model", api_key=secret, cache=False,
                           api_base=f"https://user:{secret}@example.invalid/v1"))
    with caplog.at_level(logging.DEBUG):
        program = MetaTeleprompter(shout_metric, budget=TINY, seed=0, display_progress=False,
                                   run_dir=str(tmp_path / "run"), task_model=lms[0], prompt_model=lms[1],
                                   meta_model=lms[2], max_bootstrapped_demos=1, max_labeled_demos=0).compile(
            Shout(), trainset=shout_data[0], valset=shout_data[1])
        program.save(str(tmp_path / "program.json"))
        (tmp_path / "results.json").write_text(json.dumps(program.meta_results_.to_dict()))
    artifacts = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(artifacts) > 5
    for path in artifacts:
        assert secret not in path.read_text(errors="replace"), path
    assert caplog.records and all(secret not in record.getMessage() for record in caplog.records)
    assert program.meta_results_.best_score == 1.0  # the run really went through the keyed LMs


def test_lm_outage_after_retries_stops_the_run_without_leaking_credentials(tmp_path, shout_data, caplog):
    from dspy.lm15 import TransportError

    secret = "sk-PLANTED-outage-93ab"

    def unreachable(call):
        error = TransportError(f"cannot connect to https://user:{secret}@llm.example.invalid/v1")
        error.retry_after = 0
        return error

    engines = _engines()
    engines[2] = ScriptedEngine(unreachable)
    with caplog.at_level(logging.WARNING, logger="dspy_meta"), \
            pytest.raises(RunFailed, match="the meta LM is unavailable after retries") as failure:
        _compile(engines, shout_data, run_dir=str(tmp_path))
    assert len(engines[2].calls) == 4  # DSPy's first try and three retries
    assert secret not in str(failure.value) and "***@llm.example.invalid" in str(failure.value)
    assert all(secret not in p.read_text() for p in tmp_path.rglob("*.json"))
    assert all(secret not in r.getMessage() for r in caplog.records)
    # finished work was checkpointed: a resumed run does not repeat it
    assert (tmp_path / "candidates").exists() and not list((tmp_path / "proposals").glob("*.json"))


def test_metric_failure_cap_fails_the_candidate(shout_data):
    def fragile_metric(example, prediction, trace=None):
        if getattr(prediction, "answer", None) != example.answer:
            raise ValueError("cannot compare")
        return 1.0

    engines = _engines()
    teleprompter = MetaTeleprompter(fragile_metric, budget=TINY, seed=0, display_progress=False, max_metric_failures=0,
                                    task_model=engines[0].as_lm(), prompt_model=engines[1].as_lm(),
                                    meta_model=engines[2].as_lm(), max_bootstrapped_demos=1, max_labeled_demos=0)
    results = teleprompter.compile(Shout(), trainset=shout_data[0], valset=shout_data[1]).meta_results_
    # every candidate evaluates some wrong program (inner optimizers score bad instructions too): all fail,
    # the baseline cannot be scored either, and the run still ends cleanly with the student unchanged
    scored = [c for c in results.candidates if not c.reused and c.plan is not None]
    assert scored and all(c.score is None and "TooManyMetricFailures" in c.reason for c in scored)
    assert results.baseline_score is None and results.returned_baseline


def test_resume_refuses_other_lms(tmp_path, shout_data):
    _compile(_engines(), shout_data, run_dir=str(tmp_path))
    engines = _engines()
    engines[2] = ScriptedEngine(aligning_meta_responder, model="another-meta-model")
    with pytest.raises(ValueError, match=r"holds a different run .*'lms'"):
        _compile(engines, shout_data, run_dir=str(tmp_path))
