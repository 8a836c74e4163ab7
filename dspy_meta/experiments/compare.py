"""Equal-budget comparison of DSPy's own optimizers and this project's meta-optimizers.

``run_comparison(config)`` runs every method x seed of a `CompareConfig` on one task and one LM
hierarchy, each optimizing run under the same hard cap on program-LM calls, scores each program on
validation and test (per example), and writes, after every finished run:

- ``config.output`` (``benchmarks/results/NAME.json``): the summary per method and every run's record;
- the same path with ``.md`` (the Markdown table) and ``.png`` (test accuracy against program calls).

Resume: re-running the same config reuses every finished method x seed whose fingerprint (task and
its data, LMs, cap, seed, the method's settings) matches; a run whose fingerprint changed is refused
(`ConfigChanged`), or recomputed with ``recompute=True``. Optimization runs each start with a fresh,
empty DSPy cache (see `fresh_dspy_cache`); scoring uses the ordinary DSPy cache. Local models answer
repeated deterministic requests from a memo below DSPy (`MemoEngine`): counts unchanged, wall time lower.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import dspy
from tqdm.auto import tqdm

from dspy_meta.runtime.files import write_atomic
from dspy_meta.runtime.quiet import quiet as quiet_scope
from dspy_meta.experiments.capped_lm import CallCapReached, CallMeter, capped, fresh_dspy_cache
from dspy_meta.experiments.compare_config import (
    BASELINE_METHOD, DEFAULTS_METHODS, OPTIMIZING_METHODS, STOCK_METHODS, CompareConfig,
)
from dspy_meta.experiments.compare_methods import RUNNERS
from dspy_meta.experiments.compare_report import LEVELS, markdown_table, plot, summarize
from dspy_meta.experiments.engine_memo import memo_lm

logger = logging.getLogger(__name__)

__all__ = ["ConfigChanged", "run_comparison", "fingerprint", "score_examples"]

FORMAT_VERSION = 1


class ConfigChanged(ValueError):
    """A finished run on record was made with different settings than the config asks for now."""


def _data_hash(task) -> str:
    rows = {split: [dict(example) for example in getattr(task, split)] for split in ("train", "val", "test")}
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprint(config: CompareConfig, method: str, seed: int, data_hash: str) -> dict[str, Any]:
    """Everything a finished run depends on; a stored run is reused only when this is equal."""
    settings = {}
    if method in OPTIMIZING_METHODS and method not in DEFAULTS_METHODS:  # DSPy's defaults take no settings
        settings["demos"] = config.settings["demos"]
        section = "meta" if method.startswith("meta_") else method
        if section in config.settings:
            settings[section] = config.settings[section]
    return {"version": FORMAT_VERSION, "method": method, "seed": seed, "task": config.to_dict()["task"],
            "data": data_hash, "lms": config.to_dict()["lms"], "program_calls": config.program_calls,
            "num_threads": config.num_threads, "settings": json.loads(json.dumps(settings))}


def score_examples(program, devset: list, metric, lm, num_threads: int) -> list[float]:
    """Per-example metric values of `program` on `devset` (a failing example scores 0)."""
    evaluate = dspy.Evaluate(devset=devset, metric=metric, num_threads=num_threads, display_progress=False,
                             display_table=False, max_errors=len(devset) + 1)
    with dspy.context(lm=lm, disable_history=False):
        result = evaluate(program)
    return [float(score) for _, _, score in result.results]


def _run_one(method: str, seed: int, task, lms: dict, config: CompareConfig, work_dir: Path) -> dict[str, Any]:
    cap = None if method in DEFAULTS_METHODS else config.program_calls  # defaults: as a user runs them, uncapped
    meters = {level: CallMeter(level, cap=cap if level == "program" else None) for level in LEVELS}
    metered = {level: capped(lms[level], meters[level]) for level in LEVELS}
    student = task.make_program()
    record: dict[str, Any] = {"method": method, "seed": seed, "stock": method in STOCK_METHODS, "hit_cap": False,
                              "error": None, "notes": {}, "program_calls_cap": cap}
    started = time.perf_counter()
    with fresh_dspy_cache(), dspy.context(lm=metered["program"], disable_history=False):
        try:
            program, notes = RUNNERS[method](student, task, metered, config, seed)
            record["notes"] = notes
        except CallCapReached as exc:
            logger.warning("%s seed %d: %s; the stock optimizer is stopped and returns nothing: scoring the "
                           "unoptimized program", method, seed, exc)
            program, record["notes"] = task.make_program(), {"stopped": str(exc)}
        except Exception as exc:  # an optimizer that crashes is reported, not hidden: its result is the student
            logger.exception("%s seed %d failed", method, seed)
            program, record["error"] = task.make_program(), f"{type(exc).__name__}: {exc}"
    record["compile_seconds"] = round(time.perf_counter() - started, 2)
    record["usage"] = {level: meters[level].snapshot() for level in LEVELS}
    stopped = str(record["notes"].get("stopped") or "")
    record["hit_cap"] = meters["program"].cap_hit or stopped.startswith("budget")
    # Scoring is measured apart from optimization, uncapped, through the ordinary DSPy cache.
    started = time.perf_counter()
    val_meter, test_meter = CallMeter("program"), CallMeter("program")
    record["val_scores"] = score_examples(program, task.val, task.metric, capped(lms["program"], val_meter),
                                          config.num_threads)
    record["test_scores"] = score_examples(program, task.test, task.metric, capped(lms["program"], test_meter),
                                           config.num_threads)
    record["score_seconds"] = round(time.perf_counter() - started, 2)
    record["val"] = sum(record["val_scores"]) / len(task.val)
    record["test"] = sum(record["test_scores"]) / len(task.test)
    record["inference_calls_per_example"] = test_meter.requests / len(task.test)
    path = work_dir / method / f"seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(path))
    record["program_path"] = str(path)
    return record


def _shared_baseline(method: str, records: dict) -> dict | None:
    """The unoptimized program does not depend on the seed: its first finished run serves every seed."""
    if method != BASELINE_METHOD:
        return None
    return next((r for (m, _), r in records.items() if m == method and "shared_from_seed" not in r), None)


def _load_previous(path: Path) -> dict[tuple[str, int], dict]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {(r["method"], r["seed"]): r for r in data.get("runs", [])}


def _diff(old: dict, new: dict) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def run_comparison(config: CompareConfig, *, lms: dict[str, dspy.BaseLM] | None = None, recompute: bool = False,
                   output: str | Path | None = None, work_dir: str | Path | None = None,
                   quiet: bool = True, only: list[str] | None = None) -> dict[str, Any]:
    """Run (or resume) the comparison; returns the results dict written to `output` (default ``config.output``).

    `lms` (program / optimizer / meta) replaces the config's LMs, e.g. with scripted LMs in tests.
    `quiet`: DSPy's own bars, prints and chatter are silenced in every run (`dspy_meta.runtime.quiet`).
    `only`: run just these methods now, every seed (a long comparison in stages); the others stay to do.
    """
    output = Path(output or config.output)
    work_dir = Path(work_dir or config.work_dir)
    task = config.task.load()
    task.val, task.test = task.val[:config.max_val], task.test[:config.max_test]  # None: the whole split
    data_hash = _data_hash(task)
    previous = _load_previous(output)
    plan, records = [], {}
    changed = []
    for seed in config.seeds:
        for method in config.methods:
            fp = fingerprint(config, method, seed, data_hash)
            old = previous.get((method, seed))
            if old is not None and old.get("fingerprint") == fp:
                records[(method, seed)] = old
            elif old is not None and not recompute:
                changed.append(f"{method} seed {seed} (changed: {', '.join(_diff(old.get('fingerprint', {}), fp))})")
            elif only is None or method in only:
                plan.append((method, seed, fp))
    if changed:
        raise ConfigChanged(f"{output} holds runs made with other settings: {'; '.join(changed)}. Use another "
                            "output, or recompute them (--recompute).")
    if records:
        logger.info("resuming: %d finished run(s) in %s are reused", len(records), output)
    lms = lms or {level: memo_lm(c.model, **c.kwargs) for level, c in config.lms.items()}
    results = _assemble(config, task, records)
    if only:  # stage order: method by method, so each finishes all its seeds before the next starts
        plan.sort(key=lambda item: (only.index(item[0]), config.seeds.index(item[1])))
    for method, seed, fp in tqdm(plan, desc=f"compare {config.name}", unit="run"):
        shared = _shared_baseline(method, records)
        if shared is not None:
            record = {**shared, "seed": seed, "shared_from_seed": shared["seed"]}
        else:
            logger.info("running %s, seed %d", method, seed)
            with quiet_scope(quiet):
                record = _run_one(method, seed, task, lms, config, work_dir)
        record["fingerprint"] = fp
        records[(method, seed)] = record
        results = _assemble(config, task, records)
        _write(results, output)
    if not plan:
        _write(results, output)
    return results


def _assemble(config: CompareConfig, task, records: dict) -> dict[str, Any]:
    ordered = [records[(m, s)] for s in config.seeds for m in config.methods if (m, s) in records]
    summary = summarize(ordered, list(config.methods), list(config.seeds))
    complete = len(ordered) == len(config.seeds) * len(config.methods)
    return {"task": task.name, "config": config.to_dict(), "program_calls_cap": config.program_calls,
            "seeds": list(config.seeds), "complete": complete,
            "task_info": {"description": task.description, "source": task.source, "split_note": task.split_note,
                          "sizes": [len(task.train), len(task.val), len(task.test)]},
            "reference": summary["reference"], "defaults_reference": summary["defaults_reference"],
            "methods": summary["methods"], "runs": ordered}


def _write(results: dict[str, Any], output: Path) -> None:
    write_atomic(output, json.dumps(results, indent=1).encode("utf-8"))
    write_atomic(output.with_suffix(".md"), markdown_table(results).encode("utf-8"))
    if results["methods"]:
        plot(results, output.with_suffix(".png"))
