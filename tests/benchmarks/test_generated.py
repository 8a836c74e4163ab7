"""Generated word sorting: reproducible from the pinned MMLU file, BIG-bench's format, valid answers."""

import pytest

from dspy_meta.benchmarks import exact_match_metric, load_task
from dspy_meta.benchmarks.generated import load_word_sorting_generated, mmlu_vocabulary
from dspy_meta.benchmarks.tasks import WORD_SORTING_PREFIX


def test_vocabulary_is_lowercase_words_of_the_mmlu_questions():
    words = mmlu_vocabulary()
    assert len(words) > 5000 and words == sorted(set(words))
    assert all(word.isalpha() and word.islower() and 4 <= len(word) <= 10 for word in words)
    assert {"group", "element", "patient"} <= set(words)


def test_examples_are_lists_in_draw_order_with_their_sorted_answer():
    task = load_task("word_sorting_generated", max_words=4, n_train=10, n_val=20, n_test=30, seed=5)
    assert (task.name, len(task.train), len(task.val), len(task.test)) == ("word_sorting_generated", 10, 20, 30)
    examples = task.train + task.val + task.test
    lengths = set()
    for example in examples:
        assert example.question.startswith(WORD_SORTING_PREFIX) and set(example.inputs().keys()) == {"question"}
        words = example.question[len(WORD_SORTING_PREFIX):].split()
        lengths.add(len(words))
        assert example.answer == " ".join(sorted(words))
        assert exact_match_metric(example, type("P", (), {"answer": example.answer})()) == 1.0
    assert lengths == {2, 3, 4}
    assert 0 < sum(e.answer == e.question[len(WORD_SORTING_PREFIX):] for e in examples) < len(examples) / 2
    assert len({frozenset(e.question.split()) for e in examples}) == len(examples)
    assert task.split_indices["test"] == list(range(30, 60))


def test_same_seed_same_task_other_seed_other_lists():
    first, again = (load_word_sorting_generated(n_train=3, n_val=3, n_test=3, seed=1) for _ in range(2))
    other = load_word_sorting_generated(n_train=3, n_val=3, n_test=3, seed=2)
    assert [e.question for e in first.test] == [e.question for e in again.test]
    assert [e.question for e in first.test] != [e.question for e in other.test]


@pytest.mark.parametrize("kwargs, message", [
    ({"max_words": 1}, "min_words <= max_words"),
    ({"min_words": 4, "max_words": 3}, "min_words <= max_words"),
    ({"n_train": -1}, "split sizes"),
    ({"n_train": 0, "n_val": 0, "n_test": 0}, "split sizes"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_word_sorting_generated(**kwargs)


# ---------------------------------------------------------------- Dyck languages

from dspy_meta.benchmarks.generated import BRACKETS, dyck_closing, load_dyck_languages_generated  # noqa: E402
from dspy_meta.benchmarks.tasks import DYCK_PREFIX  # noqa: E402


def _balanced(tokens):
    stack = []
    for token in tokens:
        if token in BRACKETS:
            stack.append(token)
        elif not stack or BRACKETS[stack.pop()] != token:
            return False
    return not stack


def test_dyck_answers_close_the_input_exactly_and_inputs_are_distinct():
    task = load_dyck_languages_generated(min_tokens=3, max_tokens=12, n_train=20, n_val=50, n_test=300, seed=3)
    assert (len(task.train), len(task.val), len(task.test)) == (20, 50, 300)
    examples = task.train + task.val + task.test
    lengths = set()
    for example in examples:
        assert example.question.startswith(DYCK_PREFIX) and set(example.inputs().keys()) == {"question"}
        tokens = example.question[len(DYCK_PREFIX):].split()
        answer = example.answer.split()
        lengths.add(len(tokens))
        assert answer, "every input leaves a bracket open"
        assert _balanced(tokens + answer)
        # No shorter answer closes it: the answer is the minimal closing (BBH's target).
        assert not _balanced(tokens + answer[:-1])
    assert lengths == set(range(3, 13))
    assert len({e.question for e in examples}) == len(examples)


def test_dyck_closing_refuses_a_sequence_that_is_not_a_prefix():
    assert dyck_closing("( [ ] {".split()) == ["}", ")"]
    with pytest.raises(ValueError, match="not a prefix"):
        dyck_closing("( ]".split())
    with pytest.raises(ValueError, match="unknown bracket"):
        dyck_closing("( x".split())


def test_dyck_seeds_and_bad_settings():
    first = load_dyck_languages_generated(n_train=2, n_val=2, n_test=5, seed=1)
    again = load_dyck_languages_generated(n_train=2, n_val=2, n_test=5, seed=1)
    other = load_dyck_languages_generated(n_train=2, n_val=2, n_test=5, seed=2)
    assert [e.question for e in first.test] == [e.question for e in again.test] != [e.question for e in other.test]
    with pytest.raises(ValueError, match="min_tokens <= max_tokens"):
        load_dyck_languages_generated(min_tokens=5, max_tokens=4)
    with pytest.raises(ValueError, match="max_depth"):
        load_dyck_languages_generated(max_depth=1)
    with pytest.raises(ValueError, match="distinct examples"):  # one-token inputs: only 4 exist
        load_dyck_languages_generated(min_tokens=1, max_tokens=1, n_train=2, n_val=2, n_test=2)


def test_bbh_ranges_of_both_generated_tasks():
    words = load_task("word_sorting_bbh_generated", n_train=0, n_val=0, n_test=400)
    counts = {len(e.question[len(WORD_SORTING_PREFIX):].split()) for e in words.test}
    assert min(counts) == 2 and max(counts) == 20
    dyck = load_task("dyck_languages_bbh_generated", n_train=0, n_val=0, n_test=400)
    lengths = {len(e.question[len(DYCK_PREFIX):].split()) for e in dyck.test}
    assert min(lengths) <= 5 and max(lengths) >= 38
    assert words.name == "word_sorting_bbh_generated" and dyck.name == "dyck_languages_bbh_generated"
