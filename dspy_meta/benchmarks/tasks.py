"""The paper's benchmark tasks as DSPy datasets, fixed splits, metrics and a starting program.

The BIG-bench tasks live here (the multiple-choice ones in `dspy_meta.benchmarks.choice`, the
registry in `dspy_meta.benchmarks.registry`). Every task's examples have one input field
``question`` and a label ``answer``; the exact-answer tasks start from `ChainOfThoughtQA`
(zero-shot chain of thought, ``question -> answer``). Loaders read the raw files through
`dspy_meta.benchmarks.sources` (cached, sha256-checked) and never reach a dataset hub.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import dspy

from dspy_meta.benchmarks.sources import BIGBENCH_SHA256, BenchmarkDataError, bigbench_task_file

__all__ = ["ChainOfThoughtQA", "Task", "exact_match_metric", "load_bbh_dyck_languages", "load_bbh_word_sorting",
           "load_colored_objects", "load_dyck_languages_short", "load_object_counting", "load_word_sorting_short",
           "normalize_whitespace", "short_answer_metric"]

logger = logging.getLogger(__name__)

WORD_SORTING_PREFIX = "Sort the following words alphabetically: List: "
DYCK_PREFIX = "Complete the rest of the sequence, making sure that the parentheses are closed properly. Input: "
BBH_SIZE = 250
BBH_SPLIT_NOTE = "BBH order [:50] train, [50:150] val, [150:] test (TextGrad's split, as in the paper)"


class ChainOfThoughtQA(dspy.Module):
    """Starting program of the exact-answer tasks: zero-shot chain of thought from ``question`` to ``answer``.

    Defined at module level with a no-argument constructor so that ``type(p)().load(path)`` works.
    """

    def __init__(self):
        super().__init__()
        self.predict = dspy.ChainOfThought("question -> answer")

    def forward(self, question):
        return self.predict(question=question)


@dataclass
class Task:
    """A benchmark: fixed splits of ``dspy.Example(question=..., answer=...)``, a metric, a program factory.

    `split_indices` maps each split to the source positions of its examples, in split order
    (BIG-bench ``examples`` positions, or positions among the task's questions for MMLU/GPQA).
    """

    name: str
    train: list[dspy.Example]
    val: list[dspy.Example]
    test: list[dspy.Example]
    metric: Callable[..., float]
    description: str
    source: str
    split_note: str
    split_indices: dict[str, list[int]] = field(default_factory=dict)
    program_class: type[dspy.Module] = ChainOfThoughtQA

    def make_program(self) -> dspy.Module:
        """A fresh, unoptimized starting program."""
        return self.program_class()

    def __repr__(self) -> str:  # the default would print every example
        return (f"Task(name={self.name!r}, train={len(self.train)}, val={len(self.val)}, "
                f"test={len(self.test)}, source={self.source!r})")


# ---------------------------------------------------------------- metrics

def normalize_whitespace(text: Any) -> str:
    """Collapse runs of whitespace to one space and strip the ends."""
    return " ".join(str(text).split())


def _answer_text(prediction: Any) -> str | None:
    if prediction is None or isinstance(prediction, str):
        return prediction
    value = prediction.get("answer") if isinstance(prediction, dict) else getattr(prediction, "answer", None)
    return None if value is None else str(value)


def exact_match_metric(example: dspy.Example, prediction: Any, trace: Any = None) -> float:
    """1.0 when ``prediction.answer`` equals ``example.answer`` after whitespace normalisation, else 0.0."""
    answer = _answer_text(prediction)
    return float(answer is not None and normalize_whitespace(answer) == normalize_whitespace(example.answer))


# ---------------------------------------------------------------- BBH (from the BIG-bench task files)

def _bbh_order(task: str) -> list[int]:
    """The 250 BIG-bench positions of BBH's examples, in BBH order (shipped as package data)."""
    text = (resources.files("dspy_meta.benchmarks") / "data" / f"{task}.json").read_text(encoding="utf-8")
    data = json.loads(text)
    order = data["bbh_order"]
    if data.get("task") != task or len(order) != BBH_SIZE or len(set(order)) != BBH_SIZE:
        raise BenchmarkDataError(f"package data {task}.json is damaged: reinstall dspy-meta")
    return [int(i) for i in order]


def _datasets():
    """The `datasets` package (an optional extra; a heavy import, only when data is actually loaded)."""
    try:
        import datasets
    except ImportError:
        raise BenchmarkDataError("reading benchmark files needs the `datasets` package: "
                                 "pip install 'dspy-meta[benchmarks]'") from None
    return datasets


def _bigbench_records(task: str, cache_dir: str | Path | None) -> list[dict]:
    """The ``examples`` list of a BIG-bench task file, read with `datasets` (local file, no hub access)."""
    datasets = _datasets()

    path = bigbench_task_file(task, cache_dir)
    quiet = not datasets.are_progress_bars_disabled()
    if quiet:
        datasets.disable_progress_bars()
    try:
        rows = datasets.load_dataset("json", data_files=str(path), field="examples", split="train").to_list()
    finally:
        if quiet:
            datasets.enable_progress_bars()
    return rows


def _word_sorting_example(record: dict, position: int) -> dspy.Example:
    words = record["input"].split()
    answer = " ".join(sorted(words))  # BBH's target: Python sorted(), space-joined
    if answer != normalize_whitespace(record["target"]):
        raise BenchmarkDataError(f"BIG-bench word_sorting example {position}: sorted words {answer!r} differ from "
                                 f"the record's target {record['target']!r}")
    return dspy.Example(question=WORD_SORTING_PREFIX + record["input"], answer=answer).with_inputs("question")


def _dyck_example(record: dict, position: int) -> dspy.Example:
    # `datasets` stores target_scores as a struct; keys a record lacks come back as None.
    correct = [key for key, score in record["target_scores"].items() if score == 1]
    if len(correct) != 1:
        raise BenchmarkDataError(f"BIG-bench dyck_languages example {position} has {len(correct)} targets scored 1")
    return dspy.Example(question=DYCK_PREFIX + record["input"], answer=correct[0]).with_inputs("question")


def _load_bbh(task: str, convert: Callable[[dict, int], dspy.Example], description: str,
              cache_dir: str | Path | None) -> Task:
    records = _bigbench_records(task, cache_dir)
    order = _bbh_order(task)
    examples = [convert(records[i], i) for i in order]
    return Task(name=f"bbh_{task}", train=examples[:50], val=examples[50:150], test=examples[150:],
                metric=exact_match_metric, description=description,
                source=(f"BBH {task}: bigbench==1.0.0 sdist, bigbench/benchmark_tasks/{task}/task.json "
                        f"(sha256 {BIGBENCH_SHA256[task][:12]}...), BBH positions from dspy_meta/benchmarks/data"),
                split_note=BBH_SPLIT_NOTE,
                split_indices={"train": order[:50], "val": order[50:150], "test": order[150:]})


def load_bbh_word_sorting(cache_dir: str | Path | None = None) -> Task:
    """BBH word_sorting: the exact 250 BBH examples, sort a list of words alphabetically (50/100/100)."""
    return _load_bbh("word_sorting", _word_sorting_example,
                     "Sort a list of words alphabetically; answer the sorted words separated by spaces.", cache_dir)


def load_bbh_dyck_languages(cache_dir: str | Path | None = None) -> Task:
    """BBH dyck_languages: the exact 250 BBH examples, close the open brackets of a sequence (50/100/100)."""
    return _load_bbh("dyck_languages", _dyck_example,
                     "Complete a bracket sequence; answer the closing brackets separated by spaces.", cache_dir)


def load_word_sorting_short(max_words: int = 5, n_train: int = 20, n_val: int = 30, n_test: int = 50,
                            seed: int = 0, cache_dir: str | Path | None = None) -> Task:
    """VARIANT, not BBH: BIG-bench word_sorting lists of at most `max_words` words, for small local models.

    Drawn from the same BIG-bench file as BBH word_sorting (BBH's 250 examples excluded, so it
    never overlaps BBH's test set), same input format and metric. ``random.Random(seed)`` samples
    ``n_train + n_val + n_test`` examples without replacement from the eligible pool (in file
    order); the first `n_train` are train, the next `n_val` val, the rest test. Lists have 2-20
    words, 100 of each length; with ``max_words=5`` the pool holds a few hundred examples.
    """
    if max_words < 2:
        raise ValueError("max_words must be at least 2 (BIG-bench lists have 2 to 20 words)")
    records, pool, chosen = _non_bbh_sample("word_sorting", max_words, (n_train, n_val, n_test), seed, cache_dir,
                                            "lists have at most {} words")
    wanted = n_train + n_val + n_test
    examples = [_word_sorting_example(records[i], i) for i in chosen]
    cuts = (n_train, n_train + n_val)
    return Task(name="bigbench_word_sorting_short", train=examples[:cuts[0]], val=examples[cuts[0]:cuts[1]],
                test=examples[cuts[1]:], metric=exact_match_metric,
                description=f"Variant (not BBH): sort lists of at most {max_words} words alphabetically.",
                source="bigbench==1.0.0 sdist, bigbench/benchmark_tasks/word_sorting/task.json, non-BBH examples",
                split_note=(f"not BBH: random.Random({seed}).sample of {wanted} from {len(pool)} non-BBH lists of "
                            f"<= {max_words} words; {n_train}/{n_val}/{n_test} in sample order"),
                split_indices={"train": chosen[:cuts[0]], "val": chosen[cuts[0]:cuts[1]], "test": chosen[cuts[1]:]})


def _non_bbh_sample(task: str, max_tokens: int, sizes: tuple[int, int, int], seed: int, cache_dir,
                    what: str) -> tuple[list[dict], list[int], list[int]]:
    """(records, eligible pool, seeded sample) of a BIG-bench task's non-BBH examples whose input has at
    most `max_tokens` whitespace-separated tokens; `what` completes the error ("lists have at most {} words")."""
    records = _bigbench_records(task, cache_dir)
    bbh = set(_bbh_order(task))
    pool = [i for i, record in enumerate(records) if i not in bbh and len(record["input"].split()) <= max_tokens]
    wanted = sum(sizes)
    if min(sizes) < 0 or wanted > len(pool):
        raise ValueError(f"cannot draw {'/'.join(map(str, sizes))} examples: only {len(pool)} non-BBH "
                         f"{what.format(max_tokens)}")
    return records, pool, random.Random(seed).sample(pool, wanted)


def load_dyck_languages_short(max_input_tokens: int = 10, n_train: int = 10, n_val: int = 30, n_test: int = 60,
                              seed: int = 0, cache_dir: str | Path | None = None) -> Task:
    """VARIANT, not BBH: BIG-bench dyck_languages sequences of at most `max_input_tokens` brackets.

    Same file, input format and metric as BBH dyck_languages, BBH's 250 examples excluded;
    ``random.Random(seed)`` samples the splits from the eligible pool as in `load_word_sorting_short`.
    """
    records, pool, chosen = _non_bbh_sample("dyck_languages", max_input_tokens, (n_train, n_val, n_test), seed,
                                            cache_dir, "sequences have at most {} brackets")
    wanted = n_train + n_val + n_test
    examples = [_dyck_example(records[i], i) for i in chosen]
    cuts = (n_train, n_train + n_val)
    return Task(name="bigbench_dyck_languages_short", train=examples[:cuts[0]], val=examples[cuts[0]:cuts[1]],
                test=examples[cuts[1]:], metric=exact_match_metric,
                description=f"Variant (not BBH): close the brackets of sequences of at most {max_input_tokens} tokens.",
                source="bigbench==1.0.0 sdist, bigbench/benchmark_tasks/dyck_languages/task.json, non-BBH examples",
                split_note=(f"not BBH: random.Random({seed}).sample of {wanted} from {len(pool)} non-BBH sequences of "
                            f"<= {max_input_tokens} tokens; {n_train}/{n_val}/{n_test} in sample order"),
                split_indices={"train": chosen[:cuts[0]], "val": chosen[cuts[0]:cuts[1]], "test": chosen[cuts[1]:]})


# ---------------------------------------------------------------- BIG-bench short-answer tasks

_NUMBER_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
                 "sixteen seventeen eighteen nineteen twenty").split()


