"""Reliability, second round: secrets, fingerprints, corrupt checkpoints, limits and resume, bad scores and inputs,
failing calls, rate limits."""

import json
import logging
import math
import traceback

import dspy
import numpy as np
import pytest
from dspy.lm15 import AuthError, RateLimitError

from dspy_meta import MetaTeleprompter
from dspy_meta.errors import ConfigError, MetricError, PlanError, RunDirError, RunFailed
from dspy_meta.experiments import ExperimentConfig
from dspy_meta.plans import parse_plan
from dspy_meta.runtime import calls
from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.scripted_lm import register_litellm_provider
from dspy_meta.testing.toy_task import Shout, aligning_meta_responder, shout_metric, shout_program_responder

from .conftest import TINY, compile_toy, toy_engines


def _calls(engines):
    return [len(e.calls) for e in engines]


# -- secrets ------------------------------------------------------------------------------------
def test_query_string_credentials_never_reach_run_json(tmp_path, shout_data):
    secrets = ["AIzaPLANTEDquerykey1234567890", "PLANTEDsasSignature%2Babc"]
    lms = []
    for level, engine in zip(("program", "optimizer", "meta"), toy_engines(), strict=True):
        register_litellm_provider(f"scripted-q-{level}", engine)
        lms.append(dspy.LM(f"scripted-q-{level}/model", cache=False,
                           api_base=f"https://x.example.invalid/v1?key={secrets[0]}&sv=2024&sig={secrets[1]}"))
    MetaTeleprompter(shout_metric, budget=TINY, seed=0, display_progress=False, run_dir=str(tmp_path),
                     task_model=lms[0], prompt_model=lms[1], meta_model=lms[2], max_bootstrapped_demos=1,
                     max_labeled_demos=0).compile(Shout(), trainset=shout_data[0], valset=shout_data[1])
    manifest = (tmp_path / "run.json").read_text()
    assert "x.example.invalid" in manifest and all(secret not in manifest for secret in secrets)
    for path in tmp_path.rglob("*.json"):
        assert all(secret not in path.read_text() for secret in secrets), path


def test_config_check_refuses_query_string_credentials():
    with pytest.raises(ConfigError, match=r"lms.program.kwargs.api_base: holds credentials"):
        ExperimentConfig.from_dict({"name": "x", "task": "word_sorting_generated", "lms": {
            "program": {"model": "openai/m", "kwargs": {"api_base": "https://h.invalid/v1?key=abcdef123456"}},
            "optimizer": "openai/m", "meta": "openai/m"}})


def test_provider_error_quoting_a_key_is_redacted_in_run_failed(shout_data, caplog):
    secret = "my-team-key-PLANTED-0042"
    engines = toy_engines()
    engines[2] = ScriptedEngine(lambda call: AuthError(f"Incorrect API key provided: {secret}. Check your key."))
    with caplog.at_level(logging.DEBUG, logger="dspy_meta"), pytest.raises(RunFailed) as failure:
        compile_toy(engines, shout_data)
    shown = "".join(traceback.format_exception(failure.value))
    assert "Incorrect API key provided: ***" in str(failure.value)
    assert secret not in shown and all(secret not in r.getMessage() for r in caplog.records)


# -- fingerprints -------------------------------------------------------------------------------
def _metric(lenient: bool):
    if lenient:
        def metric(example, prediction, trace=None):
            return float(str(getattr(prediction, "answer", "")).strip().upper() == example.answer)
    else:
        def metric(example, prediction, trace=None):
            return float(str(getattr(prediction, "answer", "")).strip() == example.answer)
    return metric


def _student_class(variant: int):
    if variant == 0:
        class Student(Shout):
            def forward(self, word):
                return self.answer(word=word)
    else:
        class Student(Shout):
            def forward(self, word):
                return self.answer(word=word.strip())
    return Student


def test_resume_refuses_a_changed_metric_naming_it(tmp_path, shout_data):
    engines = toy_engines()
    run = dict(budget=TINY, seed=0, display_progress=False, max_bootstrapped_demos=1, max_labeled_demos=0,
               run_dir=str(tmp_path), task_model=engines[0].as_lm(), prompt_model=engines[1].as_lm(),
               meta_model=engines[2].as_lm())
    MetaTeleprompter(_metric(False), **run).compile(Shout(), trainset=shout_data[0], valset=shout_data[1])
    with pytest.raises(RunDirError, match=r"differs in \['metric_code'\]"):
        MetaTeleprompter(_metric(True), **run).compile(Shout(), trainset=shout_data[0], valset=shout_data[1])


def test_resume_refuses_a_changed_program_class_naming_it(tmp_path, shout_data):
    engines = toy_engines()
    run = dict(budget=TINY, seed=0, display_progress=False, max_bootstrapped_demos=1, max_labeled_demos=0,
               run_dir=str(tmp_path), task_model=engines[0].as_lm(), prompt_model=engines[1].as_lm(),
               meta_model=engines[2].as_lm())
    MetaTeleprompter(shout_metric, **run).compile(_student_class(0)(), trainset=shout_data[0], valset=shout_data[1])
    with pytest.raises(RunDirError, match=r"differs in \['student_code'\]"):
        MetaTeleprompter(shout_metric, **run).compile(_student_class(1)(), trainset=shout_data[0],
                                                      valset=shout_data[1])


