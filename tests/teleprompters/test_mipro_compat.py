"""Drop-in parity with `dspy.MIPROv2` (issue 16): every MIPROv2 usage pattern, run twice.

Each case is a function ``case(Teleprompter, lms, tmp_path)`` written as a migrating user writes it
(DSPy's docs, tutorials and tests, adapted to a scripted LM and tiny data; none needs a network). It runs
once with stock ``dspy.MIPROv2`` (the control) and once with ``MetaTeleprompter`` swapped in; every
case that passes with the control must pass with MetaTeleprompter. Intended differences:

- MetaTeleprompter runs with a tiny meta budget (``budget=TINY``, which takes the place of ``auto``) so
  the suite stays fast; the manual-mode cases (``auto=None``) get no budget, since that mode maps
  MIPROv2's own settings onto one.
- Cases marked ``META_ONLY`` check what MIPROv2 does not do (model names resolved with ``make_lm``, a
  ``dspy.context`` around compile honoured, no-effect options warned, ``log_dir`` as checkpoint folder,
  a bad metric stopping the run); with the control they are skipped or expected to fail, as each says.
"""

from __future__ import annotations

import json
import uuid
import warnings

import dspy
import numpy as np
import pytest
from dspy.teleprompt import BetterTogether

from dspy_meta import MetaTeleprompter
from dspy_meta.errors import ConfigError, MetricError
from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.scripted_lm import register_litellm_provider
from dspy_meta.testing.toy_task import (
    MAGIC_WORD, Shout, aligning_meta_responder, shout_examples, shout_metric, shout_optimizer_responder,
)

from .conftest import TINY


def program_responder(call):
    """Shouts into every output field when told to (the magic word) or shown demos; else whispers."""
    word = call.inputs.get("word", "")
    shown = MAGIC_WORD in call.instructions or any(role == "assistant" for role, _ in call.messages)
    answer = word.upper() if shown else word.lower()
    return {name: ("Shout it." if name == "reasoning" else answer) for name in call.output_fields}


def optimizer_responder(call):
    """The optimizer LM; it also answers as the meta LM, for cases that pass no meta_model (as MIPROv2 calls do)."""
    if {"new_prompts", "plan"} & set(call.output_fields):
        return aligning_meta_responder(call)
    return shout_optimizer_responder(call)


class Lms:
    """Scripted program / optimizer / meta / teacher LMs of one case, with their engines."""

    def __init__(self):
        self.engines = {name: ScriptedEngine(responder, model=name) for name, responder in (
            ("program", program_responder), ("optimizer", optimizer_responder),
            ("meta", aligning_meta_responder), ("teacher", program_responder))}
        self.program, self.optimizer, self.meta, self.teacher = (self.engines[n].as_lm() for n in self.engines)

    def calls(self, name: str) -> int:
        return len(self.engines[name].calls)


def train(n=4, offset=0):
    return shout_examples(n, offset=offset)


def val(n=3):
    return shout_examples(n, offset=10)


# -- the cases -----------------------------------------------------------------------------------------
def basic_no_valset(T, lms, tmp_path):
    """Quickstart: ``MIPROv2(metric=..., auto="light").compile(program, trainset=trainset)``."""
    optimized = T(metric=shout_metric, auto="light", prompt_model=lms.optimizer, task_model=lms.program).compile(
        Shout(), trainset=train(6))
    with dspy.context(lm=lms.program):
        assert type(optimized) is Shout and optimized(word="apple").answer in ("APPLE", "apple")


def cheatsheet_save_and_load(T, lms, tmp_path):
    """Cheatsheet: demo limits at compile, ``requires_permission_to_run=False``, save, load into the class."""
    program = Shout()
    optimized = T(metric=shout_metric, auto="light", prompt_model=lms.optimizer, task_model=lms.program).compile(
        program.deepcopy(), trainset=train(), valset=val(), max_bootstrapped_demos=3, max_labeled_demos=4,
        requires_permission_to_run=False)
    optimized.save(str(tmp_path / "mipro_optimized.json"))
    loaded = Shout()
    loaded.load(str(tmp_path / "mipro_optimized.json"))
    assert loaded.answer.predict.signature.instructions == optimized.answer.predict.signature.instructions
    assert len(loaded.answer.predict.demos) == len(optimized.answer.predict.demos) <= 4