def short_answer_metric(example: dspy.Example, prediction: Any, trace: Any = None) -> float:
    """1.0 when ``prediction.answer`` is the label, ignoring case and a final period; a count may also be
    its number word ("7", "seven", "Seven."). Else 0.0.

    These are the spellings BIG-bench itself scores correct (object_counting's targets are
    ``["seven", "7"]``); any other text, such as "You have 7 instruments", scores 0.
    """
    answer = _answer_text(prediction)
    if answer is None:
        return 0.0
    text, label = normalize_whitespace(answer).lower().rstrip("."), str(example.answer).lower()
    return float(text == label or (label.isdigit() and int(label) < len(_NUMBER_WORDS) and
                                   text == _NUMBER_WORDS[int(label)]))


def _sampled_task(task: str, examples_of: Callable[[list[dict], list[int]], list[dspy.Example]],
                  sizes: tuple[int, int, int], seed: int, cache_dir, name: str, description: str) -> Task:
    """A task of ``random.Random(seed).sample`` of a BIG-bench file's examples: train, val, test in sample order."""
    records = _bigbench_records(task, cache_dir)
    if min(sizes) < 0 or sum(sizes) > len(records):
        raise ValueError(f"cannot draw {'/'.join(map(str, sizes))} examples from {len(records)}")
    chosen = random.Random(seed).sample(range(len(records)), sum(sizes))
    examples = examples_of(records, chosen)
    cuts = (sizes[0], sizes[0] + sizes[1])
    return Task(name=name, train=examples[:cuts[0]], val=examples[cuts[0]:cuts[1]], test=examples[cuts[1]:],
                metric=short_answer_metric, description=description,
                source=f"bigbench==1.0.0 sdist, bigbench/benchmark_tasks/{task}/task.json (all {len(records)} examples)",
                split_note=(f"not BBH: random.Random({seed}).sample of {sum(sizes)} from {len(records)}; "
                            f"{'/'.join(map(str, sizes))} in sample order"),
                split_indices={"train": chosen[:cuts[0]], "val": chosen[cuts[0]:cuts[1]], "test": chosen[cuts[1]:]})


