"""Program transforms on a scripted LM: what each does to answers, its cost, and save/load."""

import itertools
import threading

import dspy
import pytest

from dspy_meta.plans import PlanError, PlanLimits, plan_from_dict
from dspy_meta.plans.nodes import calls_factor
from dspy_meta.programs import get_transform, load_program, save_program, structure_of
from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.toy_task import Shout


def _sampling_engine(greedy: str, samples: list[str]):
    """Answers `greedy` at temperature 0 and cycles through `samples` otherwise."""
    cycle, lock = itertools.cycle(samples), threading.Lock()

    def respond(call):
        if "correct" in call.output_fields:
            return {"correct": call.inputs.get("proposed_answer", "").find("GOOD") >= 0}
        if "analysis" in call.output_fields:
            return {"analysis": "It is a single word."}
        if not call.temperature:
            return {"reasoning": "-", "answer": greedy}
        with lock:
            return {"reasoning": "-", "answer": next(cycle)}
    return ScriptedEngine(respond)


def _run(program, engine, **inputs):
    with dspy.context(lm=engine.as_lm()):
        return program(**inputs)


def test_self_consistency_answers_with_the_most_common_sample():
    engine = _sampling_engine("greedy", ["A", "B", "b ", "C", "B"])
    program = get_transform("self_consistency")(Shout(), samples=5, temperature=0.7)
    assert _run(program, engine, word="x").answer.strip().lower() == "b"
    assert len(engine.calls) == 5 and all(call.temperature == 0.7 for call in engine.calls)


def test_verify_and_retry_keeps_the_first_answer_the_check_accepts():
    engine = _sampling_engine("bad", ["still bad", "GOOD one", "GOOD two"])
    program = get_transform("verify_and_retry")(Shout(), attempts=3)
    assert _run(program, engine, word="x").answer == "GOOD one"
    checks = [c for c in engine.calls if "correct" in c.output_fields]
    assert len(checks) == 3  # greedy, then two samples: the third answer is never asked for


def test_normalize_runs_its_fixed_steps_on_answer_fields_only():
    engine = ScriptedEngine(lambda call: {"reasoning": " keep. ", "answer": '  "Answer: APPLE."  '})
    program = get_transform("normalize")(Shout(), steps="after_answer_label,strip_quotes,strip_trailing_period")
    prediction = _run(program, engine, word="apple")
    assert prediction.answer == "APPLE" and prediction.reasoning == "keep."  # reasoning keeps its period
    with pytest.raises(ValueError, match="normalize steps must come from"):
        get_transform("normalize")(Shout(), steps="strip,os.system")