def zero_shot(T, lms, tmp_path):
    """Cheatsheet, instructions only: ``max_bootstrapped_demos=0, max_labeled_demos=0``."""
    optimized = T(metric=shout_metric, auto="light", prompt_model=lms.optimizer, task_model=lms.program).compile(
        Shout(), trainset=train(), valset=val(), max_bootstrapped_demos=0, max_labeled_demos=0)
    assert optimized.answer.predict.demos == []


def global_lm(T, lms, tmp_path):
    """``dspy.configure(lm=...)`` then ``MIPROv2(metric=..., auto="light")`` with no LM arguments."""
    with dspy.context(lm=lms.program):
        optimized = T(metric=shout_metric, auto="light").compile(Shout(), trainset=train(), valset=val())
    assert type(optimized) is Shout and lms.calls("program") > 0


def positional_models(T, lms, tmp_path):
    """MIPROv2's positional order: ``MIPROv2(metric, prompt_model, task_model)``."""
    T(shout_metric, lms.optimizer, lms.program).compile(Shout(), trainset=train(), valset=val())
    assert lms.calls("optimizer") > 0 and lms.calls("program") > 0


def manual_mode(T, lms, tmp_path):
    """MIPROv2 docs, hand-set hyperparameters: ``auto=None, num_candidates=...`` and ``num_trials=...``."""
    optimized = T(shout_metric, prompt_model=lms.optimizer, task_model=lms.program, auto=None, num_candidates=3,
                  init_temperature=1.0).compile(Shout(), trainset=train(), valset=val(), num_trials=4,
                                                minibatch=False)
    assert type(optimized) is Shout


def teacher_settings(T, lms, tmp_path):
    """Multi-hop / agents / math tutorials: ``teacher_settings=dict(lm=big_lm)``: the big LM bootstraps."""
    models = dict(prompt_model=lms.optimizer, task_model=lms.program, teacher_settings=dict(lm=lms.teacher))
    T(metric=shout_metric, auto="light", num_threads=2, max_errors=999, **models).compile(
        Shout(), trainset=train(), valset=val(), max_bootstrapped_demos=2, max_labeled_demos=0,
        minibatch_size=40, minibatch_full_eval_steps=4)
    assert lms.calls("teacher") > 0


def teacher_program(T, lms, tmp_path):
    """MIPROv2 docs: ``compile(..., teacher=program)`` bootstraps demos with the teacher program."""
    teacher = Shout()
    teacher.set_lm(lms.teacher)
    T(metric=shout_metric, auto="light", prompt_model=lms.optimizer, task_model=lms.program).compile(
        Shout(), trainset=train(), valset=val(), teacher=teacher, max_bootstrapped_demos=2, max_labeled_demos=0)
    assert lms.calls("teacher") > 0


def metric_reads_reasoning(T, lms, tmp_path):
    """A ChainOfThought metric that reads ``pred.reasoning``, a field the labels lack."""
    def metric(example, pred, trace=None):
        return bool(pred.reasoning) and pred.answer == example.answer

    T(metric=metric, auto="light", prompt_model=lms.optimizer, task_model=lms.program).compile(
        Shout(), trainset=train(), valset=val())


class Extract(dspy.Module):
    def __init__(self):
        super().__init__()
        self.extract = dspy.ChainOfThought("word -> shouted")

    def forward(self, word):
        return self.extract(word=word)


def renamed_fields(T, lms, tmp_path):
    """Entity-extraction tutorial: the metric compares ``pred.shouted`` with ``example.expected_shout``."""
    data = [dspy.Example(word=e.word, expected_shout=e.answer).with_inputs("word") for e in train(7)]

    def extraction_correctness_metric(example, prediction, trace=None) -> bool:
        return prediction.shouted == example.expected_shout

    T(metric=extraction_correctness_metric, auto="medium", prompt_model=lms.optimizer,
      task_model=lms.program).compile(Extract(), trainset=data, max_bootstrapped_demos=4, minibatch=False)


def unlabelled_examples(T, lms, tmp_path):
    """Games tutorial: examples with inputs only; the metric judges the prediction alone."""
    data = [dspy.Example(word=e.word).with_inputs("word") for e in train(6)]

    def metric(example, pred, trace=None):
        return pred.answer == example.word.upper()

    T(metric=metric, auto="light", prompt_model=lms.optimizer, task_model=lms.program).compile(
        Shout(), trainset=data, max_bootstrapped_demos=1, max_labeled_demos=0)