# -- corrupt checkpoints ------------------------------------------------------------------------
def test_corrupt_checkpoints_are_named_set_aside_and_recomputed(tmp_path, shout_data, caplog):
    first = compile_toy(toy_engines(), shout_data, run_dir=str(tmp_path)).meta_results_
    docs = sorted((tmp_path / "candidates").glob("*.json"))
    truncated, no_usage = docs[0], docs[1]
    truncated.write_text(truncated.read_text()[:40])
    damaged = json.loads(no_usage.read_text())
    del damaged["usage"]
    no_usage.write_text(json.dumps(damaged))
    engines = toy_engines()
    with caplog.at_level(logging.WARNING, logger="dspy_meta"):
        again = compile_toy(engines, shout_data, run_dir=str(tmp_path)).meta_results_
    assert again.to_dict() == first.to_dict()
    named = " ".join(caplog.messages)
    assert truncated.name in named and no_usage.name in named
    assert truncated.with_suffix(".corrupt").exists() and no_usage.with_suffix(".corrupt").exists()
    assert sum(_calls(engines)) > 0  # the two pieces of work were done again


def test_unreadable_manifest_is_named(tmp_path, shout_data):
    compile_toy(toy_engines(), shout_data, run_dir=str(tmp_path))
    (tmp_path / "run.json").write_text('{"optimizer": "MetaTel')
    with pytest.raises(RunDirError, match=r"run\.json.* is unreadable"):
        compile_toy(toy_engines(), shout_data, run_dir=str(tmp_path))


# -- usage limits and resume --------------------------------------------------------------------
def test_a_run_stopped_by_a_limit_resumes_with_a_higher_one_and_stops_at_once_with_the_same(tmp_path, shout_data):
    stopped = compile_toy(toy_engines(), shout_data, run_dir=str(tmp_path),
                          usage_limits={"program_calls": 25}).meta_results_
    assert stopped.stopped_reason.startswith("budget: ")
    engines = toy_engines()
    same = compile_toy(engines, shout_data, run_dir=str(tmp_path), usage_limits={"program_calls": 25}).meta_results_
    # Calls in flight hold their place under the limit, so the first run may stop a call or two short of it
    # (evaluations run on several threads); the resumed run spends at most what is left, never more.
    assert same.stopped_reason.startswith("budget: ") and same.usage["program"].calls <= 25
    assert _calls(engines)[0] <= 25 - stopped.usage["program"].calls
    assert len(same.candidates) >= len(stopped.candidates)
    raised = compile_toy(toy_engines(), shout_data, run_dir=str(tmp_path),
                         usage_limits={"program_calls": 100_000}).meta_results_
    unlimited = compile_toy(toy_engines(), shout_data).meta_results_
    assert raised.stopped_reason is None and raised.best_score == unlimited.best_score == 1.0
    assert len(raised.candidates) == len(unlimited.candidates)


def test_a_cost_limit_on_lms_without_a_price_is_refused_at_start(shout_data):
    engines = toy_engines()
    with pytest.raises(ConfigError, match="'total_cost' cannot be enforced: no price is known"):
        compile_toy(engines, shout_data, usage_limits={"total_cost": 1.0})
    assert _calls(engines) == [0, 0, 0]


def test_failing_calls_are_counted_so_a_call_cap_stops_them(shout_data, monkeypatch):
    # One word still gets an answer, so the program does not fail on every example; the outage rule (every call
    # failing the same way) is lifted here so that the cap, not the outage, is what stops the run.
    monkeypatch.setattr("dspy_meta.runtime.outage.FIRST_CALLS", 1000)
    monkeypatch.setattr("dspy_meta.runtime.outage.IN_A_ROW", 1000)
    engines = toy_engines(lambda call: shout_program_responder(call) if call.inputs.get("word") == shout_data[1][0].word
                          else RuntimeError("the engine crashed"))
    results = compile_toy(engines, shout_data, usage_limits={"program_calls": 20}).meta_results_
    assert results.stopped_reason.startswith("budget: program calls limit 20")
    # at most the calls in flight on the other threads of DSPy's evaluator pass the cap (before: all 9 candidates ran)
    assert results.usage["program"].calls >= 20 and len(engines[0].calls) < 20 + dspy.settings.num_threads


# -- scores and inputs --------------------------------------------------------------------------
def test_a_nan_score_is_a_metric_failure_not_a_lost_best_program(shout_data, caplog):
    def nan_when_wrong(example, prediction, trace=None):
        return 1.0 if shout_metric(example, prediction) else math.nan

    engines = toy_engines()
    teleprompter = MetaTeleprompter(nan_when_wrong, budget=TINY, seed=0, display_progress=False,
                                    max_metric_failures=100, task_model=engines[0].as_lm(),
                                    prompt_model=engines[1].as_lm(), meta_model=engines[2].as_lm(),
                                    max_bootstrapped_demos=1, max_labeled_demos=0)
    with caplog.at_level(logging.WARNING, logger="dspy_meta"):
        results = teleprompter.compile(Shout(), trainset=shout_data[0], valset=shout_data[1]).meta_results_
    assert results.baseline_score == 0.0 and results.best_score == 1.0 and not results.returned_baseline
    assert any("returned nan, not a finite score" in m for m in caplog.messages)


