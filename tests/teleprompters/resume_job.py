"""A meta-optimization run in its own process, for the crash/resume test.

Usage: python -m tests.teleprompters.resume_job RUN_DIR OUT_JSON [NUM_THREADS [PROGRAM_DELAY_S]]
"""

import json
import sys
import time

from dspy_meta import MetaTeleprompter
from dspy_meta.teleprompters import MetaBudget
from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.toy_task import (
    Shout, aligning_meta_responder, shout_examples, shout_metric, shout_optimizer_responder, shout_program_responder,
)

BUDGET = MetaBudget(prompt_steps=1, structure_steps=1, copro_breadth=2, copro_depth=1, mipro_candidates=2,
                    mipro_trials=2)


def slow_program(delay: float):
    def respond(call):
        time.sleep(delay)  # slow enough that the parent can kill the run between candidates
        return shout_program_responder(call, demos_help=False)
    return respond


def main(run_dir: str, out_path: str, num_threads: int | None = None, delay: float = 0.01) -> None:
    engines = [ScriptedEngine(slow_program(delay)), ScriptedEngine(shout_optimizer_responder),
               ScriptedEngine(aligning_meta_responder)]
    teleprompter = MetaTeleprompter(shout_metric, budget=BUDGET, seed=0, display_progress=False, run_dir=run_dir,
                                    num_threads=num_threads,
                                    task_model=engines[0].as_lm(), prompt_model=engines[1].as_lm(),
                                    meta_model=engines[2].as_lm(), max_bootstrapped_demos=1, max_labeled_demos=0)
    program = teleprompter.compile(Shout(), trainset=shout_examples(8), valset=shout_examples(6, offset=8))
    with open(out_path, "w") as f:
        json.dump({"results": program.meta_results_.to_dict(), "calls": [len(e.calls) for e in engines],
                   "instructions": program.answer.predict.signature.instructions}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None,
         float(sys.argv[4]) if len(sys.argv) > 4 else 0.01)
