"""reasoning-gym tasks: sizes, distinct questions, right gold answers, a binarized verifier metric, seeds."""

import ast
import builtins
import collections
import copy
import inspect
import json
import operator
import pickle
import re
import sys
from importlib.util import find_spec

import dspy
import pytest

from dspy_meta.benchmarks import gym
from dspy_meta.benchmarks.gym import (
    GYM_TASKS, MISSING_PACKAGE, SEED_STRIDE, gym_metric, gym_task_loader, load_reasoning_gym,
)
from dspy_meta.benchmarks.tasks import ChainOfThoughtQA
from dspy_meta.errors import BenchmarkDataError

SIZES = {"n_train": 50, "n_val": 100, "n_test": 300}
needs_gym = pytest.mark.skipif(find_spec("reasoning_gym") is None,
                               reason="reasoning-gym is not installed (pip install 'dspy-meta[benchmarks]')")


@pytest.fixture(scope="module")
def tasks():
    return {name: gym_task_loader(name)(**SIZES) for name in GYM_TASKS}


def _examples(task):
    return task.train + task.val + task.test


def _raw_score(example, answer):
    """The verifier's own score (not binarized)."""
    record = json.loads(example.gym_entry)
    return gym._verifier(record["dataset"], record["config"])(answer, record["entry"])