def two_argument_metric(T, lms, tmp_path):
    """DSPy's COPRO/MIPROv2 tests: ``metric(example, prediction)`` without a trace."""
    T(metric=lambda example, pred: pred.answer == example.answer, auto="light", prompt_model=lms.optimizer,
      task_model=lms.program).compile(Shout(), trainset=train(), valset=val(), max_bootstrapped_demos=0,
                                      max_labeled_demos=0)


def numpy_metric(T, lms, tmp_path):
    """Metrics returning ``numpy.bool_`` and numpy floats."""
    for metric in (lambda e, p, t=None: np.bool_(p.answer == e.answer),
                   lambda e, p, t=None: np.float64(p.answer == e.answer)):
        T(metric=metric, auto="light", prompt_model=lms.optimizer, task_model=lms.program).compile(
            Shout(), trainset=train(), valset=val())


class SemanticMatch(dspy.Module):
    """RAG tutorial: the metric is a module (``dspy.evaluate.SemanticF1``); here without an LM."""

    def forward(self, example, pred, trace=None):
        return float(pred.answer == example.answer)


def module_metric(T, lms, tmp_path):
    T(metric=SemanticMatch(), auto="medium", num_threads=2, prompt_model=lms.optimizer,
      task_model=lms.program).compile(Shout(), trainset=train(), valset=val(), max_bootstrapped_demos=2,
                                      max_labeled_demos=2)


def small_datasets(T, lms, tmp_path):
    """What MIPROv2 accepts: 2 examples without a valset, 1 training example with one, 5 without."""
    def make():
        return T(metric=shout_metric, auto="light", prompt_model=lms.optimizer, task_model=lms.program)

    make().compile(Shout(), trainset=train(2))
    make().compile(Shout(), trainset=train(1), valset=val(2))
    make().compile(Shout(), trainset=train(5))


def predictor_lm_with_endpoint(T, lms, tmp_path):
    """A program whose predictors have their own LM (``set_lm``) on an OpenAI-compatible endpoint."""
    register_litellm_provider("scripted-endpoint", lms.engines["program"])
    endpoint = dspy.LM("scripted-endpoint/model", api_base="http://127.0.0.1:9/v1", api_key="sk-local",
                       cache=False)
    student = Shout()
    student.set_lm(endpoint)
    optimized = T(metric=shout_metric, auto="light", prompt_model=lms.optimizer, task_model=lms.optimizer).compile(
        student, trainset=train(), valset=val())  # MIPROv2 wants both models; the predictors use their own
    lm = optimized.answer.predict.lm
    assert lm.model == "scripted-endpoint/model"
    assert lm.kwargs.get("api_base") == "http://127.0.0.1:9/v1" and lm.kwargs.get("api_key") == "sk-local"
    before = lms.calls("program")
    assert optimized(word="zebra").answer == "ZEBRA"  # optimized, and calling the same endpoint
    assert lms.calls("program") == before + 1


def predictor_lm_custom_engine(T, lms, tmp_path):
    """A predictor LM on a custom engine with no ``dump_state`` (multi-LM programs)."""
    student = Shout()
    student.set_lm(lms.program)
    optimized = T(metric=shout_metric, auto="light", prompt_model=lms.optimizer, task_model=lms.optimizer).compile(
        student, trainset=train(), valset=val())
    before = lms.calls("program")
    assert optimized(word="zebra").answer == "ZEBRA"
    assert lms.calls("program") == before + 1


def better_together(T, lms, tmp_path):
    """BetterTogether with this optimizer as its prompt optimizer and MIPROv2 compile options for it."""
    student = Shout()
    student.set_lm(lms.program)
    p = T(metric=shout_metric, auto="light", prompt_model=lms.optimizer, task_model=lms.program)
    optimized = BetterTogether(shout_metric, p=p).compile(
        student, trainset=train(), valset=val(), strategy="p", optimizer_compile_args={"p": {"minibatch": False}})
    assert optimized.flag_compilation_error_occurred is False
    assert [c["strategy"] for c in optimized.candidate_programs] == sorted(
        ["", "p"], key=lambda s: -[c["score"] for c in optimized.candidate_programs if c["strategy"] == s][0])


