"""Performance benchmark of the meta loop on a simulated LM (deterministic answers, fixed latency).

Measures, on the scripted "shout" task:
  1. wasted calls: LM calls made vs distinct (prompt, settings) calls, per level;
  2. overhead: MetaTeleprompter's evaluation path vs a plain dspy.Evaluate over the same calls (0 ms LM);
  3. parallel efficiency of a full MetaTeleprompter compile at several thread counts (50 ms LM), with the
     run's dependency floor (its wall time when threads are unlimited) and its CPU time (0 ms LM);
  4. calls per meta step, and the meta level's share of program-level tokens;
  5. evaluation cost cutting: calls saved by minibatch screening, and its result vs full evaluation;
  6. distributed meta search: wall time of a compile with 1, 2, 4 worker processes against the ideal, and
     the storage overhead per candidate (`perf_distributed.py`).

Two simulated optimizer LMs ("workloads"): `repeating` answers the same request with the same words,
so many candidate programs coincide and their evaluations are answered from the run's memo; `sampling`
words every sample differently, as a real LM at temperature 1 does, so every candidate is a new
program that must be evaluated.

Run:  python benchmarks/perf.py [--latency-ms 50] [--threads 1 4 16] [--sections distributed ...]
                                [--json benchmarks/perf_results.json]
Prints a table and writes JSON (the sections run replace theirs in it, the others are kept). It measures;
it asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import sys
import threading
import time
import zlib
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy  # noqa: E402

from dspy_meta import MetaTeleprompter  # noqa: E402
from dspy_meta.runtime import LEVELS, GuardedMetric, UsageMeter, build_runtime, score_program  # noqa: E402
from dspy_meta.search import MetaBudget  # noqa: E402
from dspy_meta.testing import ScriptedEngine, with_latency  # noqa: E402
from dspy_meta.testing.toy_task import (  # noqa: E402
    Shout, aligning_meta_responder, shout_examples, shout_metric, shout_optimizer_responder, shout_program_responder,
)
from perf_distributed import distributed, print_table as _print_distributed  # noqa: E402

BUDGET = MetaBudget(prompt_steps=2, structure_steps=2, copro_breadth=3, copro_depth=2, mipro_candidates=3,
                    mipro_trials=4, max_valset=40)


def _sampling_optimizer():
    """An optimizer LM that words every sample differently (a real LM at temperature 1 would)."""
    lock, seen = threading.Lock(), collections.Counter()

    def respond(call):
        answer = shout_optimizer_responder(call)
        request = repr((call.system, call.messages))
        with lock:
            repeat = seen[request]
            seen[request] += 1
        tag = f"(variant {zlib.crc32(request.encode()) % 1000}.{repeat})"
        for name in ("proposed_instruction", "new_instruction"):
            answer[name] = f"{answer[name].rstrip('.')} {tag}."
        return answer
    return respond


WORKLOADS = {"repeating": lambda: shout_optimizer_responder, "sampling": _sampling_optimizer}



def _engines(latency_s: float, workload: str = "repeating"):
    program = with_latency(lambda c: shout_program_responder(c, demos_help=False), latency_s)
    return {"program": ScriptedEngine(program),
            "optimizer": ScriptedEngine(with_latency(WORKLOADS[workload](), latency_s)),
            "meta": ScriptedEngine(with_latency(aligning_meta_responder, latency_s))}


def _data(n_val: int = 40):
    return shout_examples(20), shout_examples(n_val, offset=20)


def _compile(engines, threads: int, n_val: int = 40, **kwargs):
    trainset, valset = _data(n_val)
    budget = BUDGET.replace(max_valset=max(BUDGET.max_valset, n_val))
    teleprompter = MetaTeleprompter(shout_metric, budget=budget, seed=0, num_threads=threads, display_progress=False,
                                    task_model=engines["program"].as_lm(), prompt_model=engines["optimizer"].as_lm(),
                                    meta_model=engines["meta"].as_lm(), max_bootstrapped_demos=1,
                                    max_labeled_demos=0, **kwargs)
    started = time.perf_counter()
    program = teleprompter.compile(Shout(), trainset=trainset, valset=valset)
    return program, time.perf_counter() - started


def _waste(engine) -> dict:
    """Calls made vs distinct requests. Identical prompts sent at temperature > 0 are samples, each
    with its own rollout id (which DSPy keeps out of the request), so they are counted apart."""
    deterministic = [c for c in engine.calls if not c.temperature]
    sampled = [c for c in engine.calls if c.temperature]
    distinct = len({(c.system, c.messages) for c in deterministic})
    return {"made": len(engine.calls), "distinct": distinct + len(sampled), "duplicates": len(deterministic) - distinct,
            "samples_at_temperature": len(sampled)}


def wasted_calls(workload: str) -> dict:
    engines = _engines(0.0, workload)
    program, _ = _compile(engines, threads=4)
    results = program.meta_results_
    rows = {level: _waste(e) for level, e in engines.items()}
    reused = sum(1 for c in results.candidates if c.reused)
    return {"per_level": rows, "candidates": len(results.candidates), "candidates_reused": reused}


class _OwnFormattingAdapter(dspy.ChatAdapter):
    """An adapter class of the user's: the run does not cache its formatting (it may not be pure), so a
    path through it shows what the run's bookkeeping costs without the formatting caches' savings."""


def overhead(repeats: int = 40, n_examples: int = 200) -> dict:
    """Wall time per evaluation at 0 ms: plain `dspy.Evaluate` against the meta search's path.

    Every call is new (fresh memos), the worst case for the memos. Scored twice: without demos and
    with 4 demos per call (as a bootstrapped candidate has); repeats are interleaved, minimum kept.
    """
    engine = ScriptedEngine(lambda c: shout_program_responder(c, demos_help=False))
    lm = engine.as_lm()
    devset = shout_examples(n_examples)
    demos = [dspy.Example(word=e.word, reasoning="Shout it.", answer=e.answer) for e in shout_examples(4, offset=500)]

    def program(with_demos: bool):
        shout = Shout()
        for predictor in shout.predictors():
            predictor.demos = list(demos) if with_demos else []
        return shout

    def plain_with(adapter):
        def plain(student):
            with dspy.context(lm=lm, adapter=adapter() if adapter else None):
                dspy.Evaluate(devset=devset, metric=shout_metric, num_threads=1, display_progress=False)(student)
        return plain

    def metered(student):
        """Usage metering and the guarded metric only."""
        score_program(student, devset, GuardedMetric(shout_metric, 10), num_threads=1,
                      lm=UsageMeter("program").attach(lm))

    def search_path(adapter):
        def run(student):
            """The evaluation path of a meta search, built by the same factory: metered LM with the run's
            call memo and thread budget, the answer memo in front of the adapter, the guarded metric, the
            memo drained for a checkpoint."""
            runtime = build_runtime({level: lm for level in LEVELS}, metric=GuardedMetric(shout_metric, 10),
                                    num_threads=1, keep_answers=True)
            with dspy.context(adapter=adapter()), runtime.activate():
                score_program(student, devset, runtime.metric, num_threads=1, lm=runtime.program_lm)
            runtime.memo.drain()
        return run

    variants = {"plain": plain_with(None), "metered": metered, "ours": search_path(dspy.ChatAdapter),
                "plain_own_formatting": plain_with(_OwnFormattingAdapter),
                "bookkeeping": search_path(_OwnFormattingAdapter)}
    report = {}
    for with_demos in (False, True):
        student = program(with_demos)
        for fn in variants.values():
            fn(student)  # warm up imports and caches
        samples = {name: [] for name in variants}
        for _ in range(repeats):  # interleaved, so drifts of the machine's speed hit all alike
            for name, fn in variants.items():
                started = time.perf_counter()
                fn(student)
                samples[name].append(time.perf_counter() - started)
        best = {name: min(times) for name, times in samples.items()}
        own = best["plain_own_formatting"]  # bookkeeping is compared with plain DSPy through the same adapter
        report["with_4_demos" if with_demos else "no_demos"] = {
            **{f"{name}_s": t for name, t in best.items()},
            "metered_ratio": best["metered"] / best["plain"], "ours_ratio": best["ours"] / best["plain"],
            "bookkeeping_ratio": best["bookkeeping"] / own,
            "ours_us_per_call": (best["ours"] - best["plain"]) / n_examples * 1e6,
            "bookkeeping_us_per_call": (best["bookkeeping"] - own) / n_examples * 1e6}
    return {"calls": n_examples, **report}


def parallel(latency_ms: float, thread_counts: list[int], workload: str, n_val: int = 40,
             unlimited: int = 256, repeats: int = 3) -> dict:
    """Wall time of a full compile per thread count, against the ideal (calls x latency / threads).

    Two bounds explain what is left: the dependency floor (the same run with `unlimited` threads:
    the longest chain of LM calls that wait for one another, plus CPU) and the CPU time (the run with
    a 0 ms LM). A run cannot beat max(ideal, floor). Runs with more than one thread take a few
    seconds and vary with the machine's load: the fastest of `repeats` is kept (as timeit does).
    """
    def timed(threads: int, latency_s: float, times: int):
        best = None
        for _ in range(times):
            engines = _engines(latency_s, workload)
            _, wall = _compile(engines, threads, n_val)
            if best is None or wall < best[0]:
                best = (wall, sum(len(e.calls) for e in engines.values()))
        return best

    _compile(_engines(0.0, workload), 1, n_val)  # warm up imports and caches, so the first row is not charged
    cpu_s, _ = timed(max(thread_counts), 0.0, 1)
    floor_s, floor_calls = timed(unlimited, latency_ms / 1000, repeats)
    rows = []
    for threads in thread_counts:
        wall, calls = timed(threads, latency_ms / 1000, 1 if threads == 1 else repeats)
        ideal = calls * latency_ms / 1000 / threads
        rows.append({"threads": threads, "calls": calls, "wall_s": wall, "ideal_s": ideal,
                     "efficiency": ideal / wall, "of_achievable": max(ideal, floor_s) / wall})
    return {"workload": workload, "valset": n_val, "rows": rows, "dependency_floor_s": floor_s, "cpu_s": cpu_s,
            "floor_calls": floor_calls, "repeats": repeats}


def meta_step_costs(workload: str) -> dict:
    engines = _engines(0.0, workload)
    program, _ = _compile(engines, threads=4)
    results = program.meta_results_
    steps = [c for c in results.candidates if c.stage.startswith(("prompt:", "structure")) and not c.reused]
    per_step = [{level: c.usage[level].calls for level in LEVELS} for c in steps]
    usage = results.usage
    share = (usage["meta"].tokens / usage["program"].tokens) if usage["program"].tokens else None
    return {"meta_steps": len(steps),
            "mean_calls_per_step": {level: sum(s[level] for s in per_step) / max(1, len(per_step)) for level in LEVELS},
            "tokens": {level: usage[level].tokens for level in LEVELS}, "meta_token_share_of_program": share}


def _worsening_meta(call):
    """A meta LM whose rewrites lose the task: every proposal is worse than what it replaces."""
    if "new_prompts" in call.output_fields:
        current = json.loads(call.inputs.get("current_prompts") or "{}")
        return {"task_analysis": "-", "task_guidance": "", "new_prompts": json.dumps({k: "Any." for k in current})}
    return aligning_meta_responder(call)


def screening(workload: str, screen_size: int = 10) -> dict:
    """Calls saved by minibatch screening, and whether the outcome matches full evaluation.

    Inputs are already aligned (their prompts mention the task) and the meta LM proposes worse
    rewrites, so there are candidates that screening should stop early.
    """
    from dspy_meta.teleprompters import default_input_optimizers

    aligned = {name: spec.with_prompts(**{p: spec.prompts[p].instructions + " The task: shout words back."
                                          for p in spec.prompts})
               for name, spec in default_input_optimizers(BUDGET, max_bootstrapped_demos=1,
                                                          max_labeled_demos=0).items()}
    outcomes = {}
    for name, size in (("full", 0), ("screened", screen_size)):
        engines = _engines(0.0, workload)
        engines["meta"] = ScriptedEngine(_worsening_meta)
        trainset, valset = _data()
        teleprompter = MetaTeleprompter(shout_metric, budget=BUDGET.replace(screen_size=size), seed=0,
                                        optimizers=aligned, num_threads=4, display_progress=False,
                                        task_model=engines["program"].as_lm(),
                                        prompt_model=engines["optimizer"].as_lm(),
                                        meta_model=engines["meta"].as_lm(), max_bootstrapped_demos=1,
                                        max_labeled_demos=0)
        program = teleprompter.compile(Shout(), trainset=trainset, valset=valset)
        results = program.meta_results_
        outcomes[name] = {"program_calls": results.usage["program"].calls, "best_score": results.best_score,
                          "best_plan": results.best_plan,
                          "screened_out": sum(c.reason.startswith("screened out") for c in results.candidates)}
    full, screened = outcomes["full"], outcomes["screened"]
    return {"workload": workload, "screen_size": screen_size, "valset": len(_data()[1]),
            **{f"{k}_{n}": v for n, o in outcomes.items() for k, v in o.items() if k != "best_plan"},
            "calls_saved": full["program_calls"] - screened["program_calls"],
            "same_result": full["best_score"] == screened["best_score"] and full["best_plan"] == screened["best_plan"]}


def _print_table(report: dict) -> None:
    for workload, waste in report.get("wasted_calls", {}).items():
        print(f"\n1. Wasted calls ({workload} optimizer LM, 0 ms, 4 threads)")
        print(f"   {'level':<10}{'made':>8}{'distinct':>10}{'duplicates':>12}{'samples (T>0)':>15}")
        for level, row in waste["per_level"].items():
            print(f"   {level:<10}{row['made']:>8}{row['distinct']:>10}{row['duplicates']:>12}"
                  f"{row['samples_at_temperature']:>15}")
        print(f"   candidates {waste['candidates']}, recognised as repeats {waste['candidates_reused']}")
    o = report.get("overhead")
    if o:
        print(f"\n2. Overhead (0 ms LM, {o['calls']} calls per evaluation, every call new): "
              "ratio to plain dspy.Evaluate")
        print(f"   {'':<14}{'plain s':>9}{'metered':>9}{'ours':>8}{'us/call':>9}{'bookkeeping':>13}{'us/call':>9}")
        for name in ("no_demos", "with_4_demos"):
            row = o[name]
            print(f"   {name:<14}{row['plain_s']:>9.3f}{row['metered_ratio']:>9.3f}{row['ours_ratio']:>8.3f}"
                  f"{row['ours_us_per_call']:>9.0f}{row['bookkeeping_ratio']:>13.3f}"
                  f"{row['bookkeeping_us_per_call']:>9.0f}")
        print("   ours: the search's path (memos, thread budget, cached DSPy formatting); bookkeeping: the same path "
              "through an adapter with formatting of its own (not cached)")
    for run in report.get("parallel", []):
        print(f"\n3. Parallel efficiency ({run['workload']} optimizer LM, {run['valset']} val examples, "
              f"{report['latency_ms']:g} ms LM): "
              f"dependency floor {run['dependency_floor_s']:.2f}s, CPU {run['cpu_s']:.2f}s")
        print(f"   {'threads':>7}{'calls':>8}{'wall s':>9}{'ideal s':>9}{'eff.':>7}{'of achievable':>15}")
        for row in run["rows"]:
            print(f"   {row['threads']:>7}{row['calls']:>8}{row['wall_s']:>9.2f}{row['ideal_s']:>9.2f}"
                  f"{row['efficiency']:>7.0%}{row['of_achievable']:>15.0%}")
    for workload, m in report.get("meta_steps", {}).items():
        calls = ", ".join(f"{level} {n:.1f}" for level, n in m["mean_calls_per_step"].items())
        print(f"\n4. Per meta step ({workload}, {m['meta_steps']} steps), mean calls: {calls}; "
              f"meta/program token share {m['meta_token_share_of_program']:.2%}")
    c = report.get("screening")
    if c:
        print(f"\n5. Minibatch screening ({c['workload']}, {c['screen_size']} of {c['valset']} val examples): "
              f"program calls {c['program_calls_full']} -> {c['program_calls_screened']} (saved {c['calls_saved']}), "
              f"{c['screened_out_screened']} candidates screened out, same result: {c['same_result']}")
    if "distributed" in report:
        _print_distributed(report["distributed"])


SECTIONS = ("wasted_calls", "overhead", "meta_steps", "screening", "parallel", "distributed")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="the rows to measure (default: all)")
    parser.add_argument("--json", default=str(Path(__file__).with_name("perf_results.json")))
    args = parser.parse_args(argv)
    import logging

    logging.disable(logging.WARNING)  # the benchmark's own table is the output
    runs = {"wasted_calls": lambda: {w: wasted_calls(w) for w in WORKLOADS}, "overhead": overhead,
            "meta_steps": lambda: {w: meta_step_costs(w) for w in WORKLOADS},
            "screening": lambda: screening("sampling"),
            "parallel": lambda: [parallel(args.latency_ms, args.threads, w) for w in WORKLOADS]
            + [parallel(args.latency_ms, args.threads, "sampling", n_val=100)],  # auto="light": 100 val
            "distributed": lambda: distributed(args.latency_ms)}
    # MIPROv2 draws its evaluations' progress bars and prints its steps whatever it is told: keep them out.
    with contextlib.redirect_stdout(io.StringIO()):
        report = {name: runs[name]() for name in SECTIONS if name in args.sections}
    if "parallel" in report:
        report["latency_ms"] = args.latency_ms  # the parallel rows' LM latency
    _print_table(report)
    path = Path(args.json)
    previous = json.loads(path.read_text()) if path.exists() else {}  # sections not run keep their last results
    path.write_text(json.dumps({**previous, **report}, indent=1))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
