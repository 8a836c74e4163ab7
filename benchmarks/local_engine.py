"""The local engines side by side: today's sequential `LlamaCppEngine` vs the batched engine.

For each model, in one run: a validation pass of the demo task (`bigbench_word_sorting_short` with
configs/demo.yaml's task settings, `--n-val` validation examples; zero-shot CoT, the task's program) through
`dspy.Evaluate(num_threads=<the batched engine's slots>)`, once per engine, each in a fresh child process
(so peak memory, from `resource.getrusage`, is per engine and no cache is shared). Then, for the first model,
temperature-0 agreement: 50 varied prompts (some in JSON mode), answered by each engine.

Wall times on a shared machine are noisy: compare the two engines of one run (ratios), not absolute times.

Run:  python benchmarks/local_engine.py [--models qwen2.5-coder-0.5b qwen2.5-coder-1.5b] [--n-val 40 20]
          [--slots 16] [--batch-threads 1] [--flash-attn 0|1] [--json benchmarks/local_engine_results.json]
      python benchmarks/local_engine.py --noise-floor --models qwen2.5-coder-0.5b --slots 16
          (temperature-0 agreement only: how often engine variants give today's answers; adds a section to the JSON)
Prints a table and writes JSON. It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parent.parent
DEMO_TASK = {"max_words": 3, "n_train": 10, "n_test": 40, "seed": 0}  # configs/demo.yaml, n_val set per run


def agreement_prompts() -> list[str]:
    """50 varied prompts: sorting, arithmetic, facts, code, rewriting, and JSON-mode requests."""
    words = ["pear apple fig", "zebra cat dog mouse", "moon sun star", "red blue green yellow", "oak elm ash"]
    prompts = [f"Sort these words alphabetically and list them: {w}" for w in words]
    prompts += [f"What is {a} times {b}? Think step by step, then give the number." for a, b in
                [(7, 8), (12, 13), (3, 99), (25, 4), (17, 6)]]
    prompts += [f"In one sentence, what is {t}?" for t in ("photosynthesis", "a prime number", "the Moon",
                                                           "an index in a database", "gravity")]
    prompts += [f"Write a Python function that {t}. Code only." for t in
                ("reverses a string", "checks if a number is even", "sums a list", "returns the max of two numbers",
                 "counts vowels in a string")]
    prompts += [f"Rewrite formally: '{t}'" for t in ("gonna be late, sorry", "this is super cool", "can u help me",
                                                    "no way that's true", "thx for the help")]
    prompts += [f"Name three {t}." for t in ("fruits", "planets", "colors", "programming languages", "rivers")]
    prompts += [f"Translate to French: {t}" for t in ("good morning", "thank you", "the cat sleeps", "I like tea",
                                                     "see you tomorrow")]
    prompts += [f"Is {n} a prime number? Answer yes or no, then explain briefly." for n in (17, 21, 29, 51, 97)]
    prompts += [f"Give a JSON object with keys name and age for {p}. Respond with a JSON object." for p in
                ("Alice, 30", "Bob, 25", "Carol, 41", "Dan, 19", "Eve, 52")]
    prompts += [f"Complete the sequence and explain the rule: {s}" for s in ("2, 4, 6, 8,", "1, 1, 2, 3, 5,",
                                                                           "10, 20, 30,", "a, c, e,", "3, 9, 27,")]
    return prompts


def child(model: str, mode: str, n_val: int, slots: int, agreement: bool, batch_threads: int,
          flash_attn: bool = True) -> dict:
    import dspy

    from dspy_meta.benchmarks import load_task
    from dspy_meta.lm import engine_slots, make_lm

    settings = dict(cache=False, max_tokens=200, flash_attn=flash_attn)
    if mode == "batched":
        settings.update(slots=slots, batch_threads=batch_threads or None)
    lm = make_lm(model, engine_mode=mode, **settings)
    threads = slots  # the same number of concurrent callers for both engines
    lm("Hello")  # loads the model outside the timed pass
    loaded_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"model": model, "engine": mode, "slots": engine_slots(lm),
           "flash_attn": bool(getattr(lm.engine, "flash_attn", False)), "num_threads": threads,
           "rss_after_load_mib": round(loaded_rss)}
    if n_val:
        task = load_task("bigbench_word_sorting_short", n_val=n_val, **DEMO_TASK)
        start = time.perf_counter()
        with dspy.context(lm=lm):
            result = dspy.Evaluate(devset=task.val, metric=task.metric, num_threads=threads, display_progress=False,
                                   display_table=False)(task.make_program())
        wall = time.perf_counter() - start
        usage = [h.get("usage") or {} for h in lm.history[1:]]
        out.update({
            "examples": len(task.val), "wall_s": round(wall, 2), "score": result.score,
            "per_example": [float(s) for _, _, s in result.results],
            "answers": [getattr(p, "answer", None) for _, p, _ in result.results],
            "lm_calls": len(usage), "prompt_tokens": sum(u.get("prompt_tokens", 0) for u in usage),
            "completion_tokens": sum(u.get("completion_tokens", 0) for u in usage),
            "engine_stats": dict(getattr(lm.engine, "stats", {}) or {}),
        })
    if agreement:
        prompts = agreement_prompts()
        agree_lm = lm.copy(max_tokens=48, temperature=0.0)
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            out["agreement_answers"] = list(pool.map(lambda p: agree_lm(p)[0], prompts))
        out["agreement_wall_s"] = round(time.perf_counter() - start, 2)
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def run_child(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def noise_floor(model: str, slots: int, batch_threads: int, json_path: str) -> None:
    """How often variants of the engine give today's answers at temperature 0: llama.cpp's own kernels (flash
    attention on or off), the batched engine with one slot (its logic alone), and with `slots` slots (batch
    shapes), twice (which requests share a step depends on thread timing)."""
    variants = [("sequential", 1, 0), ("sequential", 1, 1), ("batched", 1, 0), ("batched", 1, 1),
                ("batched", slots, 0), ("batched", slots, 1), ("batched", slots, 1)]
    runs = []
    for mode, n, flash in variants:
        print(f"[{time.strftime('%H:%M:%S')}] {model} {mode}, {n} slot(s), flash attention {flash}...", flush=True)
        runs.append(run_child(model, mode, "0", str(n), "1", str(batch_threads), str(flash)))
    reference = runs[0]["agreement_answers"]
    rows = []
    for (mode, n, flash), run in zip(variants, runs):
        same = sum(a == b for a, b in zip(run["agreement_answers"], reference))
        rows.append({"engine": mode, "slots": n, "flash_attn": bool(flash), "identical": f"{same}/{len(reference)}",
                     "identical_rate": same / len(reference), "wall_s": run["agreement_wall_s"]})
    print(f"\n{'engine':<12}{'slots':>6}{'flash':>7}{'same as today':>15}{'wall s':>8}")
    for r in rows:
        print(f"{r['engine']:<12}{r['slots']:>6}{str(r['flash_attn']):>7}{r['identical']:>15}{r['wall_s']:>8.1f}")
    path = Path(json_path)
    data = json.loads(path.read_text()) if path.exists() else {}
    data["noise_floor"] = {"model": model, "measured": time.strftime("%Y-%m-%d %H:%M"),
                           "command": f"python benchmarks/local_engine.py --noise-floor --models {model} "
                                      f"--slots {slots}", "rows": rows,
                           "answers": [r["agreement_answers"] for r in runs]}
    path.write_text(json.dumps(data, indent=1))
    print(f"\nwrote the noise_floor section of {json_path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
    parser.add_argument("--n-val", nargs="+", type=int, default=[40, 20], help="validation examples per model")
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "local_engine_results.json"))
    parser.add_argument("--batch-threads", type=int, default=0, help="batched context threads (0: all cores)")
    parser.add_argument("--flash-attn", type=int, choices=(0, 1), default=1,
                        help="flash attention in the batched context (the sequential engine runs without)")
    parser.add_argument("--noise-floor", action="store_true",
                        help="only the temperature-0 agreement of engine variants with today's engine (first model)")
    parser.add_argument("--child", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, mode, n_val, slots, agreement, batch_threads, flash_attn = args.child
        print(json.dumps(child(model, mode, int(n_val), int(slots), agreement == "1", int(batch_threads),
                               flash_attn == "1")))
        return
    if args.noise_floor:
        return noise_floor(args.models[0], args.slots, args.batch_threads, args.json)
    runs, summary = [], []
    for i, model in enumerate(args.models):
        n_val = args.n_val[min(i, len(args.n_val) - 1)]
        pair = {}
        for mode in ("sequential", "batched"):  # side by side, same machine state as far as we can tell
            print(f"[{time.strftime('%H:%M:%S')}] {model} {mode} ({n_val} examples)...", flush=True)
            flash = str(args.flash_attn) if mode == "batched" else "0"  # today's engine runs without it
            pair[mode] = run_child(model, mode, str(n_val), str(args.slots), "1" if i == 0 else "0",
                                   str(args.batch_threads), flash)
            runs.append(pair[mode])
        seq, bat = pair["sequential"], pair["batched"]
        row = {"model": model, "examples": n_val, "slots": bat["slots"],
               "sequential_wall_s": seq["wall_s"], "batched_wall_s": bat["wall_s"],
               "speedup": round(seq["wall_s"] / bat["wall_s"], 2),
               "sequential_score": seq["score"], "batched_score": bat["score"],
               "metric_agreement": sum(a == b for a, b in zip(seq["per_example"], bat["per_example"])) / n_val,
               "answer_agreement": sum(a == b for a, b in zip(seq["answers"], bat["answers"])) / n_val,
               "sequential_peak_rss_mib": seq["peak_rss_mib"], "batched_peak_rss_mib": bat["peak_rss_mib"],
               "sequential_tokens": seq["prompt_tokens"] + seq["completion_tokens"],
               "batched_tokens": bat["prompt_tokens"] + bat["completion_tokens"]}
        if "agreement_answers" in seq:
            same = [a == b for a, b in zip(seq["agreement_answers"], bat["agreement_answers"])]
            row["t0_agreement"] = f"{sum(same)}/{len(same)}"
            row["t0_agreement_rate"] = sum(same) / len(same)
            row["t0_disagreeing_prompts"] = [p for p, s in zip(agreement_prompts(), same) if not s]
            row["agreement_speedup"] = round(seq["agreement_wall_s"] / bat["agreement_wall_s"], 2)
        summary.append(row)
    print(f"\n{'model':<20}{'n':>4}{'slots':>6}{'seq s':>8}{'batch s':>9}{'speedup':>9}{'seq score':>11}"
          f"{'bat score':>11}{'metric agr':>11}{'seq MiB':>9}{'bat MiB':>9}{'t0 agree':>10}")
    for r in summary:
        print(f"{r['model']:<20}{r['examples']:>4}{r['slots']:>6}{r['sequential_wall_s']:>8.1f}"
              f"{r['batched_wall_s']:>9.1f}{r['speedup']:>8.2f}x{r['sequential_score']:>11.1f}"
              f"{r['batched_score']:>11.1f}{r['metric_agreement']:>11.0%}{r['sequential_peak_rss_mib']:>9}"
              f"{r['batched_peak_rss_mib']:>9}{r.get('t0_agreement', '-'):>10}")
    Path(args.json).write_text(json.dumps({"summary": summary, "runs": runs, "cpu_count": os.cpu_count(),
                                           "load_avg_at_end": os.getloadavg()}, indent=1))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