def result_attributes(T, lms, tmp_path):
    """``track_stats=True`` (the default): score, candidate_programs, trial_logs, call counts."""
    optimized = T(metric=shout_metric, auto="light", prompt_model=lms.optimizer, task_model=lms.program).compile(
        Shout(), trainset=train(), valset=val())
    assert isinstance(optimized.score, float) and 0.0 <= optimized.score <= 100.0  # a percentage, as Evaluate's
    candidates = optimized.candidate_programs
    assert candidates and all({"score", "program"} <= set(c) for c in candidates)
    assert [c["score"] for c in candidates] == sorted((c["score"] for c in candidates), reverse=True)
    assert candidates[0]["score"] == optimized.score
    # The user's class, except around programs with added structure (a documented wrapper, e.g. an ensemble).
    plain = [c for c in candidates if (c.get("plan") or {}).get("op", "optimize") == "optimize"]
    assert plain and all(type(c["program"]) is Shout for c in plain)
    assert all(isinstance(c["program"], dspy.Module) for c in candidates)
    assert isinstance(optimized.trial_logs, dict) and 1 in optimized.trial_logs
    assert isinstance(optimized.total_calls, int) and isinstance(optimized.prompt_model_total_calls, int)


def no_stats(T, lms, tmp_path):
    """``track_stats=False``: no stats on the program."""
    optimized = T(metric=shout_metric, auto="light", track_stats=False, prompt_model=lms.optimizer,
                  task_model=lms.program).compile(Shout(), trainset=train(), valset=val())
    assert not hasattr(optimized, "trial_logs") and not hasattr(optimized, "candidate_programs")


def all_settings(T, lms, tmp_path):
    """Every MIPROv2 constructor setting at once (keywords), as a config-driven caller passes them."""
    T(metric=shout_metric, prompt_model=lms.optimizer, task_model=lms.program, teacher_settings={},
      max_bootstrapped_demos=1, max_labeled_demos=1, auto="light", num_candidates=None, num_threads=2,
      max_errors=5, seed=0, init_temperature=0.7, verbose=True, track_stats=True, log_dir=str(tmp_path / "log"),
      metric_threshold=None).compile(Shout(), trainset=train(), valset=val(), seed=0, minibatch=False,
                                     program_aware_proposer=False, tip_aware_proposer=False)


CASES = [basic_no_valset, cheatsheet_save_and_load, zero_shot, global_lm, positional_models, manual_mode,
         teacher_settings, teacher_program, metric_reads_reasoning, renamed_fields, unlabelled_examples,
         two_argument_metric, numpy_metric, module_metric, small_datasets, predictor_lm_with_endpoint,
         predictor_lm_custom_engine, better_together, result_attributes, no_stats, all_settings]


def _meta(*args, **kwargs):
    if kwargs.get("auto", "light") is not None:
        kwargs.setdefault("budget", TINY)  # intended: a tiny meta budget for speed (it replaces `auto`)
    return MetaTeleprompter(*args, display_progress=False, **kwargs)


TELEPROMPTERS = {"MIPROv2": dspy.MIPROv2, "MetaTeleprompter": _meta}


@pytest.fixture(params=list(TELEPROMPTERS))
def teleprompter(request):
    return request.param, TELEPROMPTERS[request.param]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_usage_pattern(case, teleprompter, tmp_path):
    name, T = teleprompter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no-effect options warn; tested below
        case(T, Lms(), tmp_path)


# -- MetaTeleprompter only (MIPROv2 does not do these) --------------------------------------------------
def test_auto_none_maps_mipro_settings_onto_the_budget():
    lms = Lms()
    optimized = MetaTeleprompter(shout_metric, lms.optimizer, lms.program, auto=None, num_candidates=3,
                                 display_progress=False, meta_model=lms.meta).compile(
        Shout(), trainset=train(), valset=val(), num_trials=4, minibatch=False)
    mipro = next(c for c in optimized.meta_results_.candidates if c.stage == "initial:mipro_v2")
    assert mipro.plan["params"]["num_candidates"] == 3 and mipro.plan["params"]["num_trials"] == 4
    copro = next(c for c in optimized.meta_results_.candidates if c.stage == "initial:copro")
    assert copro.plan["params"]["breadth"] == 3


def test_teacher_lm_calls_are_counted_at_the_program_level():
    lms = Lms()
    optimized = _meta(shout_metric, lms.optimizer, lms.program, teacher_settings=dict(lm=lms.teacher),
                      meta_model=lms.meta).compile(Shout(), trainset=train(), valset=val(), max_bootstrapped_demos=2,
                                                   max_labeled_demos=0)
    usage = optimized.meta_results_.usage["program"].calls
    assert lms.calls("teacher") > 0 and usage == lms.calls("program") + lms.calls("teacher")


