"""The equal-budget comparison with scripted LMs: the cap holds for every method, resume, the outputs."""

import json
from pathlib import Path

import dspy
import pytest

from dspy_meta.experiments.capped_lm import CallCapReached, CallMeter, capped
from dspy_meta.experiments.compare import ConfigChanged, run_comparison
from dspy_meta.experiments.compare_config import COMPARE_METHODS, DEFAULTS_METHODS, CompareConfig, load_compare_config
from dspy_meta.experiments.config import ConfigError
from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.toy_task import MAGIC_WORD, aligning_meta_responder, shout_optimizer_responder


def sorting_program(call):
    """Program LM: sorts the list only when its instruction carries the magic word."""
    words = call.inputs.get("question", "").split("List:")[-1].split()
    return {"reasoning": "-", "answer": " ".join(sorted(words) if MAGIC_WORD in call.instructions else words)}


def engines():
    return {"program": ScriptedEngine(sorting_program), "optimizer": ScriptedEngine(shout_optimizer_responder),
            "meta": ScriptedEngine(aligning_meta_responder)}


def make_config(**changes):
    data = {"name": "scripted", "task": {"name": "word_sorting_generated",
                                         "kwargs": {"max_words": 3, "n_train": 6, "n_val": 8, "n_test": 10}},
            "lms": {"program": "scripted/p", "optimizer": "scripted/o", "meta": "scripted/m"},
            "program_calls": 12, "seeds": [1, 2],
            "settings": {"copro": {"breadth": 2, "depth": 1}, "mipro_v2": {"num_candidates": 2},
                         "demos": {"max_bootstrapped_demos": 1, "max_labeled_demos": 0}}}
    data["settings"].update(changes.pop("settings", {}))
    data.update(changes)
    return CompareConfig.from_dict(data)


def test_capped_lm_refuses_the_call_past_the_cap():
    engine = ScriptedEngine(lambda call: {"answer": "x"})
    meter = CallMeter("program", cap=3)
    lm = capped(engine.as_lm(cache=False), meter)
    for i in range(3):
        lm(f"question {i}")
    with pytest.raises(CallCapReached):
        lm.copy(rollout_id=7)("one more")  # DSPy's copies share the meter
    assert len(engine.calls) == 3 and meter.calls == 3 and meter.cap_hit


def test_every_method_stays_within_the_cap_and_outputs_are_written(tmp_path):
    config = make_config(seeds=[1])
    used = engines()
    results = run_comparison(config, lms={k: e.as_lm() for k, e in used.items()}, output=tmp_path / "r.json",
                             work_dir=tmp_path / "work")
    assert list(results["methods"]) == list(COMPARE_METHODS)
    for record in results["runs"]:
        if record["method"] in DEFAULTS_METHODS:  # as a user runs them: uncapped, their own cost recorded
            assert record["program_calls_cap"] is None and not record["hit_cap"], record["method"]
        else:
            assert record["usage"]["program"]["calls"] <= config.program_calls, record["method"]
            assert record["program_calls_cap"] == config.program_calls
        assert record["error"] is None, record["error"]
    # DSPy's defaults spend more than this tight cap: the defaults table shows what they really cost.
    assert max(results["methods"][m]["program_calls"][0] for m in DEFAULTS_METHODS) > config.program_calls
    methods = results["methods"]
    assert methods["zero_shot_cot"]["program_calls"] == [0]
    assert methods["self_consistency"]["inference_calls_per_example"] == 3
    assert methods["zero_shot_cot"]["inference_calls_per_example"] == 1
    # Under a cap this tight some methods are stopped: a stock peer by the capped LM, a meta method by its limits.
    assert any(methods[m]["hit_cap"][0] for m in ("mipro_v2", "gepa"))
    assert methods["meta_teleprompter"]["hit_cap"] == [True]
    saved = json.loads((tmp_path / "r.json").read_text())
    entry = saved["methods"]["copro"]
    assert {"stock", "val", "test", "program_calls", "inference_calls_per_example"} <= set(entry)
    assert saved["task"] == "word_sorting_generated" and saved["complete"]
    assert saved["reference"] in ("bootstrap_fewshot", "copro", "mipro_v2", "gepa")
    assert "| meta_teleprompter | no | 1 |" in (tmp_path / "r.md").read_text()
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "work" / "copro" / "seed1.json").exists()
    assert results["task_info"]["sizes"] == [6, 8, 10]


