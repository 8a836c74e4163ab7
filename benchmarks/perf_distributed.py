"""Distributed meta search: wall time of a compile whose candidates run on 1, 2, 4 worker processes.

The toy run of the distributed tests (the scripted "shout" task, a small budget: 6 candidates run, 3
more recognised as repeats) on simulated LMs with a fixed latency per call at all three levels. For
each worker count n: a fresh SQLite Optuna storage (its tables made before the clock starts, as in a
storage earlier runs used), n worker processes (`run_worker`, one LM request at a time each; their
imports and a warm-up compile done before the clock starts), and the driver's compile in this process
with ``evaluate_here=False`` (workers run every candidate) and 8 threads, so the searches of the three
input optimizers queue their candidates side by side. The same workers serve `repeats` compiles (a
study each); the fastest is kept, as timeit does. Measured against:

- reference: the same compile in this process with no storage and one thread: every candidate and
  every LM call one after another, what one worker does alone, without the queue;
- ideal for n: reference / min(n, width), where width is the most candidates the run ever has running
  at once (read from the trials' start and end times: 3 on the toy run, its three input optimizers).
  The width is not held for the whole run (the structure step runs alone, the prompt steps two side by
  side), so even a free queue stays below 100% at n > 1; `busy` (the trials' run time summed, over the
  wall time) says how many workers were at work on average;
- storage overhead per candidate: (wall of the compile with 1 worker and a 1-thread driver, so nothing
  overlaps, minus the reference) / candidates run: what the queue costs per candidate (enqueue, claim,
  results stored and read back, the driver's polling, the worker's own evaluator), and the LM calls a
  worker makes that the single process answered from its memo (each worker memoizes its own answers:
  the LM calls column shows the run's total growing with the workers; results do not change).

Every run's outcome (candidates, scores, accepted path, returned program; usage aside) is compared with
the reference's: `same_result`. `worker_runs`: the trials the workers ran, summed; above the candidates
run, a trial ran on two workers.

Run:  python benchmarks/perf.py --sections distributed    (or `distributed()` from Python)
A worker:  python benchmarks/perf_distributed.py worker URL STUDY... --latency-ms 50 --ready FILE
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from dspy_meta import MetaTeleprompter  # noqa: E402
from dspy_meta.distributed import StudyStorage, run_worker  # noqa: E402
from dspy_meta.runtime.program_state import program_state  # noqa: E402
from dspy_meta.search import MetaBudget  # noqa: E402
from dspy_meta.testing import ScriptedEngine, with_latency  # noqa: E402
from dspy_meta.testing.toy_task import (  # noqa: E402
    Shout, aligning_meta_responder, shout_examples, shout_metric, shout_optimizer_responder, shout_program_responder,
)

STUDY = "perf"
BUDGET = MetaBudget(prompt_steps=1, structure_steps=1, copro_breadth=2, copro_depth=1, mipro_candidates=2,
                    mipro_trials=2)
SETTINGS = {"budget": BUDGET, "seed": 0, "display_progress": False, "max_bootstrapped_demos": 1, "max_labeled_demos": 0}
DRIVER_THREADS = 8  # more than the run ever has side by side: the driver's threads only queue and wait
POLL_S = 0.1  # how often the driver and idle workers look at the study (StudyStorage's default is 1 s)


def _data():
    return shout_examples(8), shout_examples(6, offset=8)



def _engines(latency_s: float) -> list[ScriptedEngine]:
    return [ScriptedEngine(with_latency(lambda c: shout_program_responder(c, demos_help=False), latency_s)),
            ScriptedEngine(with_latency(shout_optimizer_responder, latency_s)),
            ScriptedEngine(with_latency(aligning_meta_responder, latency_s))]


def _storage(url: str) -> StudyStorage:
    return StudyStorage(url, poll_interval=POLL_S, evaluate_here=False)


def _compile(latency_s: float, *, url: str | None = None, threads: int = 1, study: str = STUDY):
    lms = _engines(latency_s)
    extra = {"storage": _storage(url), "study_name": study} if url else {}
    teleprompter = MetaTeleprompter(shout_metric, task_model=lms[0].as_lm(), prompt_model=lms[1].as_lm(),
                                    meta_model=lms[2].as_lm(), num_threads=threads, **SETTINGS, **extra)
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # MIPROv2 prints its steps whatever it is told
        program = teleprompter.compile(Shout(), trainset=_data()[0], valset=_data()[1])
    return program, time.perf_counter() - started


def _outcome(program) -> dict:
    """What a run found, usage aside (each worker memoizes its own LM answers)."""
    results = program.meta_results_.to_dict()
    for candidate in results["candidates"]:
        candidate.pop("usage")
    results.pop("usage")
    return {"results": results, "program": program_state(program)}


def serve(url: str, studies: list[str], latency_ms: float, ready: str | None = None) -> list[int]:
    """A worker process: serve each study at `url` in turn until its driver finishes it; the trials run
    here per study (written to `ready` at the end)."""
    _compile(0.0)  # warm up imports and caches, as the reference is
    storage = _storage(url)
    storage.open()  # connected (the engine is kept per URL and settings): run_worker finds it open
    lms = _engines(latency_ms / 1000)
    if ready:
        Path(ready).touch()  # warm: the driver may start the clock
    trainset, valset = _data()
    ran = [run_worker(storage, study, student=Shout(), metric=shout_metric, trainset=trainset, valset=valset,
                      task_model=lms[0].as_lm(), prompt_model=lms[1].as_lm(), num_threads=1, wait_for_study=300,
                      idle_timeout=300) for study in studies]
    if ready:
        Path(ready).write_text(json.dumps(ran))
    return ran


def _start_workers(url: str, studies: list[str], n: int, latency_ms: float, folder: Path) -> list:
    """`n` worker processes, returned (process, log, ready file) once each has done its imports and warm-up."""
    workers = []
    for i in range(n):
        ready, log = folder / f"ready-{n}-{i}", folder / f"worker-{n}-{i}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen([sys.executable, __file__, "worker", url, *studies, "--latency-ms",
                                        str(latency_ms), "--ready", str(ready)], stdout=out, stderr=subprocess.STDOUT)
        workers.append((process, log, ready))
    deadline = time.monotonic() + 300
    while not all(ready.exists() for _, _, ready in workers):
        for process, log, _ in workers:
            if process.poll() is not None:
                raise RuntimeError(f"a worker exited before it was ready:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError("workers not ready after 300 s")
        time.sleep(0.05)
    return workers


def _stop(workers, timeout: float = 60) -> list[list[int]]:
    """Wait for the workers (the last finished study sends them home); the trials each ran per study."""
    ran = []
    for process, log, ready in workers:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise RuntimeError(f"a worker did not stop when the study finished:\n{log.read_text()[-3000:]}") from None
        if process.returncode != 0:
            raise RuntimeError(f"a worker failed:\n{log.read_text()[-3000:]}")
        ran.append(json.loads(ready.read_text()))
    return ran


def _trial_spans(url: str, study: str) -> list[tuple[datetime, datetime]]:
    """(start, end) of every trial run to the end (duplicates and retried copies aside)."""
    trials = optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)
    return [(t.datetime_start, t.datetime_complete) for t in trials
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and "result_chunks" in t.user_attrs
            and t.datetime_start and t.datetime_complete]


def _width(spans) -> int:
    """The most trials running at once."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def _distributed_runs(n: int, latency_ms: float, folder: Path, threads: int, repeats: int,
                      expected: dict) -> dict:
    """`repeats` compiles served by the same `n` workers (a study each); the fastest is kept."""
    url = f"sqlite:///{folder / f'n{n}-t{threads}.db'}"
    optuna.storages.RDBStorage(url).engine.dispose()  # its tables: made once per database, not per run
    studies = [f"{STUDY}-{r}" for r in range(repeats)]
    workers = _start_workers(url, studies, n, latency_ms, folder)
    runs = []
    try:
        for study in studies:
            started = datetime.now()  # Optuna stamps trials with the local time
            program, wall = _compile(latency_ms / 1000, url=url, threads=threads, study=study)
            spans = _trial_spans(url, study)
            runs.append({"wall_s": wall, "candidates_run": len(spans), "width": _width(spans),
                         "first_trial_s": min(start for start, _ in spans).timestamp() - started.timestamp(),
                         "calls": {level: usage.calls for level, usage in program.meta_results_.usage.items()},
                         "busy": sum((end - start).total_seconds() for start, end in spans) / wall,
                         "same_result": _outcome(program) == expected})
    except BaseException:
        for process, _, _ in workers:
            process.kill()
        raise
    ran = _stop(workers)
    for r, run in enumerate(runs):
        run["worker_runs"] = sum(per_study[r] for per_study in ran)  # above candidates_run: a trial ran twice
    best = min(runs, key=lambda run: run["wall_s"])
    return {"workers": n, **best, "width": max(run["width"] for run in runs),
            "worker_runs_all": [run["worker_runs"] for run in runs],
            "same_result": all(run["same_result"] for run in runs), "walls_s": [run["wall_s"] for run in runs]}