def test_result_attributes_are_mapped_from_the_meta_candidates():
    lms = Lms()
    optimized = _meta(shout_metric, lms.optimizer, lms.program, meta_model=lms.meta).compile(
        Shout(), trainset=train(), valset=val())
    results = optimized.meta_results_
    assert optimized.score == round(100 * results.best_score, 2)
    scored = [c for c in results.candidates if c.score is not None and not c.reused]
    assert len(optimized.candidate_programs) == len(scored) + 1  # + the unoptimized program
    assert len(optimized.trial_logs) == len(results.candidates) + 1
    assert optimized.total_calls == sum(u.calls for u in results.usage.values())
    assert optimized.prompt_model_total_calls == results.usage["optimizer"].calls + results.usage["meta"].calls


def test_model_strings_are_resolved_and_unknown_names_fail_before_any_call():
    lms = Lms()
    register_litellm_provider("scripted-compat", lms.engines["program"])
    name = f"scripted-compat/{uuid.uuid4().hex}"  # make_lm's LM caches on disk: a fresh name is never a cache hit
    optimized = _meta(shout_metric, prompt_model=lms.optimizer, task_model=name,
                      meta_model=lms.meta).compile(Shout(), trainset=train(), valset=val())
    assert optimized.meta_results_.usage["program"].calls == lms.calls("program") > 0
    calls_before = {name: lms.calls(name) for name in lms.engines}
    with pytest.raises(ConfigError, match="task_model: unknown LM 'gpt-nonsense'"):
        _meta(shout_metric, prompt_model=lms.optimizer, task_model="gpt-nonsense").compile(
            Shout(), trainset=train(), valset=val())
    with pytest.raises(ConfigError, match=r"teacher_settings\['lm'\]"):
        _meta(shout_metric, lms.optimizer, lms.program, teacher_settings={"lm": "nonsense"}).compile(
            Shout(), trainset=train(), valset=val())
    assert {name: lms.calls(name) for name in lms.engines} == calls_before  # no call from the failed runs


def test_context_lm_at_compile_is_honoured():
    """Intended difference: MIPROv2 reads ``dspy.settings.lm`` in ``__init__``; MetaTeleprompter at compile."""
    lms = Lms()
    teleprompter = _meta(shout_metric, meta_model=lms.meta)
    with dspy.context(lm=lms.program):
        teleprompter.compile(Shout(), trainset=train(), valset=val())
    assert lms.calls("program") > 0
    with pytest.raises(ValueError, match="Either provide both prompt_model and task_model"):
        dspy.MIPROv2(shout_metric, auto="light")  # the control wants an LM at construction


def test_no_effect_options_warn_once_and_log_dir_becomes_the_run_dir(tmp_path):
    lms = Lms()
    with pytest.warns(UserWarning, match="ignores .*metric_threshold.*verbose.*view_data_batch_size") as record:
        _meta(shout_metric, lms.optimizer, lms.program, verbose=True, metric_threshold=0.5, meta_model=lms.meta,
              log_dir=str(tmp_path / "logs")).compile(Shout(), trainset=train(), valset=val(), view_data_batch_size=3)
    assert len([w for w in record if "ignores" in str(w.message)]) == 1
    assert any((tmp_path / "logs").rglob("*.json"))  # checkpoints went to log_dir


def test_num_trials_with_a_preset_warns():
    lms = Lms()
    with pytest.warns(UserWarning, match="num_trials"):
        _meta(shout_metric, lms.optimizer, lms.program, meta_model=lms.meta).compile(
            Shout(), trainset=train(), valset=val(), num_trials=3)


def test_metric_returning_text_stops_the_run_at_the_first_real_prediction():
    lms = Lms()
    with pytest.raises(MetricError, match="number or bool") as raised:
        _meta(lambda e, p, t=None: "good", lms.optimizer, lms.program, meta_model=lms.meta).compile(
            Shout(), trainset=train(), valset=val())
    assert isinstance(raised.value, TypeError)
    assert lms.calls("meta") == 0  # stopped long before the meta search


def test_compile_declares_mipro_options():
    import inspect

    mine = set(inspect.signature(MetaTeleprompter.compile).parameters)
    assert set(inspect.signature(dspy.MIPROv2.compile).parameters) <= mine
    assert list(inspect.signature(MetaTeleprompter.__init__).parameters)[1:17] == \
        list(inspect.signature(dspy.MIPROv2.__init__).parameters)[1:17]
    json.dumps(sorted(mine))
