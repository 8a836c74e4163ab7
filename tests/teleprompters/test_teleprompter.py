import json

import dspy
import pytest

from dspy_meta import MetaTeleprompter, OptimizerSpec
from dspy_meta.teleprompters import MetaBudget
from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.toy_task import MAGIC_WORD, Shout, shout_examples, shout_metric, shout_optimizer_responder

from .conftest import TINY


def _meta(lms, **kwargs):
    kwargs.setdefault("budget", TINY)
    return MetaTeleprompter(metric=shout_metric, seed=0, display_progress=False, max_bootstrapped_demos=1,
                            max_labeled_demos=0, **lms, **kwargs)


def test_same_call_as_mipro_v2(engines):
    program_engine, optimizer_engine, _ = engines
    trainset, valset = shout_examples(12), shout_examples(8, offset=12)
    results = {}
    for cls in (dspy.MIPROv2, MetaTeleprompter):
        teleprompter = cls(metric=shout_metric, auto="light", num_threads=2, seed=0,
                           prompt_model=optimizer_engine.as_lm(), task_model=program_engine.as_lm(),
                           max_bootstrapped_demos=1, max_labeled_demos=0)
        results[cls] = teleprompter.compile(Shout(), trainset=trainset, valset=valset, teacher=None,
                                            minibatch=False)
        assert type(results[cls]) is Shout
    assert results[MetaTeleprompter].meta_results_.candidates


def test_mipro_v2_constructor_and_compile_arguments_are_accepted(engines, shout_data):
    program_engine, optimizer_engine, _ = engines
    mipro_style = dict(metric=shout_metric, num_candidates=2, num_threads=2, max_errors=5, seed=0,
                       init_temperature=1.0, verbose=False, track_stats=True, teacher_settings={}, log_dir=None,
                       metric_threshold=None, prompt_model=optimizer_engine.as_lm(),
                       task_model=program_engine.as_lm(), auto="light")
    teleprompter = MetaTeleprompter(display_progress=False, budget=TINY, **mipro_style)
    program = teleprompter.compile(Shout(), trainset=shout_data[0], valset=shout_data[1], max_bootstrapped_demos=0,
                                   max_labeled_demos=0, num_trials=3, minibatch=False)
    mipro = next(c for c in program.meta_results_.candidates if c.stage == "initial:mipro_v2")
    assert mipro.plan["params"]["num_candidates"] == 2  # num_candidates reached the MIPROv2 input
    assert mipro.plan["params"]["max_bootstrapped_demos"] == 0  # compile-time demo limits too
    assert teleprompter.max_bootstrapped_demos == 4  # ... for that call only


def test_end_to_end_meta_optimization_beats_the_inputs(lms, shout_data):
    program = _meta(lms).compile(Shout(), trainset=shout_data[0], valset=shout_data[1])
    results = program.meta_results_
    assert results.baseline_score == 0.0 and results.best_score == 1.0
    assert MAGIC_WORD in program.answer.predict.signature.instructions
    by_stage = {c.stage: c for c in results.candidates if not c.reused}
    assert by_stage["initial:copro"].score == 0.0 and by_stage["prompt:copro"].score == 1.0
    assert by_stage["initial:mipro_v2"].score == 0.0 and by_stage["prompt:mipro_v2"].score == 1.0
    learned = OptimizerSpec.from_dict(results.best_optimizers["copro"])
    assert "shout" in learned.prompts["basic_generate_instruction"].instructions
    assert {c.stage for c in results.candidates} >= {"structure-init:copro", "structure"}
    json.dumps(results.to_dict())  # results are plain data


def test_usage_is_reported_per_level_and_adds_up(lms, shout_data):
    results = _meta(lms).compile(Shout(), trainset=shout_data[0], valset=shout_data[1]).meta_results_
    for level in ("program", "optimizer", "meta"):
        assert results.usage[level].calls > 0 and results.usage[level].input_tokens > 0
        per_candidate = sum(c.usage[level].calls for c in results.candidates)
        baseline_calls = len(shout_data[1]) if level == "program" else 0
        assert per_candidate + baseline_calls == results.usage[level].calls
    assert results.usage["meta"].calls < results.usage["optimizer"].calls < results.usage["program"].calls


