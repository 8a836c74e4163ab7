"""MMLU subjects from the pinned file: seeded splits of one topic, four-choice questions, the letter metric."""

import pytest

from dspy_meta.benchmarks import load_task, multiple_choice_metric
from dspy_meta.benchmarks.mmlu import LARGE_MMLU_SUBJECTS, load_mmlu_subject, mmlu_topic_sizes


def test_the_large_subjects_are_the_topics_with_400_questions_or_more():
    sizes = mmlu_topic_sizes()
    assert len(sizes) == 57 and sum(sizes.values()) == 14042
    assert {topic: n for topic, n in sizes.items() if n >= 400} == LARGE_MMLU_SUBJECTS


def test_a_subject_splits_all_its_questions_by_seed():
    task = load_mmlu_subject("high school psychology", n_train=20, n_val=50, seed=1)
    assert (len(task.train), len(task.val), len(task.test)) == (20, 50, 464)  # 534 distinct of 545
    positions = task.split_indices["train"] + task.split_indices["val"] + task.split_indices["test"]
    assert sorted(positions) == list(range(534))
    assert "11 repeat(s) dropped" in task.split_note
    example = task.test[0]
    assert example.answer in "ABCD" and "\nA) " in example.question and "\nD) " in example.question
    assert multiple_choice_metric(example, type("P", (), {"answer": f"Answer: {example.answer}"})()) == 1.0
    other = load_mmlu_subject("high school psychology", n_train=20, n_val=50, seed=2)
    assert [e.question for e in other.test] != [e.question for e in task.test]
    assert task.make_program().__class__.__name__ == "ChainOfThoughtChoice"


def test_registered_subjects_use_their_topic_and_bad_requests_are_refused():
    assert load_task("mmlu_miscellaneous").name == "mmlu_miscellaneous"
    with pytest.raises(ValueError, match="no MMLU topic 'astrology'"):
        load_mmlu_subject("astrology")
    with pytest.raises(ValueError, match="cannot split 534"):
        load_mmlu_subject("high school psychology", n_train=500, n_val=50)