def test_a_metric_that_is_never_finite_stops_the_run_naming_the_metric(shout_data):
    # An infinite score counts as a metric failure; a metric that never once returns a finite score is broken,
    # and the run says so instead of spending every level's calls and returning the student.
    engines = toy_engines()
    teleprompter = MetaTeleprompter(lambda e, p, t=None: math.inf, budget=TINY, display_progress=False,
                                    max_metric_failures=2, task_model=engines[0].as_lm())
    with pytest.raises(MetricError, match="the metric fails on every example"):
        teleprompter.compile(Shout(), trainset=shout_data[0], valset=shout_data[1])


def test_a_numpy_infinite_score_cannot_win(shout_data):
    # numpy.float32 is no Python float: its inf passed the finite check and won, accepted.
    engines = toy_engines()
    results = compile_toy(engines, shout_data, max_metric_failures=100,
                          metric=lambda e, p, t=None: np.float32("inf") if shout_metric(e, p) else 0.0).meta_results_
    assert results.returned_baseline and all(c.score is None or math.isfinite(c.score) for c in results.candidates)


@pytest.mark.parametrize("where, seed", [("constructor", None), ("constructor", "x"), ("compile", "x"),
                                         ("compile", 1.5), ("constructor", -1)])
def test_a_bad_seed_is_refused_before_any_call(shout_data, where, seed):
    engines = toy_engines()
    kwargs = {"seed": seed} if where == "constructor" else {}
    teleprompter = MetaTeleprompter(shout_metric, budget=TINY, display_progress=False, task_model=engines[0].as_lm(),
                                    **kwargs)
    with pytest.raises(TypeError, match="seed must be a non-negative integer"):
        teleprompter.compile(Shout(), trainset=shout_data[0], valset=shout_data[1],
                             **({"seed": seed} if where == "compile" else {}))
    assert _calls(engines) == [0, 0, 0]


@pytest.mark.parametrize("setting, value", [("num_threads", "4"), ("num_threads", 0), ("call_timeout", math.inf),
                                            ("call_timeout", 1e300)])
def test_a_bad_thread_budget_or_call_timeout_is_refused_before_any_call(shout_data, setting, value):
    # before: a TypeError naming nothing, or (an infinite timeout) an OverflowError on every LM call
    engines = toy_engines()
    with pytest.raises(ValueError, match=rf"{setting} must be a positive"):
        compile_toy(engines, shout_data, **{setting: value})
    assert _calls(engines) == [0, 0, 0]


def test_valset_items_missing_a_label_are_refused(shout_data):
    engines = toy_engines()
    valset = [*shout_data[1], dspy.Example(word="plum").with_inputs("word")]
    with pytest.raises(ValueError, match=rf"valset\[{len(valset) - 1}\] lacks the label\(s\) \['answer'\]"):
        compile_toy(engines, (shout_data[0], valset))
    assert _calls(engines) == [0, 0, 0]


def test_deeply_nested_plans_are_plan_errors():
    for text in ["[" * 100_000 + "]" * 100_000,
                 '{"op": "optimize", "kind": "copro", "params": ' + '{"a": ' * 5000 + "1" + "}" * 5001]:
        with pytest.raises(PlanError, match="nested too deeply"):
            parse_plan(text)


# -- rate limits --------------------------------------------------------------------------------
def _rate_limited(first_failures: int):
    state = {"n": 0}

    def respond(call):
        state["n"] += 1
        if state["n"] <= first_failures:
            error = RateLimitError("slow down")
            error.retry_after = 0  # DSPy retries at once; no hint for the longer wait after it
            return error
        return aligning_meta_responder(call)
    return respond


def test_a_rate_limit_outage_longer_than_dspys_retries_is_waited_out(shout_data, monkeypatch):
    waits = []
    monkeypatch.setattr(calls, "_sleep", waits.append)
    clean = compile_toy(toy_engines(), shout_data).meta_results_
    engines = toy_engines()
    engines[2] = ScriptedEngine(_rate_limited(10))  # 10 refused tries: DSPy's 4 twice, then 2 more
    results = compile_toy(engines, shout_data).meta_results_
    assert waits == [8.0, 16.0]
    assert results.best_score == clean.best_score and len(results.candidates) == len(clean.candidates)


def test_rate_limit_patience_is_bounded(shout_data, monkeypatch):
    waits = []
    monkeypatch.setattr(calls, "_sleep", waits.append)
    engines = toy_engines()
    engines[2] = ScriptedEngine(_rate_limited(10_000))
    with pytest.raises(RunFailed, match="the meta LM is unavailable after retries"):
        compile_toy(engines, shout_data)
    assert waits and sum(waits) <= calls.DEFAULT_RATE_LIMIT_WAIT_S
