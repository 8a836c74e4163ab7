"""Tasks built from the real files: sizes, splits, literal examples, metrics, GPQA offline behaviour."""

import json
import os
import subprocess
import sys
import time

import dspy
import pytest

from dspy_meta.benchmarks import (
    BenchmarkDataError, ChainOfThoughtChoice, ChainOfThoughtQA, Task, available_tasks, bigbench_task_file,
    exact_match_metric,
    extract_choice_letter, load_bbh_dyck_languages, load_bbh_word_sorting, load_mmlu_abstract_algebra, load_task,
    load_word_sorting_short, multiple_choice_metric, short_answer_metric,
)
from dspy_meta.benchmarks.choice import gpqa_examples
from dspy_meta.benchmarks.tasks import DYCK_PREFIX, WORD_SORTING_PREFIX


@pytest.fixture(scope="module")
def word_sorting(bigbench_files):
    return load_bbh_word_sorting()


@pytest.fixture(scope="module")
def dyck(bigbench_files):
    return load_bbh_dyck_languages()


@pytest.fixture(scope="module")
def mmlu():
    return load_mmlu_abstract_algebra(seed=0)


def _first(task, split):
    example = getattr(task, split)[0]
    return example.question, example.answer


def test_bbh_word_sorting_sizes_splits_and_first_examples(word_sorting):
    assert isinstance(word_sorting, Task) and word_sorting.name == "bbh_word_sorting"
    assert (len(word_sorting.train), len(word_sorting.val), len(word_sorting.test)) == (50, 100, 100)
    assert _first(word_sorting, "train") == (WORD_SORTING_PREFIX + "syndrome therefrom", "syndrome therefrom")
    assert _first(word_sorting, "val") == (
        "Sort the following words alphabetically: List: hat core sonnet discreet", "core discreet hat sonnet")
    assert _first(word_sorting, "test") == (
        "Sort the following words alphabetically: List: oakland seaborg jacobi membrane trapezoidal allis marmot "
        "toggle anthology", "allis anthology jacobi marmot membrane oakland seaborg toggle trapezoidal")
    assert word_sorting.split_indices["train"][:3] == [68, 1807, 845]
    assert (word_sorting.split_indices["val"][0], word_sorting.split_indices["test"][0]) == (207, 731)


def test_bbh_dyck_sizes_splits_and_first_examples(dyck):
    assert dyck.name == "bbh_dyck_languages"
    assert (len(dyck.train), len(dyck.val), len(dyck.test)) == (50, 100, 100)
    assert _first(dyck, "train") == (DYCK_PREFIX + "[ [", "] ]")
    assert _first(dyck, "val") == (
        "Complete the rest of the sequence, making sure that the parentheses are closed properly. "
        "Input: ( < > ( [ ( )", "] ) )")
    assert _first(dyck, "test") == (DYCK_PREFIX + "( < ( [ ] ) > {", "} )")


@pytest.mark.parametrize("task_name", ["word_sorting", "dyck_languages"])
def test_bbh_examples_match_the_raw_json(task_name, word_sorting, dyck):
    """What `datasets` loaded equals a plain-json reading of the same 250 records."""
    task = word_sorting if task_name == "word_sorting" else dyck
    records = json.loads(bigbench_task_file(task_name).read_text())["examples"]
    indices = [i for split in ("train", "val", "test") for i in task.split_indices[split]]
    examples = task.train + task.val + task.test
    assert len(set(indices)) == 250
    for index, example in zip(indices, examples):
        record = records[index]
        if task_name == "word_sorting":
            assert example.answer == record["target"] == " ".join(sorted(record["input"].split()))
        else:
            assert example.answer == next(k for k, v in record["target_scores"].items() if v == 1)
        assert example.question.endswith(record["input"])
        assert set(example.inputs().keys()) == {"question"}


def test_exact_match_normalises_whitespace():
    example = dspy.Example(question=WORD_SORTING_PREFIX + "sonnet hat core discreet",
                           answer="core discreet hat sonnet").with_inputs("question")
    assert exact_match_metric(example, dspy.Prediction(answer="  core  discreet\nhat\tsonnet ")) == 1.0
    assert exact_match_metric(example, dspy.Prediction(answer="core discreet sonnet hat")) == 0.0
    assert exact_match_metric(example, dspy.Prediction(answer="Core discreet hat sonnet")) == 0.0
    assert exact_match_metric(example, dspy.Prediction(reasoning="no answer field")) == 0.0
    assert exact_match_metric(example, {"answer": "core discreet hat sonnet"}) == 1.0
    assert exact_match_metric(example, "core discreet hat sonnet") == 1.0
    assert exact_match_metric(example, None) == 0.0