def _counting_examples(records: list[dict], chosen: list[int]) -> list[dspy.Example]:
    examples = []
    for i in chosen:
        word, digits = records[i]["target"]
        if not digits.isdigit() or int(digits) >= len(_NUMBER_WORDS) or _NUMBER_WORDS[int(digits)] != word:
            raise BenchmarkDataError(f"BIG-bench object_counting example {i}: unexpected target {records[i]['target']!r}")
        examples.append(dspy.Example(question=records[i]["input"], answer=digits).with_inputs("question"))
    return examples


def load_object_counting(n_train: int = 10, n_val: int = 30, n_test: int = 60, seed: int = 0,
                         cache_dir: str | Path | None = None) -> Task:
    """BIG-bench object_counting (not BBH's 250-example selection): count the objects of a kind in a sentence.

    ``random.Random(seed)`` samples ``n_train + n_val + n_test`` of the file's 1000 examples
    without replacement; the first `n_train` are train, the next `n_val` val, the rest test.
    The label is the count in digits; `short_answer_metric` also accepts the number word.
    """
    return _sampled_task("object_counting", _counting_examples, (n_train, n_val, n_test), seed, cache_dir,
                         "bigbench_object_counting", "Count the objects of one kind listed in a sentence; answer the number.")


def _colored_objects_examples(records: list[dict], chosen: list[int]) -> list[dspy.Example]:
    examples = []
    for i in chosen:
        # `datasets` gives every record every option key; those a record lacks are None.
        correct = [key for key, score in records[i]["target_scores"].items() if score == 1]
        digits = [key for key in correct if key.isdigit()]
        if not (len(correct) == 1 or (len(correct) == 2 and len(digits) == 1)):
            raise BenchmarkDataError(f"BIG-bench reasoning_about_colored_objects example {i}: targets {correct!r}")
        examples.append(dspy.Example(question=records[i]["input"], answer=(digits or correct)[0]).with_inputs("question"))
    return examples


def load_colored_objects(n_train: int = 10, n_val: int = 30, n_test: int = 60, seed: int = 0,
                         cache_dir: str | Path | None = None) -> Task:
    """BIG-bench reasoning_about_colored_objects (not BBH's selection): simple questions about the colours,
    counts and positions of objects on a surface; the answer is a colour, a count, or yes/no.

    Sampled from the file's 2000 examples as in `load_object_counting`; the label is the one option
    scored 1 (a count in digits; `short_answer_metric` also accepts its number word).
    """
    return _sampled_task("reasoning_about_colored_objects", _colored_objects_examples, (n_train, n_val, n_test),
                         seed, cache_dir, "bigbench_colored_objects",
                         "Answer a simple question about the colours of objects on a surface with one word or number.")