def test_decompose_analyses_first_then_answers_with_the_analysis():
    engine = _sampling_engine("APPLE", [])
    student = Shout()
    student.answer.predict.demos = [dspy.Example(word="a", reasoning="-", answer="A")]
    program = get_transform("decompose")(student)
    assert _run(program, engine, word="apple").answer == "APPLE"
    analyse, answer = engine.calls
    assert analyse.output_fields == ("analysis",) and answer.inputs["analysis"] == "It is a single word."
    assert len(program.predictors()) == 2 and program.answer.demos == student.answer.predict.demos
    with pytest.raises(ValueError, match="before the other transforms"):
        get_transform("decompose")(get_transform("normalize")(Shout()))

    class Two(dspy.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = dspy.Predict("word -> x"), dspy.Predict("x -> answer")

    with pytest.raises(ValueError, match="one predictor"):
        get_transform("decompose")(Two())


def test_an_ensemble_votes_across_its_members():
    first, second, third = Shout(), Shout(), Shout()
    for program, text in ((first, "One"), (second, "Two"), (third, "Two")):
        program.answer.predict.signature = program.answer.predict.signature.with_instructions(text)
    engine = ScriptedEngine(lambda call: {"reasoning": "-", "answer": call.instructions})
    ensemble = get_transform("ensemble")([first, second, third])
    assert _run(ensemble, engine, word="x").answer == "Two"


def test_a_transformed_program_saves_and_loads_around_a_fresh_student(tmp_path):
    student = Shout()
    program = get_transform("self_consistency")(get_transform("decompose")(student, analysis="Think about case."),
                                                 samples=3)
    program.predictors()[1].signature = program.predictors()[1].signature.with_instructions("Shout it back.")
    save_program(program, tmp_path / "p.json")
    loaded = load_program(tmp_path / "p.json", Shout())
    assert structure_of(loaded) == structure_of(program)
    assert structure_of(loaded)["inner"]["params"]["analysis"] == "Think about case."
    assert loaded.predictors()[1].signature.instructions == "Shout it back."


def test_plans_bound_the_inference_cost():
    plan = {"op": "sequence", "steps": [{"op": "transform", "kind": "decompose"},
                                        {"op": "transform", "kind": "self_consistency", "params": {"samples": 4}}]}
    assert calls_factor(plan_from_dict(plan)) == (4, 4)  # (1 + 1 analysis call) x 4 samples
    with pytest.raises(PlanError, match="at most 6 x"):
        plan_from_dict(plan, limits=PlanLimits(max_calls_factor=6))
    with pytest.raises(PlanError, match=r"plan.params: transform parameter 'samples' must have between 2 and 9"):
        plan_from_dict({"op": "transform", "kind": "self_consistency", "params": {"samples": 50}})
    with pytest.raises(PlanError, match="unknown transform 'exec'"):
        plan_from_dict({"op": "transform", "kind": "exec", "params": {"code": "import os"}})


@pytest.mark.parametrize("kind", ["self_consistency", "verify_and_retry"])
def test_a_nan_transform_parameter_fails_the_range_check(kind):
    with pytest.raises(PlanError, match=r"plan.params: transform parameter 'temperature' must have between 0.1"):
        plan_from_dict({"op": "transform", "kind": kind, "params": {"temperature": float("nan")}})


def test_a_transformed_student_is_rebuilt_without_its_structure_twice():
    """Compiling a transformed program again (issue 30: KeyError 'program.program.answer'): a structure that
    holds the student's own is rebuilt around a copy of the student, not around the student once more."""
    from dspy_meta.programs import rebuild

    student = get_transform("normalize")(Shout(), steps="strip")
    names = [name for name, _ in student.named_predictors()]
    same = rebuild(student, structure_of(student))
    assert type(same) is type(student) and [name for name, _ in same.named_predictors()] == names
    around = get_transform("self_consistency")(student.deepcopy(), samples=3)
    rebuilt = rebuild(student, structure_of(around))
    assert [name for name, _ in rebuilt.named_predictors()] == [name for name, _ in around.named_predictors()]
    decomposed = get_transform("decompose")(Shout())
    wrapped = rebuild(decomposed, structure_of(get_transform("normalize")(decomposed.deepcopy())))
    assert structure_of(wrapped)["inner"] == structure_of(decomposed)


def test_the_returned_program_is_a_fresh_student_with_example_demos():
    from dspy_meta.programs import keeps_student_class, returned_program
    from dspy_meta.runtime.program_state import load_program_state, program_state

    found = Shout()
    found.answer.predict.demos = [dspy.Example(word="apple", answer="APPLE").with_inputs("word")]
    found.answer.predict.signature = found.answer.predict.signature.with_instructions("Shout.")
    from_state = load_program_state(Shout(), program_state(found))  # a checkpoint's program: dict demos
    assert isinstance(from_state.answer.predict.demos[0], dict)
    for source in (found, from_state):
        program = returned_program(Shout(), source)
        assert type(program) is Shout and keeps_student_class(Shout(), program)
        (demo,) = program.answer.predict.demos
        assert isinstance(demo, dspy.Example) and demo.word == "apple" and demo is not source.answer.predict.demos[0]
        assert program.answer.predict.signature.instructions == "Shout."
    assert list(returned_program(Shout(), found).answer.predict.demos[0].inputs().keys()) == ["word"]
    assert not keeps_student_class(Shout(), get_transform("normalize")(Shout()))
