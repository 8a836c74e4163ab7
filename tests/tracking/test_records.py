"""What a tracker logs, as plain data (no tracking library needed)."""

from types import SimpleNamespace

from dspy_meta.runtime.usage import LevelUsage
from dspy_meta.search.results import CandidateRecord
from dspy_meta.tracking import NullTracker, open_tracker
from dspy_meta.tracking.records import (
    candidate_metrics, candidate_params, clip, flatten, plan_kind, plan_prompts, run_params, running_best, scrub,
)

SECRET = "sk-PLANTED-records-41bd9a"
PLAN = {"op": "sequence", "steps": [
    {"op": "optimize", "kind": "copro", "params": {"breadth": 2}, "prompts": {"basic": {"instructions": "Shout."}}},
    {"op": "best_of", "branches": [{"op": "optimize", "kind": "bootstrap_fewshot", "params": {}},
                                   {"op": "transform", "kind": "normalize", "params": {"steps": ["strip"]}}]}]}


def test_clip_keeps_short_text_and_marks_a_cut():
    assert clip("short", 10) == "short"
    cut = clip("x" * 7000, 6000)
    assert len(cut) == 6000 and cut.endswith("[truncated]")


def test_flatten_leaves_out_prompts_and_credentials():
    flat = flatten({"a": {"b": [5, True]}, "prompts": {"p": "long"}, "api_key": SECRET,
                    "url": f"https://user:{SECRET}@host/v1"}, "plan", skip=("prompts",))
    assert flat == {"plan.a.b.0": "5", "plan.a.b.1": "True", "plan.url": "https://***@host/v1"}


def test_scrub_drops_secret_settings_and_redacts_text_at_any_depth():
    value = scrub({"state": [{"lm": {"model": "openai/x", "api_key": SECRET, "extra_headers": {"a": "b"},
                                     "api_base": f"https://u:{SECRET}@h"}}], "note": f"key={SECRET}"})
    assert value["state"][0]["lm"] == {"model": "openai/x", "api_base": "https://***@h"}
    assert SECRET not in str(value)


def test_plan_kind_and_prompts_name_every_step():
    assert plan_kind({"op": "optimize", "kind": "copro"}) == "copro"
    assert plan_kind(PLAN) == "sequence(copro, bootstrap_fewshot, normalize)"
    assert plan_kind(None) == "none (rejected proposal)"
    assert plan_prompts(PLAN) == {"steps.0:copro": {"basic": {"instructions": "Shout."}}}
    assert plan_prompts({"op": "optimize", "kind": "copro", "prompts": {"p": 1}}) == {"copro": {"p": 1}}
    assert plan_prompts(None) == {}


def test_candidate_params_and_metrics_of_a_scored_and_a_rejected_candidate():
    scored = CandidateRecord(index=3, stage="structure", plan=PLAN, score=0.5, lineage="structure", best_before=0.25,
                             accepted=True, usage={"program": LevelUsage(calls=4, input_tokens=40, output_tokens=8)})
    params = candidate_params(scored)
    assert params["optimizer"] == "sequence(copro, bootstrap_fewshot, normalize)"
    assert params["plan.steps.0.params.breadth"] == "2" and not any("prompts" in key for key in params)
    metrics = candidate_metrics(scored)
    assert metrics["score"] == 0.5 and metrics["accepted"] == 1.0 and metrics["best_before"] == 0.25
    assert metrics["usage.program.calls"] == 4.0 and metrics["usage.program.output_tokens"] == 8.0
    rejected = CandidateRecord(index=4, stage="structure", plan=None, reason="bad JSON")
    assert candidate_params(rejected)["optimizer"] == "none (rejected proposal)"
    assert candidate_metrics(rejected) == {"accepted": 0.0}


def test_running_best_follows_the_candidate_order():
    records = [SimpleNamespace(index=i, score=s) for i, s in enumerate([None, 0.2, None, 0.1, 0.6])]
    assert running_best(records) == [(1, 0.2), (2, 0.2), (3, 0.2), (4, 0.6)]


def test_run_params_hold_model_strings_only():
    lms = {"program": SimpleNamespace(model="openai/gpt-4o-mini", kwargs={"api_key": SECRET})}
    params = run_params(budget={"prompt_steps": 2}, lms=lms,
                        inputs={"copro": {"kind": "copro", "params": {"breadth": 4}, "prompts": {"p": "text"}}},
                        settings={"seed": 0})
    assert params == {"budget.prompt_steps": "2", "model.program": "openai/gpt-4o-mini", "optimizers": "copro=copro",
                      "input.copro.kind": "copro", "input.copro.params.breadth": "4", "seed": "0"}


def test_tracking_is_off_unless_asked_for_or_autologged():
    assert isinstance(open_tracker(None), NullTracker)  # no autolog in this test: nothing to follow
    assert isinstance(open_tracker(False), NullTracker)
