"""Zero-shot scores of the suite's local tasks with the default program model, for `dspy-meta tasks`.

    python benchmarks/zero_shot.py [--n 100] [--tasks NAME ...] [--model qwen2.5-coder-0.5b]

Scores each task's unoptimized starting program on the first N validation examples (the same examples
every time, the task's registered default split) on the batched local engine, and writes
``dspy_meta/benchmarks/data/zero_shot.json`` (package data: `dspy-meta tasks` shows it) with the model,
the engine, N, the score and its 95% interval, and the date. Resumable: tasks already measured with
the same model and N are kept unless --recompute.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import sys
import time
from pathlib import Path

OUTPUT = Path(__file__).resolve().parents[1] / "dspy_meta" / "benchmarks" / "data" / "zero_shot.json"


def main(argv: list[str] | None = None) -> int:
    import dspy

    from dspy_meta.benchmarks.registry import load_task, offline_tasks
    from dspy_meta.experiments.compare import score_examples
    from dspy_meta.experiments.engine_memo import memo_lm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--tasks", nargs="*", default=None)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--recompute", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    data = json.loads(OUTPUT.read_text()) if OUTPUT.exists() else {"tasks": {}}
    settings = {"max_tokens": 200, "engine_mode": "batched", "slots": 16}
    lm = memo_lm(args.model, **settings)
    for name in args.tasks or offline_tasks():
        old = data["tasks"].get(name)
        if old and old["model"] == args.model and old["n"] == args.n and not args.recompute:
            continue
        task = load_task(name)
        examples = task.val[:args.n]
        started = time.perf_counter()
        with dspy.context(lm=lm):
            scores = score_examples(task.make_program(), examples, task.metric, lm, num_threads=16)
        score = sum(scores) / len(scores)
        half = 1.96 * math.sqrt(max(score * (1 - score), 1e-12) / len(scores))
        data["tasks"][name] = {"model": args.model, "engine": settings, "n": len(scores), "split": "val",
                               "score": round(score, 4), "ci95": [round(max(0.0, score - half), 4),
                                                                  round(min(1.0, score + half), 4)],
                               "seconds": round(time.perf_counter() - started, 1),
                               "date": datetime.date.today().isoformat()}
        logging.info("%s: %.3f on %d validation examples", name, score, len(scores))
        OUTPUT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