def test_make_program_is_fresh_zero_shot_cot_and_round_trips(tmp_path):
    word_sorting = load_task("word_sorting_generated", n_train=2, n_val=1, n_test=1)
    first, second = word_sorting.make_program(), word_sorting.make_program()
    assert type(first) is ChainOfThoughtQA and first is not second
    assert isinstance(first.predict, dspy.ChainOfThought) and first.predict.predict.demos == []
    assert list(first.predict.predict.signature.input_fields) == ["question"]
    first.predict.predict.demos = [word_sorting.train[0]]
    assert second.predict.predict.demos == []
    first.save(tmp_path / "program.json")
    loaded = type(first)()
    loaded.load(tmp_path / "program.json")
    assert len(loaded.predict.predict.demos) == 1
    assert loaded.predict.predict.demos[0]["answer"] == word_sorting.train[0].answer


def test_word_sorting_short_variant(word_sorting):
    task = load_word_sorting_short(max_words=4, n_train=5, n_val=6, n_test=7, seed=3)
    assert task.name == "bigbench_word_sorting_short" and "not BBH" in task.split_note
    assert (len(task.train), len(task.val), len(task.test)) == (5, 6, 7)
    chosen = task.split_indices["train"] + task.split_indices["val"] + task.split_indices["test"]
    bbh = {i for split in word_sorting.split_indices.values() for i in split}
    assert len(set(chosen)) == 18 and not set(chosen) & bbh
    for example in task.train + task.val + task.test:
        words = example.question.removeprefix(WORD_SORTING_PREFIX).split()
        assert 2 <= len(words) <= 4 and example.answer == " ".join(sorted(words))
    again = load_word_sorting_short(max_words=4, n_train=5, n_val=6, n_test=7, seed=3)
    assert again.split_indices == task.split_indices
    other = load_word_sorting_short(max_words=4, n_train=5, n_val=6, n_test=7, seed=4)
    assert other.split_indices != task.split_indices
    with pytest.raises(ValueError, match="only"):
        load_word_sorting_short(max_words=2, n_train=100, n_val=0, n_test=0)


def test_dyck_languages_short_variant(dyck):
    task = load_task("bigbench_dyck_languages_short", max_input_tokens=6, n_train=4, n_val=5, n_test=6, seed=2)
    assert task.name == "bigbench_dyck_languages_short" and "not BBH" in task.split_note
    chosen = task.split_indices["train"] + task.split_indices["val"] + task.split_indices["test"]
    bbh = {i for split in dyck.split_indices.values() for i in split}
    assert len(set(chosen)) == 15 and not set(chosen) & bbh
    for example in task.train + task.val + task.test:
        assert example.question.startswith(DYCK_PREFIX) and len(example.question.removeprefix(DYCK_PREFIX).split()) <= 6
    with pytest.raises(ValueError, match="only"):
        load_task("bigbench_dyck_languages_short", max_input_tokens=2, n_train=100, n_val=0, n_test=0)


def test_colored_objects_labels_are_the_option_scored_one(bigbench_files):
    task = load_task("bigbench_colored_objects", n_train=40, n_val=1, n_test=1, seed=0)
    raw = json.loads(bigbench_task_file("reasoning_about_colored_objects").read_text(encoding="utf-8"))["examples"]
    for example, position in zip(task.train, task.split_indices["train"], strict=True):
        record = raw[position]
        assert example.question == record["input"] and record["target_scores"][example.answer] == 1
    assert {"yes", "no"} & {ex.answer for ex in task.train} or any(ex.answer.isdigit() for ex in task.train)
    assert task.metric is short_answer_metric


def test_object_counting_sample_labels(bigbench_files):
    task = load_task("bigbench_object_counting", n_train=5, n_val=7, n_test=9, seed=3)
    assert (len(task.train), len(task.val), len(task.test)) == (5, 7, 9)
    positions = task.split_indices["train"] + task.split_indices["val"] + task.split_indices["test"]
    assert len(set(positions)) == 21 and all(0 <= i < 1000 for i in positions)
    raw = json.loads(bigbench_task_file("object_counting").read_text(encoding="utf-8"))["examples"]
    first = raw[task.split_indices["val"][0]]
    assert task.val[0].question == first["input"] and task.val[0].answer == first["target"][1]
    assert load_task("bigbench_object_counting", n_train=5, n_val=7, n_test=9, seed=4).split_indices != \
        task.split_indices
    assert task.metric is short_answer_metric
    with pytest.raises(ValueError, match="cannot draw"):
        load_task("bigbench_object_counting", n_train=500, n_val=500, n_test=1)


def test_short_answer_metric_accepts_the_number_word():
    example = dspy.Example(question="q", answer="7").with_inputs("question")
    scores = {text: short_answer_metric(example, dspy.Prediction(answer=text))
              for text in ("7", " 7. ", "seven", "Seven", "You have 7.", "8", "77", "")}
    assert scores == {"7": 1.0, " 7. ": 1.0, "seven": 1.0, "Seven": 1.0, "You have 7.": 0.0, "8": 0.0, "77": 0.0,
                      "": 0.0}
    assert short_answer_metric(example, None) == 0.0