def test_a_meta_run_records_what_each_candidate_was(tmp_path):
    config = make_config(methods=["meta_structure"], seeds=[1], program_calls=400)
    results = run_comparison(config, lms={k: e.as_lm() for k, e in engines().items()}, output=tmp_path / "r.json",
                             work_dir=tmp_path / "work")
    notes = results["runs"][0]["notes"]
    records = notes["candidate_records"]  # for reading the run later: stage, score, plan, why (not) kept
    assert len(records) == notes["candidates"] >= 3
    assert [r["score"] for r in records] == notes["candidate_scores"]
    assert records[0]["stage"].startswith("structure-init:") and records[0]["plan"] and records[0]["reason"]
    assert sum(r["accepted"] for r in records) >= 1


def test_the_unoptimized_program_is_scored_once_and_shared_by_every_seed(tmp_path):
    used = engines()
    config = make_config(methods=["zero_shot_cot"], seeds=[1, 2, 3])
    results = run_comparison(config, lms={k: e.as_lm() for k, e in used.items()}, output=tmp_path / "r.json",
                             work_dir=tmp_path / "w")
    runs = results["runs"]
    assert [r.get("shared_from_seed") for r in runs] == [None, 1, 1]
    assert runs[0]["test_scores"] == runs[1]["test_scores"] == runs[2]["test_scores"]
    # One validation and one test pass in all: 8 + 10 program calls, not three times that.
    assert len(used["program"].calls) == 8 + 10


def test_two_tables_each_with_its_reference_and_resolving_power(tmp_path):
    methods = ["zero_shot_cot", "bootstrap_fewshot", "copro", "copro_defaults"]
    results = run_comparison(make_config(methods=methods, seeds=[1]), lms={k: e.as_lm() for k, e in engines().items()},
                             output=tmp_path / "r.json", work_dir=tmp_path / "w")
    assert results["reference"] in ("bootstrap_fewshot", "copro")
    assert results["defaults_reference"] == "copro_defaults"
    entries = results["methods"]
    assert entries["zero_shot_cot"]["tables"] == ["equal_budget", "defaults"]
    assert {"paired_vs_reference", "paired_vs_defaults_reference"} <= set(entries["zero_shot_cot"])
    paired = entries["zero_shot_cot"]["paired_vs_reference"]
    assert {"mcnemar_p", "mdd", "disagreement", "wins", "losses"} <= set(paired) and paired["confidence"] == 0.95
    table = (tmp_path / "r.md").read_text()
    assert "### (a) equal budget" in table and "### (b) DSPy's defaults" in table
    # 10 test examples and 1 seed: far below the protocol, and it says so.
    assert "BELOW THE PROTOCOL" in table and "val 8, test 10, 1 seed(s)" in table
    low, high = entries["copro"]["test_ci95"]
    assert low <= entries["copro"]["test_mean"] <= high


def test_max_val_and_max_test_take_the_first_examples(tmp_path):
    config = make_config(methods=["zero_shot_cot"], seeds=[1], max_val=3, max_test=4)
    results = run_comparison(config, lms={k: e.as_lm() for k, e in engines().items()}, output=tmp_path / "r.json",
                             work_dir=tmp_path / "w")
    assert results["task_info"]["sizes"] == [6, 3, 4] and len(results["runs"][0]["test_scores"]) == 4