def distributed(latency_ms: float = 50, worker_counts=(1, 2, 4), repeats: int = 3) -> dict:
    """Wall time of the toy compile with each number of worker processes, against the ideal (module doc)."""
    _compile(0.0)  # warm up imports and caches, so the reference is not charged
    references = [_compile(latency_ms / 1000) for _ in range(repeats)]
    reference, reference_s = min(references, key=lambda r: r[1])
    expected = _outcome(reference)
    same = all(_outcome(program) == expected for program, _ in references)
    with tempfile.TemporaryDirectory(prefix="perf-distributed-") as tmp:
        folder = Path(tmp)
        serial = _distributed_runs(1, latency_ms, folder, 1, repeats, expected)
        runs = [_distributed_runs(n, latency_ms, folder, DRIVER_THREADS, repeats, expected) for n in worker_counts]
    width = max(run["width"] for run in runs)
    rows = []
    for run in runs:
        ideal = reference_s / min(run["workers"], width)
        rows.append({**run, "ideal_s": ideal, "efficiency": ideal / run["wall_s"],
                     "speedup": reference_s / run["wall_s"]})
    candidates = serial["candidates_run"]
    return {"latency_ms": latency_ms, "repeats": repeats, "reference_s": reference_s,
            "reference_calls": {level: u.calls for level, u in reference.meta_results_.usage.items()},
            "candidates": len(reference.meta_results_.candidates), "candidates_run": candidates, "width": width,
            "driver_threads": DRIVER_THREADS, "poll_interval_s": POLL_S, "serial_one_worker": serial,
            "overhead_per_candidate_s": (serial["wall_s"] - reference_s) / max(1, candidates),
            "same_result": same and serial["same_result"] and all(row["same_result"] for row in rows), "rows": rows}