def test_mmlu_sizes_split_and_first_examples(mmlu):
    assert mmlu.name == "mmlu_abstract_algebra"
    assert (len(mmlu.train), len(mmlu.val), len(mmlu.test)) == (10, 50, 40)
    indices = mmlu.split_indices
    assert sorted(indices["train"] + indices["val"] + indices["test"]) == list(range(100))
    assert (indices["train"][0], indices["val"][0], indices["test"][0]) == (23, 16, 58)
    assert _first(mmlu, "train") == (
        "The set of all nth roots of unity under multiplication of complex numbers form a/an\n\n"
        "A) semi group with identity\nB) commutative semigroups with identity\nC) group\nD) abelian group", "D")
    assert _first(mmlu, "val") == (
        "The inverse of -i in the multiplicative group, {1, -1, i , -i} is\n\nA) 1\nB) -1\nC) i\nD) -i", "C")
    assert _first(mmlu, "test") == (
        "Statement 1 | Every group of order 159 is cyclic. Statement 2 | Every group of order 102 has a nontrivial "
        "proper normal subgroup.\n\nA) True, True\nB) False, False\nC) True, False\nD) False, True", "A")
    assert all(ex.answer in "ABCD" and len(ex.answer) == 1 for ex in mmlu.train + mmlu.val + mmlu.test)
    assert load_task("mmlu_abstract_algebra", seed=0).split_indices == indices
    assert load_task("mmlu_abstract_algebra", seed=1).split_indices != indices


def test_multiple_choice_program_asks_for_the_letter(mmlu, tmp_path):
    program = mmlu.make_program()
    assert type(program) is ChainOfThoughtChoice and program is not mmlu.make_program()
    answer = program.predict.predict.signature.output_fields["answer"]
    assert "letter" in answer.json_schema_extra["desc"]
    program.save(tmp_path / "p.json")
    reloaded = type(program)()
    reloaded.load(tmp_path / "p.json")  # a no-argument constructor, as resume and load_program need
    assert reloaded.predict.predict.signature.output_fields["answer"].json_schema_extra["desc"] == \
        answer.json_schema_extra["desc"]


@pytest.mark.parametrize("text, letter", [
    ("Answer: B", "B"), ("Answer:(C)", "C"), ("answer: D", "D"), ("**Answer:** A", "A"),
    ("The answer is C.", "C"), ("Answer: A. No wait. Answer: D", "D"),
    ("B", "B"), (" (B) ", "B"), ("B.", "B"), ("[C]", "C"), ("B) 4", "B"), ("(D) 0,4", "D"), ("A. True, True", "A"),
    ("Answer: Because the group is cyclic", None), ("A group of order 4", None), ("4", None), ("b", None),
    ("", None), (None, None),
])
def test_extract_choice_letter(text, letter):
    assert extract_choice_letter(text) == letter


def test_multiple_choice_metric_reads_the_answer_field(mmlu):
    example = mmlu.val[0]  # answer C
    assert multiple_choice_metric(example, dspy.Prediction(reasoning="...", answer="C) i")) == 1.0
    assert multiple_choice_metric(example, dspy.Prediction(reasoning="Answer: C", answer="i")) == 0.0
    assert multiple_choice_metric(example, dspy.Prediction(answer="Answer: (B)")) == 0.0
    assert multiple_choice_metric(example, "Answer: C") == 1.0


def test_gpqa_rows_become_shuffled_letter_examples():
    rows = [{"Question": f"Q{i}?", "Correct Answer": f"right{i}", "Incorrect Answer 1": "w1",
             "Incorrect Answer 2": "w2", "Incorrect Answer 3": "w3"} for i in range(12)]
    examples = gpqa_examples(rows, seed=0)
    for i, example in enumerate(examples):
        assert f"{example.answer}) right{i}" in example.question.splitlines()
    assert len({ex.answer for ex in examples}) > 1  # choice order really is shuffled
    assert [ex.answer for ex in gpqa_examples(rows, seed=0)] == [ex.answer for ex in examples]


def test_gpqa_offline_fails_fast_with_a_clear_message(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    env.pop("HF_DATASETS_CACHE", None)
    code = ("import sys\nfrom dspy_meta.benchmarks import BenchmarkDataError, load_task\n"
            "try:\n    load_task('gpqa_diamond')\nexcept BenchmarkDataError as exc:\n    print(exc)\n    sys.exit(3)\n")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert time.monotonic() - start < 30  # online-but-unreachable retries take longer; offline must not
    assert "gated" in proc.stdout and "token" in proc.stdout and "Idavidrein/gpqa" in proc.stdout


def test_registry():
    # Every loader of earlier releases is still registered (the suite only adds tasks).
    assert {"bbh_word_sorting", "bbh_dyck_languages", "bigbench_word_sorting_short", "bigbench_dyck_languages_short",
            "bigbench_object_counting", "bigbench_colored_objects", "word_sorting_generated", "mmlu_abstract_algebra",
            "gpqa_diamond"} <= set(available_tasks())
    assert load_task("word_sorting_generated", n_train=1, n_val=1, n_test=1).name == "word_sorting_generated"
    with pytest.raises(ValueError, match="available: word_sorting_generated"):
        load_task("bbh_navigate")
    assert issubclass(BenchmarkDataError, RuntimeError)
