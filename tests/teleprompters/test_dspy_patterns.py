"""DSPy's documented MIPROv2 usage patterns, each run with `dspy.MIPROv2` and with `MetaTeleprompter`.

Every test is parametrized over the two classes on the same scripted LMs, so a regression reads "MIPROv2
passes, MetaTeleprompter fails" (issue 30, third round of outside tests). MetaTeleprompter gets the
project's tiny meta budget for speed, except where a finding was reported with the default arguments.
"""

from __future__ import annotations

import io
import json
import warnings

import dspy
import pytest

from dspy_meta import MetaTeleprompter
from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.toy_task import MAGIC_WORD, Shout, aligning_meta_responder, shout_examples, shout_metric

from .conftest import TINY

_NORMALIZE_PLAN = {"op": "sequence", "steps": [
    {"op": "optimize", "ref": "bootstrap_fewshot"},
    {"op": "transform", "kind": "normalize", "params": {"steps": "strip_trailing_period"}}]}


def program_responder(call):
    """Shouts when told to (the magic word) or shown demos; else whispers."""
    word = call.inputs.get("word", "")
    shown = MAGIC_WORD in call.instructions or any(role == "assistant" for role, _ in call.messages)
    answer = word.upper() if shown else word.lower()
    return {name: ("Shout it." if name == "reasoning" else answer) for name in call.output_fields}


def period_responder(call):
    """Shouts correctly, but ends the answer with a period after a word that starts with a consonant."""
    word = call.inputs.get("word", "")
    answer = word.upper() + ("" if word[:1] in tuple("aeiou") else ".")
    return {name: ("Shout it." if name == "reasoning" else answer) for name in call.output_fields}


def structure_meta_responder(call):
    """A meta LM that follows the worked example: strip the trailing period with a normalize step."""
    if "new_prompts" in call.output_fields:
        return aligning_meta_responder(call)
    return {"analysis": "The answers end with a period; normalize it away.", "plan": json.dumps(_NORMALIZE_PLAN)}


def plain_optimizer_responder(call):
    """An optimizer LM whose instructions never help: only demos make the program shout."""
    return {"proposed_instruction": "Answer the question carefully.", "proposed_prefix_for_output_field": "Answer:",
            "new_instruction": "Answer the question carefully.", "observations": "Single words.",
            "summary": "Single lower-case words.", "program_description": "Answers a word.",
            "module_description": "The only module."}


class Lms:
    def __init__(self, program=program_responder, optimizer=plain_optimizer_responder, meta=aligning_meta_responder):
        self.engines = {"program": ScriptedEngine(program, model="program"),
                        "optimizer": ScriptedEngine(optimizer, model="optimizer"),
                        "meta": ScriptedEngine(meta, model="meta")}
        self.program, self.optimizer, self.meta = (self.engines[n].as_lm() for n in ("program", "optimizer", "meta"))


def _meta(metric, *, lms, tiny=True, **kwargs):
    if tiny and kwargs.get("auto", "light") is not None:
        kwargs.setdefault("budget", TINY)
    return MetaTeleprompter(metric, meta_model=lms.meta, display_progress=False, seed=0, **kwargs)


def _mipro(metric, *, lms, tiny=True, **kwargs):
    return dspy.MIPROv2(metric, **kwargs)


TELEPROMPTERS = {"MIPROv2": _mipro, "MetaTeleprompter": _meta}


@pytest.fixture(params=list(TELEPROMPTERS))
def make(request):
    return TELEPROMPTERS[request.param]


@pytest.fixture(autouse=True)
def _quiet_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def train(n=6):
    return shout_examples(n)


def val(n=10):
    return shout_examples(n, offset=10)


def compiled(make, lms, **compile_kwargs):
    teleprompter = make(shout_metric, lms=lms, auto="light", prompt_model=lms.optimizer, task_model=lms.program)
    return teleprompter.compile(Shout(), trainset=train(), **{"valset": val(), **compile_kwargs})


# -- the patterns ---------------------------------------------------------------------------------------
def test_compile_with_a_trainset_only(make):
    lms = Lms()
    optimized = make(shout_metric, lms=lms, auto="light", prompt_model=lms.optimizer,
                     task_model=lms.program).compile(Shout(), trainset=train(8))
    assert type(optimized) is Shout
    with dspy.context(lm=lms.program):
        assert optimized(word="apple").answer == "APPLE"


def test_compile_with_a_valset(make):
    optimized = compiled(make, Lms())
    assert type(optimized) is Shout and hasattr(optimized, "answer")


def test_manual_mode_with_num_trials(make):
    lms = Lms()
    optimized = make(shout_metric, lms=lms, auto=None, num_candidates=2, prompt_model=lms.optimizer,
                     task_model=lms.program).compile(Shout(), trainset=train(), valset=val(), num_trials=2,
                                                      minibatch=False)
    assert type(optimized) is Shout


def test_save_then_load_into_a_fresh_instance_of_the_class(make, tmp_path):
    optimized = compiled(make, Lms())
    optimized.save(str(tmp_path / "optimized.json"))
    loaded = Shout()
    loaded.load(str(tmp_path / "optimized.json"))
    assert [name for name, _ in loaded.named_predictors()] == [name for name, _ in Shout().named_predictors()]
    assert loaded.answer.predict.signature.instructions == optimized.answer.predict.signature.instructions
    assert len(loaded.answer.predict.demos) == len(optimized.answer.predict.demos) > 0


