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
