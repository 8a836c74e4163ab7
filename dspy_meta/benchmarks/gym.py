"""Procedural reasoning tasks from reasoning-gym (PyPI ``reasoning-gym==0.1.25``, Apache-2.0).

`load_reasoning_gym` turns one of reasoning-gym's generators into a `Task`: each entry becomes
``dspy.Example(question=..., answer=...).with_inputs("question")``, and the entry itself (its question,
gold answer and metadata), with the generator's name and config, is kept as a JSON string in the
label field ``gym_entry`` (a string, so that examples stay hashable, copyable and JSON-safe).
`gym_metric` scores ``prediction.answer`` with the generator's own verifier (``score_answer``) and
binarizes it: 1.0 only for full credit.

`GYM_TASKS` names the suite's generators with fixed, easy configs (short one-line answers, exactly
checkable, neither 0% nor 100% for a 0.5B chat model); `gym_task_loader` gives their loaders.

reasoning-gym is imported only when a task is loaded or scored: its import takes seconds (it imports
every generator, with sympy and matplotlib). Entry ``i`` of a reasoning-gym dataset is drawn with
``random.Random(dataset_seed + i)``, so datasets of consecutive seeds share almost all their entries;
a task's ``seed`` therefore maps to the dataset seed ``seed * SEED_STRIDE``, which keeps the entries of
different seeds apart (seed 0 is reasoning-gym's own seed 0).
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable, Collection
from typing import Any

import dspy
from cachetools import LRUCache, cached

from dspy_meta.benchmarks.tasks import Task, _answer_text
from dspy_meta.errors import BenchmarkDataError

__all__ = ["GYM_TASKS", "REASONING_GYM_VERSION", "SEED_STRIDE", "gym_metric", "gym_task_loader",
           "load_reasoning_gym"]

logger = logging.getLogger(__name__)

REASONING_GYM_VERSION = "0.1.25"  # the pinned version the configs and notes below were checked against
SEED_STRIDE = 1_000_000           # task seed s -> reasoning-gym seed s * SEED_STRIDE (see the module doc)
MISSING_PACKAGE = "reasoning-gym tasks need the `reasoning-gym` package: pip install 'dspy-meta[benchmarks]'"
ENTRY_FIELD = "gym_entry"
_DRAWS_PER_EXAMPLE, _EXTRA_DRAWS = 3, 100  # how far to draw past repeated questions before giving up

# The suite's generators, with configs checked on reasoning-gym 0.1.25 (every config is JSON data:
# it is stored in each example and rebuilt for scoring). Each answer is one short line; the verifier
# of each gives the gold answer full credit and is strict about its format (see `gym_metric`). The gold
# answers of every task were recomputed independently on 3000 entries (tests/benchmarks/test_gym.py
# keeps a check of each). An entry may list ``exclude_answers``: gold answers that are wrong, whose
# entries are skipped.
#
# Left out after those checks: basic_arithmetic with allow_parentheses=False (it evaluates left to
# right, "3 + 2 * 3" -> 15: 10% wrong), syllogism (its validity rules miss the undistributed middle,
# "All A are B, Some B are C" -> "Some A are C" is Yes: 8% wrong), propositional_logic (no gold answer).
GYM_TASKS: dict[str, dict[str, Any]] = {
    # Arithmetic: 2-3 terms of 1-2 digits (negative numbers too) with + - * and parentheses, as in
    # "( 2 * 7 ) + -7". Verifier: the exact answer string ("-4.0" for "-4" is partial credit).
    "gym_basic_arithmetic": {"dataset": "basic_arithmetic",
                             "config": {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 2,
                                        "operators": ["+", "-", "*"], "allow_parentheses": True,
                                        "allow_negation": False}},
    # Counting: how often a letter occurs in a 3-6 word span of text, upper case included (the question
    # does not say so; it matters in 8% of the entries). Verifier: the exact count.
    "gym_letter_counting": {"dataset": "letter_counting", "config": {"min_words": 3, "max_words": 6}},
    # String manipulation: spell a 3-6 letter word backward. Verifier: case-insensitive, partial credit
    # for a matching prefix; words of at most 8 letters keep the prefix credit of a too-long answer below 1
    # (for 9, 11, 18, ... letters it sums to 1.0000000000000002: full credit for the word plus junk).
    "gym_spell_backward": {"dataset": "spell_backward", "config": {"min_word_len": 3, "max_word_len": 6}},
    # Sorting: 3-5 integers in [-99, 99], ascending or descending, answered as a list such as
    # ['-46.0', '-10.0', '26.0']. Verifier: any JSON-like list of the right length, sorted the asked way,
    # each number within 1 of the gold one (so [-46, -10, 26] passes, and so does [-45, -10, 26]).
    "gym_number_sorting": {"dataset": "number_sorting",
                           "config": {"min_numbers": 3, "max_numbers": 5, "min_decimals": 0, "max_decimals": 0,
                                      "min_value": -99, "max_value": 99}},
    # List manipulation: reverse a list of 3-5 words, answered "c, b, a". Verifier: the exact string.
    "gym_word_sequence_reversal": {"dataset": "word_sequence_reversal", "config": {"min_words": 3, "max_words": 5}},
    # Relational reasoning: one word for how two people of a 3-5 person family tree are related.
    # Verifier: case-insensitive exact word ("son." scores 0). Its in-law answers are reversed ("What is
    # Mia to Noah?" with Mia married to Noah's son: "father-in-law"; 11% of the entries): skipped.
    "gym_family_relationships": {"dataset": "family_relationships",
                                 "config": {"min_family_size": 3, "max_family_size": 5},
                                 "exclude_answers": ["father-in-law", "mother-in-law"]},
}

_ABOUT = {
    "gym_basic_arithmetic": "Evaluate 2-3 term integer expressions with + - * and parentheses (reasoning-gym "
                            "basic_arithmetic).",
    "gym_letter_counting": "Count a letter's occurrences in a short text span (reasoning-gym letter_counting).",
    "gym_spell_backward": "Spell a 3-6 letter word backward (reasoning-gym spell_backward).",
    "gym_number_sorting": "Sort 3-5 integers ascending or descending (reasoning-gym number_sorting).",
    "gym_word_sequence_reversal": "Reverse a list of 3-5 words (reasoning-gym word_sequence_reversal).",
    "gym_family_relationships": "Name the relation of two people in a small family tree, in-laws left out "
                                "(reasoning-gym family_relationships).",
}


# ---------------------------------------------------------------- the package

def _reasoning_gym():
    """The `reasoning_gym` module (an optional extra, imported on first use: a slow import)."""
    try:
        import reasoning_gym
    except ImportError as exc:
        if exc.name is not None and exc.name != "reasoning_gym" and not exc.name.startswith("reasoning_gym."):
            raise BenchmarkDataError(f"reasoning-gym is installed but cannot be imported: {exc}") from exc
        raise BenchmarkDataError(MISSING_PACKAGE) from None
    return reasoning_gym


@functools.cache
def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("reasoning-gym")  # reasoning_gym.__version__ says 0.1.19 in the 0.1.25 wheel
    except PackageNotFoundError:
        found = "unknown"
    if found != REASONING_GYM_VERSION:
        logger.warning("reasoning-gym %s is installed; the gym tasks were checked with %s (their examples "
                       "and verifiers may differ)", found, REASONING_GYM_VERSION)
    return found


def _json_config(config: dict | None) -> dict[str, Any]:
    """`config` as JSON data (a copy), checked to leave the size and seed to the loader."""
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise ValueError(f"config must be a dict of generator settings, got {type(config).__name__}")
    reserved = sorted({"size", "seed"} & set(config))
    if reserved:
        raise ValueError(f"config must not set {reserved}: pass the split sizes and seed to the loader")
    try:
        return json.loads(json.dumps(config))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config must be JSON data (it is stored in each example): {exc}") from None


def _create(dataset: str, config: dict[str, Any], size: int, seed: int):
    reasoning_gym = _reasoning_gym()
    try:
        return reasoning_gym.create_dataset(dataset, size=size, seed=seed, **config)
    except (TypeError, ValueError, AssertionError) as exc:  # unknown name, unknown setting, failed validate()
        raise ValueError(f"reasoning-gym cannot build dataset {dataset!r} with config {config}: {exc}") from None


def _config_key(dataset: str, config: dict[str, Any]) -> tuple[str, str]:
    return dataset, json.dumps(config, sort_keys=True)


_VERIFIERS: LRUCache = LRUCache(maxsize=32)


@cached(_VERIFIERS, key=lambda dataset, config_json: (dataset, config_json), lock=threading.Lock())
def _verifier_for(dataset: str, config_json: str) -> Callable[[str, dict], float]:
    # The seed and size do not enter the verifiers; the config may (word_ladder's word lists, say).
    return _create(dataset, json.loads(config_json), size=1, seed=0).score_answer


def _verifier(dataset: str, config: dict[str, Any]) -> Callable[[str, dict], float]:
    """The dataset's ``score_answer``, from a dataset object built once per (dataset, config)."""
    return _verifier_for(*_config_key(dataset, config))