def test_the_result_compiles_again(make):
    lms = Lms()
    optimized = compiled(make, lms)
    again = make(shout_metric, lms=lms, auto="light", prompt_model=lms.optimizer, task_model=lms.program).compile(
        optimized, trainset=train(), valset=val())
    assert type(again) is Shout


def test_demos_are_examples(make):
    optimized = compiled(make, Lms())
    demos = optimized.answer.predict.demos
    assert demos and all(isinstance(demo, dspy.Example) for demo in demos)
    assert demos[0].word and demos[0].answer  # attribute access, as on DSPy's demos


def test_the_users_lm_history_grows_and_inspect_history_works(make):
    lms = Lms()
    compiled(make, lms)
    assert len(lms.program.history) == len(lms.engines["program"].calls) > 0  # one entry per real request
    printed = io.StringIO()
    lms.program.inspect_history(n=1, file=printed)
    assert "word" in printed.getvalue()


def test_an_lm_that_ends_answers_with_a_period_still_gives_back_the_class(make, tmp_path):
    """Issue 30: default arguments (auto="light"), an exact-match metric and an LM that sometimes ends its
    answers with a period; a meta LM then proposes a normalize step. The result must stay the user's class."""
    lms = Lms(program=period_responder, meta=structure_meta_responder)
    teleprompter = make(shout_metric, lms=lms, tiny=False, auto="light", prompt_model=lms.optimizer,
                        task_model=lms.program)
    optimized = teleprompter.compile(Shout(), trainset=train(8), valset=val())
    assert type(optimized) is Shout and isinstance(optimized.answer, dspy.ChainOfThought)
    assert [name for name, _ in optimized.named_predictors()] == [name for name, _ in Shout().named_predictors()]
    optimized.save(str(tmp_path / "x.json"))
    Shout().load(str(tmp_path / "x.json"))  # the tutorials' round trip (KeyError: 'answer' before)
    again = teleprompter.compile(optimized, trainset=train(8), valset=val())  # KeyError before
    assert type(again) is Shout


def test_max_errors_surfaces_errors_raised_while_bootstrapping(make):
    """DSPy's ``test_error_handling_during_bootstrap``, with the optimizer under test in place of
    BootstrapFewShot: a teacher that always raises, ``max_errors=1``."""
    class BuggyModule(dspy.Module):
        def __init__(self):
            super().__init__()
            self.answer = dspy.ChainOfThought("word -> answer")

        def forward(self, word):
            raise RuntimeError("Simulated error")

    lms = Lms()
    teleprompter = make(shout_metric, lms=lms, auto="light", prompt_model=lms.optimizer, task_model=lms.program,
                        max_bootstrapped_demos=1, max_labeled_demos=1, max_errors=1)
    with pytest.raises(RuntimeError, match="Simulated error"):
        teleprompter.compile(Shout(), teacher=BuggyModule(), trainset=train(), valset=val())


# -- MetaTeleprompter only: structure wins are opt-in ---------------------------------------------------
def test_structure_wins_are_opt_in_and_round_trip_with_save_program(tmp_path):
    from dspy_meta.programs import load_program, save_program
    from dspy_meta.programs.normalize import Normalize

    lms = Lms(program=period_responder, meta=structure_meta_responder)
    teleprompter = MetaTeleprompter(shout_metric, lms.optimizer, lms.program, meta_model=lms.meta, seed=0,
                                    display_progress=False, allow_structure=True)
    optimized = teleprompter.compile(Shout(), trainset=train(8), valset=val())
    assert isinstance(optimized, Normalize) and optimized.meta_results_.best_score == 1.0  # the class changed
    save_program(optimized, tmp_path / "p.json")
    loaded = load_program(tmp_path / "p.json", Shout())
    assert type(loaded) is Normalize and loaded.dump_state() == optimized.dump_state()
    demos = [demo for _, predictor in optimized.named_predictors() for demo in predictor.demos]
    assert demos and all(isinstance(demo, dspy.Example) for demo in demos)
    again = teleprompter.compile(optimized, trainset=train(8), valset=val())  # KeyError: 'program.program.answer'
    assert isinstance(again, Normalize) and again.meta_results_.best_score == 1.0


def test_without_structure_no_transform_or_ensemble_is_tried():
    lms = Lms(program=period_responder, meta=structure_meta_responder)
    optimized = _meta(shout_metric, lms=lms, prompt_model=lms.optimizer, task_model=lms.program).compile(
        Shout(), trainset=train(8), valset=val())
    plans = [json.dumps(c.plan) for c in optimized.meta_results_.candidates if c.plan is not None]
    assert plans and not any('"transform"' in plan or '"ensemble"' in plan for plan in plans)
    refused = [c.reason for c in optimized.meta_results_.candidates if c.plan is None]
    assert refused and all("keeps the program's class" in reason for reason in refused)
    meta_prompts = [call.prompt_text for call in lms.engines["meta"].calls if "plan_format" in call.prompt_text]
    # Neither the grammar nor the worked example shows the meta LM a transform it may not use.
    assert meta_prompts and not any("TRANSFORM is one of" in text or '"kind": "normalize"' in text
                                    for text in meta_prompts)
