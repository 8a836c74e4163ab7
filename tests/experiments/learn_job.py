"""Scripted LMs of the learning-run tests, and a learning run in a process of its own (the SIGKILL test).

``python tests/experiments/learn_job.py CONFIG.yaml`` runs the learning config on the scripted LMs below.
With ``LEARN_JOB_BLOCK_AFTER=N``, once N evaluations are on file (``results.jsonl`` in the config's work_dir)
the program LM's next call creates the file ``$LEARN_JOB_BLOCKED`` and then waits forever, so that the test
kills the job in the middle of an evaluation, at a known point, without relying on timing.

The toy: the program LM sorts a word list only when its instruction carries `MAGIC_WORD`; the optimizer LM
proposes such an instruction only when its own prompt carries `TRANSFER_HINT`; the meta LM adds the hint to
every optimizer prompt. Stock COPRO never finds the fix; a learned COPRO does, on every task.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.toy_task import MAGIC_WORD

TRANSFER_HINT = "State the exact answer format in every instruction."
COMMAND = "dspy-meta learn learn.yaml"


def sorting_program(call) -> dict:
    words = call.inputs.get("question", "").split("List:")[-1].split()
    return {"reasoning": "-", "answer": " ".join(sorted(words) if MAGIC_WORD in call.instructions else words)}


def hinted_optimizer(call) -> dict:
    aligned = TRANSFER_HINT in call.instructions
    instruction = f"Sort the words; answer in {MAGIC_WORD} order, words only." if aligned else \
        "Answer the question carefully."
    return {"proposed_instruction": instruction, "proposed_prefix_for_output_field": "Answer:"}


def transfer_meta(call) -> dict:
    """Adds the hint to each prompt (or, once every prompt has it, asks for brevity: a new proposal each time)."""
    current = json.loads(call.inputs.get("current_prompts", "{}") or "{}")
    extra = TRANSFER_HINT if not all(TRANSFER_HINT in text for text in current.values()) else "Be brief."
    new = {name: f"{text} {extra}" for name, text in current.items()}
    return {"analysis": "Word lists of several lengths.", "optimizer_guidance": "", "new_prompts": json.dumps(new)}


def scripted_engines(program=sorting_program) -> dict[str, ScriptedEngine]:
    return {"program": ScriptedEngine(program), "optimizer": ScriptedEngine(hinted_optimizer),
            "meta": ScriptedEngine(transfer_meta)}


def stopping_after(evaluations: int, results: Path, stop) -> callable:
    """The program responder, which calls `stop()` first once `evaluations` lines are in `results`."""
    def respond(call):
        if results.exists() and results.read_bytes().count(b"\n") >= evaluations:
            stop()
        return sorting_program(call)
    return respond


def _block_forever(marker: Path) -> None:
    marker.touch()
    while True:
        time.sleep(0.05)


def main(config_path: str) -> int:
    from dspy_meta.experiments.learn import run_learning
    from dspy_meta.experiments.learn_config import load_learn_config

    config = load_learn_config(config_path)
    program = sorting_program
    if os.environ.get("LEARN_JOB_BLOCK_AFTER"):
        marker = Path(os.environ["LEARN_JOB_BLOCKED"])
        program = stopping_after(int(os.environ["LEARN_JOB_BLOCK_AFTER"]), Path(config.work_dir) / "results.jsonl",
                                 lambda: _block_forever(marker))
    engines = scripted_engines(program)
    run_learning(config, lms={level: engine.as_lm() for level, engine in engines.items()}, command=COMMAND,
                 progress=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