def print_table(report: dict) -> None:
    d, serial = report, report["serial_one_worker"]

    def calls(c):
        return "/".join(str(c.get(level, 0)) for level in ("program", "optimizer", "meta"))
    print(f"\n6. Distributed meta search (toy run, {d['latency_ms']:g} ms LM, fresh SQLite storage, workers of "
          f"1 thread, driver of {d['driver_threads']} threads leaving every candidate to them, fastest of "
          f"{d['repeats']})")
    print(f"   reference (1 process, no storage, 1 thread) {d['reference_s']:.2f}s, LM calls "
          f"{calls(d['reference_calls'])} (program/optimizer/meta); {d['candidates_run']} of {d['candidates']} "
          f"candidates run (the rest are repeats), at most {d['width']} side by side")
    print(f"   storage overhead per candidate {d['overhead_per_candidate_s'] * 1000:.0f} ms (1 worker, 1-thread "
          f"driver: {serial['wall_s']:.2f}s, first trial claimed at {serial['first_trial_s']:.2f}s, LM calls "
          f"{calls(serial['calls'])}); same result as the reference in every run: {d['same_result']}")
    print(f"   {'workers':>7}{'wall s':>9}{'ideal s':>9}{'eff.':>7}{'speedup':>9}{'busy':>7}{'1st trial s':>13}"
          f"{'LM calls':>13}{'trial runs':>12}")
    for row in d["rows"]:
        print(f"   {row['workers']:>7}{row['wall_s']:>9.2f}{row['ideal_s']:>9.2f}{row['efficiency']:>7.0%}"
              f"{row['speedup']:>9.2f}{row['busy']:>7.2f}{row['first_trial_s']:>13.2f}{calls(row['calls']):>13}"
              f"{'/'.join(map(str, row['worker_runs_all'])):>12}")
    print(f"   ideal: reference / min(workers, {d['width']}); busy: trials' run time / wall; trial runs: trials the "
          f"workers ran in each repeat (above {d['candidates_run']}: a trial ran twice)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("role", choices=["worker"])
    parser.add_argument("url")
    parser.add_argument("studies", nargs="+")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--ready")
    args = parser.parse_args(argv)
    import logging

    logging.disable(logging.WARNING)
    with contextlib.redirect_stdout(io.StringIO()):  # MIPROv2's prints
        serve(args.url, args.studies, args.latency_ms, args.ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())