def test_save_load_round_trip_into_the_users_class(lms, shout_data, tmp_path):
    program = _meta(lms).compile(Shout(), trainset=shout_data[0], valset=shout_data[1])
    program.save(str(tmp_path / "program.json"))
    loaded = Shout()
    loaded.load(str(tmp_path / "program.json"))
    assert loaded.answer.predict.signature.instructions == program.answer.predict.signature.instructions
    assert loaded.answer.predict.demos == program.answer.predict.demos


def test_compile_does_not_mutate_the_teleprompter_or_student(lms, shout_data):
    teleprompter = _meta(lms)
    before = dict(vars(teleprompter))
    student = Shout()
    original = student.answer.predict.signature.instructions
    teleprompter.compile(student, trainset=shout_data[0], valset=shout_data[1])
    assert vars(teleprompter) == before
    assert student.answer.predict.signature.instructions == original
    assert not hasattr(student, "meta_results_")


def test_same_seed_same_results_and_seed_zero_is_used(engines, shout_data):
    def run(seed):
        program_engine, optimizer_engine, meta_engine = (ScriptedEngine(e.responder) for e in engines)
        lms = {"task_model": program_engine.as_lm(), "prompt_model": optimizer_engine.as_lm(),
               "meta_model": meta_engine.as_lm()}
        tp = MetaTeleprompter(metric=shout_metric, budget=TINY, seed=seed, display_progress=False,
                              max_bootstrapped_demos=1, max_labeled_demos=0, **lms)
        return tp.compile(Shout(), trainset=shout_data[0], valset=shout_data[1]).meta_results_, meta_engine

    (first, meta1), (second, meta2) = run(0), run(0)
    assert first.to_dict() == second.to_dict()
    assert first.seed == 0
    assert [c.inputs["task_examples"] for c in meta1.calls] == [c.inputs["task_examples"] for c in meta2.calls]
    third, meta3 = run(1)
    assert [c.inputs["task_examples"] for c in meta3.calls] != [c.inputs["task_examples"] for c in meta1.calls]


def test_without_valset_the_trainset_is_split_like_mipro(lms):
    trainset = shout_examples(10)
    program = _meta(lms).compile(Shout(), trainset=trainset)
    assert program.meta_results_.valset_size == 8


def test_learned_spec_transfers_to_another_task(lms, shout_data, tmp_path):
    program = _meta(lms).compile(Shout(), trainset=shout_data[0], valset=shout_data[1])
    OptimizerSpec.from_dict(program.meta_results_.best_optimizers["copro"]).save(tmp_path / "copro.json")
    learned = OptimizerSpec.load(tmp_path / "copro.json")

    class Whisper(dspy.Module):
        def __init__(self):
            super().__init__()
            self.reply = dspy.Predict("phrase -> reply")

        def forward(self, phrase):
            return self.reply(phrase=phrase)

    task_engine = ScriptedEngine(lambda c: {"reply": c.inputs["phrase"].lower()})
    optimizer_engine = ScriptedEngine(shout_optimizer_responder)
    data = [dspy.Example(phrase=w.upper(), reply=w).with_inputs("phrase") for w in ("quiet", "soft", "low")]
    whisper = learned.run(Whisper(), trainset=data, metric=lambda e, p, t=None: float(p.reply == e.reply),
                          prompt_model=optimizer_engine.as_lm(), task_model=task_engine.as_lm())
    assert isinstance(whisper, Whisper)
    assert optimizer_engine.calls[0].instructions == learned.prompts["basic_generate_instruction"].instructions


@pytest.mark.parametrize("kwargs, error, message", [
    ({"auto": "turbo"}, ValueError, "auto must be one of"),
    ({"auto": None}, ValueError, "auto=None needs num_candidates"),  # MIPROv2's manual mode, as MIPROv2 says
    ({"budget": {"prompt_steps": -1}}, ValueError, "'prompt_steps' must be an integer >= 0"),
    ({"budget": {"speed": 3}}, ValueError, "unknown budget key"),
    ({"optimizers": ["copro"]}, TypeError, "must be OptimizerSpec objects"),
])
def test_bad_settings_fail_before_any_lm_call(engines, lms, shout_data, kwargs, error, message):
    kwargs = {"budget": None, **kwargs}
    with pytest.raises(error, match=message):
        MetaTeleprompter(metric=shout_metric, display_progress=False, **lms, **kwargs).compile(
            Shout(), trainset=shout_data[0], valset=shout_data[1])
    assert all(not engine.calls for engine in engines)