def test_resume_reuses_finished_runs_and_refuses_a_changed_config(tmp_path):
    output, work = tmp_path / "r.json", tmp_path / "w"
    methods = ["zero_shot_cot", "copro", "meta_prompt"]
    first = run_comparison(make_config(methods=methods, seeds=[1]), lms={k: e.as_lm() for k, e in engines().items()},
                           output=output, work_dir=work)
    assert not first["complete"] or first["seeds"] == [1]
    # A stopped comparison resumed with more seeds: seed 1 is not re-run, seed 2 is.
    grown = engines()
    second = run_comparison(make_config(methods=methods), lms={k: e.as_lm() for k, e in grown.items()},
                            output=output, work_dir=work)
    assert second["complete"] and [(r["method"], r["seed"]) for r in second["runs"]] == [
        (m, s) for s in (1, 2) for m in methods]
    assert [r for r in second["runs"] if r["seed"] == 1] == first["runs"]
    again = engines()
    third = run_comparison(make_config(methods=methods), lms={k: e.as_lm() for k, e in again.items()},
                           output=output, work_dir=work)
    assert [len(e.calls) for e in again.values()] == [0, 0, 0]
    assert third["runs"] == second["runs"]
    changed = make_config(methods=methods, settings={"copro": {"breadth": 3, "depth": 1}})
    with pytest.raises(ConfigChanged, match="copro seed 1 .*settings"):
        run_comparison(changed, lms={k: e.as_lm() for k, e in engines().items()}, output=output, work_dir=work)
    redo = engines()
    fourth = run_comparison(changed, lms={k: e.as_lm() for k, e in redo.items()}, output=output, work_dir=work,
                            recompute=True)
    assert [r for r in fourth["runs"] if r["method"] != "copro"] == [r for r in third["runs"] if r["method"] != "copro"]
    assert all(r["fingerprint"]["settings"]["copro"]["breadth"] == 3 for r in fourth["runs"] if r["method"] == "copro")
    assert redo["optimizer"].calls  # only COPRO was re-run


@pytest.mark.parametrize("bad, match", [({"program_calls": 0}, "program_calls"), ({"methods": ["dspy.SIMBA"]}, "methods"),
                                        ({"settings": {"copro": {"width": 3}}}, "settings.copro"),
                                        ({"settings": {"meta": {"budget": {"steps": 1}}}}, "settings.meta.budget"),
                                        ({"seeds": [1, 1]}, "seeds")])
def test_bad_configs_name_the_key(bad, match):
    with pytest.raises(ConfigError, match=match):
        make_config(**bad)


def test_engine_memo_answers_repeats_below_dspy_so_counts_do_not_change():
    from dspy_meta.experiments.engine_memo import MemoEngine

    engine = ScriptedEngine(lambda call: {"answer": "x"})
    memo = MemoEngine(engine)
    meter = CallMeter("program")
    lm = capped(dspy.LM("scripted/memo", engine=memo, cache=False), meter)
    for _ in range(3):
        lm("same question")
    lm.copy(temperature=0.7)("same question")  # sampled: never memoized
    assert meter.calls == 4 and len(engine.calls) == 2 and memo.hits == 2


PROTOCOL_METHODS = ("zero_shot_cot", "bootstrap_fewshot", "mipro_v2", "gepa", "copro", "meta_teleprompter",
                    *DEFAULTS_METHODS)
# Probes: a few methods at another budget, not full comparisons.
PROBES = {"compare_word_sorting_cap150.yaml", "compare_word_sorting_cap300.yaml"}
COMPARE_CONFIGS = sorted(Path(__file__).resolve().parents[2].joinpath("configs").glob("compare_*.yaml"))


@pytest.mark.parametrize("path", COMPARE_CONFIGS, ids=[p.name for p in COMPARE_CONFIGS])
def test_shipped_compare_configs_are_valid(path):
    config = load_compare_config(path)
    if path.name in PROBES:  # a focused experiment: stock and meta methods side by side
        assert set(config.methods) <= set(COMPARE_METHODS) and "meta_teleprompter" in config.methods
    elif path.name.startswith("compare_suite_"):  # the protocol: both tables, 3 seeds, 50+ val and 300+ test
        assert set(PROTOCOL_METHODS) <= set(config.methods) and len(config.seeds) == 3
        task = config.task.load()
        assert len(task.val[:config.max_val]) >= 50 and len(task.test[:config.max_test]) >= 300
    else:  # an archived small comparison (docs/archive): every method of its day, 3 seeds
        assert set(config.methods) == set(COMPARE_METHODS) - set(DEFAULTS_METHODS) and len(config.seeds) == 3
    assert CompareConfig.from_dict(config.to_dict()) == config


def test_concurrent_callers_never_pass_the_cap():
    import threading
    import time

    def slow(call):
        time.sleep(0.01)
        return {"answer": "x"}

    meter = CallMeter("program", cap=10)
    lm = capped(ScriptedEngine(slow).as_lm(), meter)
    refused = []

    def caller():
        try:
            while True:
                lm(messages=[{"role": "user", "content": f"q {threading.get_ident()} {time.perf_counter()}"}])
        except CallCapReached:
            refused.append(True)

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert meter.calls == 10 and meter.cap_hit and len(refused) == 8  # the old check let all 8 in flight pass