# ---------------------------------------------------------------- independent gold answers

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def _arithmetic(node):
    if isinstance(node, ast.Expression):
        return _arithmetic(node.body)
    if isinstance(node, ast.BinOp):
        return _OPS[type(node.op)](_arithmetic(node.left), _arithmetic(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_arithmetic(node.operand)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    raise ValueError(f"unexpected expression part {ast.dump(node)}")


def _gold_arithmetic(question):
    expression = re.fullmatch(r"Calculate (.*)\.", question.strip()).group(1)
    return str(_arithmetic(ast.parse(expression, mode="eval")))


def _gold_letter_count(question):
    letter, text = re.fullmatch(r'How many times does the letter "(.)" appear in the text: "(.*)"\?',
                                question.strip()).groups()
    return str(text.lower().count(letter))


def _gold_sorted(question):
    numbers = [float(n) for n in re.search(r"order: (.*)\n", question).group(1).split(", ")]
    return sorted(numbers, reverse="descending order" in question)


def _gold_family(question, person1, person2):
    """person1's relation to person2 in the story (the kinds a 3-5 person tree has)."""
    from reasoning_gym.graphs.family_relationships import FamilyRelationshipsConfig

    story = question.split("\n\n")[0]
    spouse, parents, couple = {}, collections.defaultdict(set), None
    female = set(FamilyRelationshipsConfig().female_names)
    for sentence in re.split(r"(?<=\.) ", story.strip()):
        if married := re.fullmatch(r"(\S+) is married to (\S+)\.", sentence):
            couple = married.groups()
            spouse[couple[0]], spouse[couple[1]] = couple[1], couple[0]
        elif children := re.fullmatch(r"They have (?:a child|children) called (.+)\.", sentence):
            for child in re.split(r", | and ", children.group(1)):
                parents[child] |= set(couple)
        else:
            raise ValueError(f"unexpected sentence {sentence!r}")
    woman = person1 in female
    if person1 in parents[person2]:
        return "mother" if woman else "father"
    if person2 in parents[person1]:
        return "daughter" if woman else "son"
    if spouse.get(person1) == person2:
        return "wife" if woman else "husband"
    if parents[person1] and parents[person1] == parents[person2]:
        return "sister" if woman else "brother"
    if any(person1 in parents[parent] for parent in parents[person2]):
        return "grandmother" if woman else "grandfather"
    if any(person2 in parents[parent] for parent in parents[person1]):
        return "granddaughter" if woman else "grandson"
    if person1 in spouse and person2 in parents[spouse[person1]]:
        return "daughter-in-law" if woman else "son-in-law"
    return None


def _check_gold(name, example):
    question, answer = example.question, example.answer
    metadata = json.loads(example.gym_entry)["entry"]["metadata"]
    if name == "gym_basic_arithmetic":
        return answer == _gold_arithmetic(question)
    if name == "gym_letter_counting":
        return answer == _gold_letter_count(question)
    if name == "gym_spell_backward":
        return answer == question.strip().rsplit(": ", 1)[1][::-1]
    if name == "gym_word_sequence_reversal":
        return answer == ", ".join(reversed(question.strip().rsplit(": ", 1)[1].split(", ")))
    if name == "gym_number_sorting":
        return [float(n) for n in ast.literal_eval(answer)] == _gold_sorted(question)
    if name == "gym_family_relationships":
        return answer == _gold_family(question, metadata["person1"], metadata["person2"])
    raise AssertionError(f"no independent check for {name}")


# Answers the verifier gives partial credit (strictly between 0 and 1), which must score 0.
def _partial_answers(name, gold):
    if name in ("gym_basic_arithmetic", "gym_letter_counting", "gym_word_sequence_reversal"):
        return [f"The answer is {gold}", f"{gold}."]  # the gold answer inside a longer one
    if name == "gym_spell_backward":
        return [gold + "x", gold[:-1] + ("q" if gold[-1].lower() != "q" else "z")]  # a matching prefix
    return []  # number_sorting and family_relationships give 0 or 1 only


def _wrong_answer(name, example):
    gold = example.answer
    if name in ("gym_basic_arithmetic", "gym_letter_counting"):
        return str(int(gold) + 1)
    if name == "gym_number_sorting":
        return str([str(float(n) + 5) for n in ast.literal_eval(gold)])
    if name == "gym_family_relationships":
        return "cousin"
    return gold[::-1] + "q"  # spell_backward, word_sequence_reversal


# ---------------------------------------------------------------- the registry entries

@needs_gym
def test_registry_entries_name_their_generator_and_take_the_split_settings_only():
    assert len(GYM_TASKS) >= 5 and "gym_word_sorting" not in GYM_TASKS
    for name, spec in GYM_TASKS.items():
        assert name == f"gym_{spec['dataset']}" and json.loads(json.dumps(spec["config"])) == spec["config"]
        loader = gym_task_loader(name)
        assert list(inspect.signature(loader).parameters) == ["n_train", "n_val", "n_test", "seed"]
        assert loader.__doc__ and spec["dataset"] in loader.__doc__
    with pytest.raises(ValueError, match="unknown reasoning-gym task"):
        gym_task_loader("gym_nope")


# ---------------------------------------------------------------- the tasks

@needs_gym
@pytest.mark.parametrize("name", list(GYM_TASKS))
def test_task_has_the_sizes_distinct_questions_and_right_gold_answers(tasks, name):
    task = tasks[name]
    assert (task.name, len(task.train), len(task.val), len(task.test)) == (name, 50, 100, 300)
    assert task.metric is gym_metric and isinstance(task.make_program(), ChainOfThoughtQA)
    assert "reasoning-gym==0.1.25" in task.source and GYM_TASKS[name]["dataset"] in task.source
    examples = _examples(task)
    assert len({e.question for e in examples}) == len(examples)
    for example in examples:
        assert set(example.inputs().keys()) == {"question"} and set(example.labels().keys()) == {"answer",
                                                                                                 "gym_entry"}
        assert example.answer and "\n" not in example.answer
    wrong = [e for e in examples if not _check_gold(name, e)]
    assert not wrong, f"{len(wrong)} wrong gold answers, e.g. {wrong[0].question!r} -> {wrong[0].answer!r}"
    indices = task.split_indices["train"] + task.split_indices["val"] + task.split_indices["test"]
    assert indices == sorted(set(indices)) and indices[-1] < 3 * len(examples)
    assert [json.loads(e.gym_entry)["entry"]["metadata"]["source_index"] for e in examples] == indices


@needs_gym
@pytest.mark.parametrize("name", list(GYM_TASKS))
def test_gold_scores_one_wrong_and_partial_answers_zero(tasks, name):
    examples = _examples(tasks[name])
    partial_seen = 0
    for example in examples[::15]:
        assert gym_metric(example, dspy.Prediction(answer=example.answer)) == 1.0
        assert gym_metric(example, dspy.Prediction(answer=f"  {example.answer}\n")) == 1.0
        wrong = _wrong_answer(name, example)
        assert _raw_score(example, wrong) < 1.0 and gym_metric(example, dspy.Prediction(answer=wrong)) == 0.0
        assert gym_metric(example, dspy.Prediction(answer="")) == 0.0
        assert gym_metric(example, dspy.Prediction(reasoning="no answer field")) == 0.0
        for partial in _partial_answers(name, example.answer):
            score = _raw_score(example, partial)
            assert 0.0 < score < 1.0, (partial, score)
            assert gym_metric(example, dspy.Prediction(answer=partial)) == 0.0
            partial_seen += 1
    assert partial_seen > 0 or not _partial_answers(name, "12")


@needs_gym
def test_spell_backward_near_one_prefix_credit_is_not_full_credit(tasks):
    six = next(e for e in tasks["gym_spell_backward"].test if len(e.answer) == 6)
    assert 1.0 - 1e-9 < _raw_score(six, six.answer + "x") < 1.0  # 6 x (1/6) sums to 0.9999999999999999
    assert gym_metric(six, dspy.Prediction(answer=six.answer + "x")) == 0.0
    assert gym_metric(six, dspy.Prediction(answer=six.answer.upper())) == 1.0  # the verifier ignores case


@needs_gym
def test_family_task_leaves_out_the_reversed_in_law_answers(tasks):
    task = tasks["gym_family_relationships"]
    assert not any("in-law" in e.answer for e in _examples(task))
    assert "excluded answer" in task.split_note
    # they would be there: the generator answers person2's relation to person1 for in-laws
    full = load_reasoning_gym("family_relationships", n_train=0, n_val=0, n_test=200,
                              config=GYM_TASKS["gym_family_relationships"]["config"])
    in_laws = [e for e in full.test if e.answer.endswith("-in-law")]
    assert in_laws and not any(_check_gold("gym_family_relationships", e) for e in in_laws)


@needs_gym
def test_metric_works_on_copies_pickles_json_and_plain_answers(tasks):
    example = tasks["gym_number_sorting"].test[7]
    rebuilt = dspy.Example(**json.loads(json.dumps(dict(example), default=str))).with_inputs("question")
    copies = [example.copy(), copy.deepcopy(example), pickle.loads(pickle.dumps(example)), rebuilt,
              example.copy(answer="not the gold answer")]  # the verifier reads gym_entry, not answer
    assert hash(example) == hash(example.copy())
    for each in copies:
        assert gym_metric(each, dspy.Prediction(answer=example.answer)) == 1.0
        assert gym_metric(each, dspy.Prediction(answer="[1, 2]")) == 0.0
    assert gym_metric(example, example.answer) == 1.0 and gym_metric(example, {"answer": example.answer}) == 1.0
    with pytest.raises(ValueError, match="gym_entry"):
        gym_metric(dspy.Example(question="q", answer="1"), dspy.Prediction(answer="1"))


# ---------------------------------------------------------------- seeds

@needs_gym
@pytest.mark.parametrize("name", list(GYM_TASKS))
def test_same_seed_same_questions_other_seed_other_questions(name):
    loader = gym_task_loader(name)
    first, again, other = (loader(n_train=5, n_val=5, n_test=10, seed=seed) for seed in (1, 1, 2))
    questions = [e.question for e in _examples(first)]
    assert questions == [e.question for e in _examples(again)]
    assert [e.answer for e in _examples(first)] == [e.answer for e in _examples(again)]
    others = {e.question for e in _examples(other)}
    assert len(others & set(questions)) <= 2  # not reasoning-gym's seeds 1 and 2, which share all but one
    assert f"seed {SEED_STRIDE}" in first.split_note


# ---------------------------------------------------------------- errors

@needs_gym
def test_bad_settings_and_generators_without_one_gold_answer_are_refused():
    with pytest.raises(ValueError, match="must not set"):
        load_reasoning_gym("letter_counting", config={"seed": 3})
    with pytest.raises(ValueError, match="not registered"):
        load_reasoning_gym("no_such_generator", n_train=1, n_val=1, n_test=1)
    with pytest.raises(ValueError, match="split sizes"):
        load_reasoning_gym("letter_counting", n_train=-1)
    with pytest.raises(BenchmarkDataError, match="no gold answer"):
        load_reasoning_gym("propositional_logic", n_train=1, n_val=1, n_test=1)
    with pytest.raises(BenchmarkDataError, match="distinct questions"):
        load_reasoning_gym("gcd", n_train=0, n_val=0, n_test=30, config={"min_value": 1, "max_value": 3})


def test_missing_package_is_a_benchmark_data_error(monkeypatch):
    entry = {"question": 'How many times does the letter "a" appear in the text: "a cat"?', "answer": "2",
             "metadata": {}}
    example = dspy.Example(question=entry["question"], answer="2", gym_entry=json.dumps(
        {"dataset": "letter_counting", "config": {}, "entry": entry})).with_inputs("question")
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)  # `import reasoning_gym` raises ImportError
    gym._VERIFIERS.clear()
    with pytest.raises(BenchmarkDataError) as raised:
        gym_task_loader("gym_letter_counting")()
    assert str(raised.value) == MISSING_PACKAGE
    with pytest.raises(BenchmarkDataError) as raised:
        gym_metric(example, dspy.Prediction(answer=example.answer))
    assert str(raised.value) == MISSING_PACKAGE


def test_a_broken_dependency_is_named(monkeypatch):
    real_import = builtins.__import__

    def failing(name, *args, **kwargs):
        if name == "reasoning_gym":
            raise ModuleNotFoundError("No module named 'sympy'", name="sympy")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", failing)
    with pytest.raises(BenchmarkDataError, match="installed but cannot be imported: No module named 'sympy'"):
        gym._reasoning_gym()