# ---------------------------------------------------------------- loading

def _check_sizes(n_train: int, n_val: int, n_test: int, seed: int) -> int:
    sizes = (n_train, n_val, n_test)
    if not all(isinstance(n, int) for n in sizes) or min(sizes) < 0 or sum(sizes) == 0:
        raise ValueError(f"split sizes must be integers >= 0 and not all 0, got {'/'.join(map(str, sizes))}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    draws = _DRAWS_PER_EXAMPLE * sum(sizes) + _EXTRA_DRAWS
    if draws > SEED_STRIDE:
        raise ValueError(f"at most {(SEED_STRIDE - _EXTRA_DRAWS) // _DRAWS_PER_EXAMPLE} examples per task, "
                         f"got {sum(sizes)}")
    return draws


def _entries(dataset: str, config: dict[str, Any], n: int, seed: int, draws: int,
             exclude: frozenset[str]) -> tuple[list[dict], list[int], int, int]:
    """The first `n` entries of distinct questions whose answer is not in `exclude`, their reasoning-gym
    indices, and how many repeated questions and excluded answers were skipped."""
    generator = _create(dataset, config, size=draws, seed=seed * SEED_STRIDE)
    score_answer = _verifier(dataset, config)
    entries, indices, seen, excluded = [], [], set(), 0
    for index in range(draws):
        entry = generator[index]
        question, answer = entry.get("question"), entry.get("answer")
        if not isinstance(question, str) or not question.strip():
            raise BenchmarkDataError(f"reasoning-gym {dataset} entry {index} has no question text")
        if not isinstance(answer, str):
            raise BenchmarkDataError(f"reasoning-gym {dataset} entry {index} has no gold answer string "
                                     f"({answer!r}): its verifier accepts many answers, which these tasks "
                                     "do not support")
        if answer in exclude:
            excluded += 1
            continue
        if question in seen:
            continue
        seen.add(question)
        try:
            stored = json.loads(json.dumps(entry))
        except (TypeError, ValueError) as exc:
            raise BenchmarkDataError(f"reasoning-gym {dataset} entry {index} is not JSON data: {exc}") from None
        if score_answer(answer, stored) < 1.0:  # the verifier must take the gold answer from a stored entry
            raise BenchmarkDataError(f"reasoning-gym {dataset} entry {index}: its verifier gives the gold answer "
                                     f"{answer!r} {score_answer(answer, stored)}, not full credit")
        entries.append(stored)
        indices.append(index)
        if len(entries) == n:
            return entries, indices, index + 1 - n - excluded, excluded
    raise BenchmarkDataError(f"reasoning-gym {dataset} with config {config} gave only {len(entries)} distinct "
                             f"questions in {draws} entries ({excluded} excluded answers); {n} are needed")


def load_reasoning_gym(dataset: str, n_train: int = 50, n_val: int = 100, n_test: int = 300, seed: int = 0,
                       config: dict | None = None, exclude_answers: Collection[str] = ()) -> Task:
    """A task from reasoning-gym's generator `dataset` with generator settings `config`, scored by `gym_metric`.

    The entries of reasoning-gym seed ``seed * SEED_STRIDE`` are taken in index order, skipping any whose
    question repeats an earlier one or whose gold answer is one of `exclude_answers` (answers known to be
    wrong): the first `n_train` are train, the next `n_val` val, the rest test. ``split_indices`` gives
    each example's reasoning-gym entry index. Every entry must have a gold answer string that its verifier
    gives full credit (checked here on the stored entry).
    """
    draws = _check_sizes(n_train, n_val, n_test, seed)
    config = _json_config(config)
    if isinstance(exclude_answers, str):
        raise ValueError("exclude_answers must be a collection of answers, not one string")
    exclude = frozenset(exclude_answers)
    total = n_train + n_val + n_test
    entries, indices, repeats, excluded = _entries(dataset, config, total, seed, draws, exclude)
    version = _installed_version()
    if repeats or excluded:
        logger.info("reasoning-gym %s seed %d: skipped %d repeated questions and %d excluded answers", dataset,
                    seed, repeats, excluded)
    examples = [dspy.Example(question=entry["question"], answer=entry["answer"],
                             **{ENTRY_FIELD: json.dumps({"dataset": dataset, "config": config, "entry": entry},
                                                        sort_keys=True)}).with_inputs("question")
                for entry in entries]
    cuts = (n_train, n_train + n_val)
    settings = json.dumps(config, sort_keys=True)
    return Task(name=f"gym_{dataset}", train=examples[:cuts[0]], val=examples[cuts[0]:cuts[1]],
                test=examples[cuts[1]:], metric=gym_metric,
                description=(f"reasoning-gym's {dataset} generator with config {settings}"
                             + (f", entries answered {sorted(exclude)} left out" if exclude else "")
                             + "; scored by its own verifier, full credit only."),
                source=(f"generated: reasoning-gym=={version} (PyPI, Apache-2.0), "
                        f"reasoning_gym.create_dataset({dataset!r}, **{settings})"),
                split_note=(f"reasoning-gym seed {seed * SEED_STRIDE} (task seed {seed} x {SEED_STRIDE}): entries "
                            f"0..{indices[-1]} in index order, {repeats} repeated questions skipped"
                            + (f", {excluded} with an excluded answer {sorted(exclude)} skipped" if exclude else "")
                            + f"; {n_train}/{n_val}/{n_test} train/val/test in that order"),
                split_indices={"train": indices[:cuts[0]], "val": indices[cuts[0]:cuts[1]],
                               "test": indices[cuts[1]:]})


def gym_task_loader(name: str) -> Callable[..., Task]:
    """The loader of the `GYM_TASKS` task `name`: keyword arguments n_train, n_val, n_test and seed."""
    try:
        spec = GYM_TASKS[name]
    except KeyError:
        raise ValueError(f"unknown reasoning-gym task {name!r}; available: {', '.join(GYM_TASKS)}") from None
    dataset, config = spec["dataset"], json.loads(json.dumps(spec["config"]))
    exclude = tuple(spec.get("exclude_answers", ()))
    about = _ABOUT.get(name)

    def loader(n_train: int = 50, n_val: int = 100, n_test: int = 300, seed: int = 0) -> Task:
        task = load_reasoning_gym(dataset, n_train=n_train, n_val=n_val, n_test=n_test, seed=seed,
                                  config=json.loads(json.dumps(config)), exclude_answers=exclude)
        if about:
            task.description = f"{about} Config {json.dumps(config, sort_keys=True)}; scored by reasoning-gym's " \
                               "verifier, full credit only."
        return task

    loader.__name__ = loader.__qualname__ = f"load_{name}"
    loader.__doc__ = (f"{about or name} Generated by reasoning-gym=={REASONING_GYM_VERSION} with config "
                      f"{json.dumps(config, sort_keys=True)}; scored by its verifier, full credit only.")
    return loader


# ---------------------------------------------------------------- the metric

def _stored(example: Any) -> dict[str, Any]:
    try:
        text = example[ENTRY_FIELD] if isinstance(example, dict) else getattr(example, ENTRY_FIELD)
    except (KeyError, AttributeError):
        raise ValueError(f"gym_metric scores examples of load_reasoning_gym: this one has no {ENTRY_FIELD!r} "
                         "field") from None
    record = json.loads(text) if isinstance(text, str) else text
    return record


def gym_metric(example: dspy.Example, prediction: Any, trace: Any = None) -> float:
    """1.0 when reasoning-gym's verifier gives ``prediction.answer`` (ends stripped) full credit, else 0.0.

    Full credit means a score of at least 1.0, with no tolerance: spell_backward's prefix credit of a
    too-long answer can come out 0.9999999999999999. An answer the verifier cannot parse (it raises)
    scores 0.0.
    """
    record = _stored(example)
    answer = _answer_text(prediction)
    if answer is None:
        return 0.0
    score_answer = _verifier(record["dataset"], record["config"])
    try:
        score = score_answer(answer.strip(), record["entry"])
    except Exception as exc:  # a verifier's own bug on odd text: the answer is not correct
        logger.debug("reasoning-gym %s verifier raised on %r: %r", record["dataset"], answer, exc)
        return 0.0
    return 1.0 if isinstance(score, (int, float)) and score >= 1.0 else 0.0