def test_unknown_compile_keyword_is_a_type_error(lms, shout_data):
    with pytest.raises(TypeError, match="unexpected keyword"):
        _meta(lms).compile(Shout(), trainset=shout_data[0], valset=shout_data[1], num_epochs=3)


def test_no_lm_anywhere_is_a_clear_error(shout_data):
    with pytest.raises(ValueError, match="no program LM"):
        MetaTeleprompter(metric=shout_metric, display_progress=False).compile(
            Shout(), trainset=shout_data[0], valset=shout_data[1])


def test_budget_presets_and_yaml(tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text("budget:\n  prompt_steps: 3\n  structure_steps: 1\n")
    assert MetaBudget.from_yaml(path) == MetaBudget(prompt_steps=3, structure_steps=1)
    assert MetaBudget.from_auto("heavy").max_valset == 1000


@pytest.mark.parametrize("num_threads", [1, 4])
def test_a_tight_call_cap_still_scores_the_cheap_building_block_first(shout_data, num_threads):
    """Inputs without prompts (BootstrapFewShot) run before the prompt searches, also with threads (which
    would otherwise start every input at once and share the cap out until none finishes, as MMLU's seed-1
    run did: 0 candidates in 40 calls): under a cap that COPRO's search would exhaust, the bootstrapped
    program (demos help this program LM) is still found."""
    import time

    from .conftest import compile_toy, toy_engines
    from dspy_meta.testing.toy_task import MAGIC_WORD, shout_program_responder

    def slow_unless_tuned(call):
        # The untuned program (bootstrapping, its scores) answers slowly, COPRO's candidates fast: inputs
        # started at once would let COPRO spend the cap first (the old code failed 2 runs of 3 here).
        if num_threads > 1 and MAGIC_WORD not in call.instructions:
            time.sleep(0.05)
        return shout_program_responder(call, demos_help=True)

    engines = toy_engines(program=slow_unless_tuned)
    program = compile_toy(engines, shout_data, usage_limits={"program_calls": 20}, max_labeled_demos=1,
                          num_threads=num_threads)
    results = program.meta_results_
    assert results.stopped_reason and results.stopped_reason.startswith("budget")
    assert results.candidates[0].stage == "initial:bootstrap_fewshot"
    assert results.best_score == 1.0 and not results.returned_baseline
    assert program.answer.predict.demos


def test_a_run_ends_with_a_one_line_summary(shout_data, caplog):
    import logging

    from .conftest import compile_toy, toy_engines

    with caplog.at_level(logging.INFO, logger="dspy_meta.teleprompters.base"):
        program = compile_toy(toy_engines(), shout_data)
    results = program.meta_results_
    (line,) = [r.getMessage() for r in caplog.records if "finished:" in r.getMessage()]
    assert line.startswith("MetaTeleprompter finished: validation 0.000 -> 1.000 (returned ")
    assert f"LM calls program/optimizer/meta {results.usage['program'].calls}/" in line
    assert results.winner and f"(returned {results.winner} (" in line  # the winning optimizer and its stage
    assert results.wall_seconds > 0 and line.endswith(f"; {results.wall_seconds:.1f} s")
    # Each level's share of the time spent inside LM requests, measured by the run's meters.
    assert set(results.lm_seconds) == {"program", "optimizer", "meta"} and results.lm_seconds["program"] > 0
    busy = sum(results.lm_seconds.values())
    shares = "/".join(f"{100 * results.lm_seconds[level] / busy:.0f}%" for level in ("program", "optimizer", "meta"))
    assert f"; LM time program/optimizer/meta {shares}; " in line
    assert "lm_seconds" not in results.to_dict()  # measured, so not in what a resumed run reproduces
