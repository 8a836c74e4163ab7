"""Drivers and workers of the toy run in their own processes, for the distributed tests.

Usage (or `entry(argv, log)` in a process of its own):
    python -m tests.distributed.job driver URL OUT_JSON [--run-dir DIR] [--workers-only] [--delay S]
                                           [--block-after N --block-file PATH]
    python -m tests.distributed.job worker URL [--block-file PATH] [--jitter S] [--seed N]

A driver runs the toy MetaTeleprompter with its candidates queued in study ``toy`` of the Optuna storage
URL and writes what the run found (records and the final program state). A worker serves that study;
with ``--block-file`` it creates the file at its first program call and then hangs there (to be killed
mid-candidate); with ``--jitter`` each program call sleeps a random time, so workers finish out of order.
A driver with ``--block-after N`` creates the block file once it has finished its N-th trial and then
hangs there (to be killed at a known point: exactly N trials done, the others not).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import threading
import time
from pathlib import Path

from dspy_meta import MetaTeleprompter
from dspy_meta.distributed import StudyStorage, run_worker
from dspy_meta.runtime.program_state import program_state
from dspy_meta.teleprompters import MetaBudget
from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.toy_task import (
    Shout, aligning_meta_responder, shout_examples, shout_metric, shout_optimizer_responder, shout_program_responder,
)

STUDY = "toy"
BUDGET = MetaBudget(prompt_steps=1, structure_steps=1, copro_breadth=2, copro_depth=1, mipro_candidates=2,
                    mipro_trials=2)
SETTINGS = {"budget": BUDGET, "seed": 0, "display_progress": False, "max_bootstrapped_demos": 1, "max_labeled_demos": 0}


def data():
    return shout_examples(8), shout_examples(6, offset=8)


def program_responder(delay: float = 0.0, jitter: float = 0.0, block_file: str | None = None, seed: int = 0):
    rng = random.Random(seed)

    def respond(call):
        if block_file is not None:
            Path(block_file).touch()  # mid-candidate now: the test kills this process here
            time.sleep(3600)
        if delay or jitter:
            time.sleep(delay + rng.random() * jitter)
        return shout_program_responder(call, demos_help=False)
    return respond


def engines(**program_options) -> list[ScriptedEngine]:
    return [ScriptedEngine(program_responder(**program_options)), ScriptedEngine(shout_optimizer_responder),
            ScriptedEngine(aligning_meta_responder)]


def storage(url: str, *, evaluate_here: bool = True) -> StudyStorage:
    return StudyStorage(url, heartbeat_interval=1, grace_period=3, poll_interval=0.1, evaluate_here=evaluate_here)


def compile_toy(lms: list[ScriptedEngine], *, url: str | None = None, evaluate_here: bool = True,
                run_dir: str | None = None, **kwargs):
    extra = {"storage": storage(url, evaluate_here=evaluate_here), "study_name": STUDY} if url else {}
    teleprompter = MetaTeleprompter(shout_metric, task_model=lms[0].as_lm(), prompt_model=lms[1].as_lm(),
                                    meta_model=lms[2].as_lm(), run_dir=run_dir, **{**SETTINGS, **extra, **kwargs})
    return teleprompter.compile(Shout(), trainset=data()[0], valset=data()[1])


def outcome(program) -> dict:
    """What a run found, usage aside (each worker memoizes its own LM answers, so the split of calls
    between candidates depends on who ran what)."""
    results = program.meta_results_.to_dict()
    for candidate in results["candidates"]:
        candidate.pop("usage")
    results.pop("usage")
    return {"results": results, "program": program_state(program)}


def serve(url: str, **program_options) -> int:
    lms = engines(**program_options)
    trainset, valset = data()
    return run_worker(storage(url), STUDY, student=Shout(), metric=shout_metric, trainset=trainset, valset=valset,
                      task_model=lms[0].as_lm(), prompt_model=lms[1].as_lm(), wait_for_study=60, idle_timeout=60)


def block_after(trials: int, block_file: str) -> None:
    """Hang this process once it has finished `trials` trials (after storing the last one's result)."""
    from dspy_meta.distributed.queue import StudyQueue

    original, finished, lock = StudyQueue.complete, [], threading.Lock()

    def complete(self, trial, result):
        done = original(self, trial, result)
        with lock:
            finished.append(trial.number)
            enough = len(finished) >= trials
        if enough:
            Path(block_file).touch()  # `trials` trials are done, and no more will be: the test kills us here
            threading.Event().wait()
        return done

    StudyQueue.complete = complete


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["driver", "worker"])
    parser.add_argument("url")
    parser.add_argument("out", nargs="?")
    parser.add_argument("--run-dir")
    parser.add_argument("--workers-only", action="store_true")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--jitter", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--block-file")
    parser.add_argument("--block-after", type=int)
    args = parser.parse_args(argv)
    if args.role == "worker":
        serve(args.url, jitter=args.jitter, block_file=args.block_file, seed=args.seed)
        return
    if args.block_after is not None:
        block_after(args.block_after, args.block_file)
    program = compile_toy(engines(delay=args.delay), url=args.url, evaluate_here=not args.workers_only,
                          run_dir=args.run_dir)
    Path(args.out).write_text(json.dumps(outcome(program)))


def entry(argv: list[str], log: str) -> None:
    """`main` in a process the tests start (multiprocessing), its output going to `log`."""
    with open(log, "ab") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
    main(argv)


if __name__ == "__main__":
    main()
