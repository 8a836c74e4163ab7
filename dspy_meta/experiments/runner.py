"""Run an experiment config: every method x seed, scored on val and test, written to an output folder.

Outputs: ``results.json`` (machine-readable), ``results.md`` (a table in the shape of the paper's
Table 1 plus LM usage), ``trajectory.png`` (validation score against LM calls spent), and per
method/seed the optimized program (``program.json``) and, for meta methods, the learned optimizers.
"""

from __future__ import annotations

import json
import logging
import shutil
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import dspy
from tqdm.auto import tqdm

from dspy_meta.errors import ConfigError, StaleResults
from dspy_meta.runtime.files import file_lock, write_atomic
from dspy_meta.runtime.fingerprint import changed_keys, code_hash, lm_identity
from dspy_meta.runtime.scoring import score_program
from dspy_meta.experiments.config import ExperimentConfig
from dspy_meta.experiments.methods import run_method
from dspy_meta.experiments.trajectory import run_trajectory, write_trajectory_plot
from dspy_meta.runtime.quiet import quiet as quiet_scope
from dspy_meta.runtime.usage import LEVELS, UsageMeter

logger = logging.getLogger(__name__)

__all__ = ["run_experiment", "write_outputs", "output_folder"]


# Settings that do not change a method's result (where it is written, which other methods and seeds run).
_NOT_IN_FINGERPRINT = ("name", "methods", "seeds", "output_dir", "num_threads")


def run_fingerprint(method: str, seed: int, config: ExperimentConfig, lms: dict, task) -> dict[str, Any]:
    """What one method x seed run's result depends on: the config (but where outputs go), the LMs, the metric."""
    settings = {k: v for k, v in config.to_dict().items() if k not in _NOT_IN_FINGERPRINT}
    return {"method": method, "seed": seed, "config": settings,
            "lms": {level: lm_identity(lm) for level, lm in lms.items()}, "metric": code_hash(task.metric)}


def _run_one(method: str, task, lms: dict, config: ExperimentConfig, seed: int, out_dir: Path,
             force: bool = False, storage=None) -> dict[str, Any]:
    run_dir = out_dir / method / f"seed{seed}"
    with file_lock(out_dir / method / f".seed{seed}.lock"):  # one process per run; a second waits, then reuses
        return _run_locked(method, task, lms, config, seed, run_dir, force, storage)


def _run_locked(method: str, task, lms: dict, config: ExperimentConfig, seed: int, run_dir: Path,
                force: bool, storage=None) -> dict[str, Any]:
    finished = run_dir / "record.json"
    fingerprint = run_fingerprint(method, seed, config, lms, task)
    if finished.exists():  # re-running the same command resumes: finished runs are not repeated
        try:
            record = json.loads(finished.read_text())
            saved = record.get("fingerprint", {})
        except ValueError:
            record, saved = None, {"record.json": "unreadable"}
        if record is not None and saved == fingerprint:
            logger.warning("%s seed %d: reusing the finished result in %s", method, seed, finished)
            return record
        changed = changed_keys(saved, fingerprint) if isinstance(saved, dict) else ["fingerprint"]
        if not force:
            raise StaleResults(f"{run_dir} holds a result of other settings (differs in {changed}); rerun with "
                               "--force (run_experiment(force=True)) to recompute it, or use another --output")
        logger.warning("%s seed %d: settings changed (%s); recomputing (--force)", method, seed, changed)
        shutil.rmtree(run_dir)
    elif force and run_dir.exists():  # an unfinished run of unknown settings: start it again
        shutil.rmtree(run_dir)
    meters = {level: UsageMeter(level) for level in LEVELS}
    metered = {level: meters[level].attach(lm) for level, lm in lms.items()}
    started = time.perf_counter()
    program = run_method(method, task.make_program(), task, metered, config, seed, run_dir / "checkpoint", storage)
    compile_seconds = time.perf_counter() - started
    usage = {level: meters[level].snapshot().to_dict() for level in LEVELS}
    results = getattr(program, "meta_results_", None)
    if results is not None:  # a resumed meta run replays usage its own meters saw; ours saw only new calls
        usage = {level: results.usage[level].to_dict() for level in LEVELS}
    # Scoring is measured apart from optimization, on the unmetered program LM.
    val = score_program(program, task.val, task.metric, num_threads=config.num_threads, lm=lms["program"])
    test = score_program(program, task.test, task.metric, num_threads=config.num_threads, lm=lms["program"])
    run_dir.mkdir(parents=True, exist_ok=True)
    program.save(str(run_dir / "program.json"))
    record = {"method": method, "seed": seed, "fingerprint": fingerprint, "val": val, "test": test, "usage": usage,
              "compile_seconds": round(compile_seconds, 2), "wall_seconds": round(time.perf_counter() - started, 2),
              "lm_seconds": {level: round(meters[level].seconds, 2) for level in LEVELS},  # inside each level's calls
              "trajectory": run_trajectory(program, val, usage)}
    if results is not None:
        (run_dir / "meta_results.json").write_text(json.dumps(results.to_dict(), indent=1))
        (run_dir / "learned_optimizers.json").write_text(json.dumps(
            {"best_optimizers": results.best_optimizers, "best_plan": results.best_plan}, indent=1))
        record["meta_val_baseline"] = results.baseline_score
        record["winner"] = results.winner  # None: the unoptimized program was returned
    write_atomic(finished, json.dumps(record).encode("utf-8"))
    return record


def _summary(records: list[dict]) -> dict[str, dict]:
    summary = {}
    for method in dict.fromkeys(r["method"] for r in records):
        rows = [r for r in records if r["method"] == method]
        entry = {}
        for split in ("val", "test"):
            values = [r[split] for r in rows]
            entry[split] = {"mean": statistics.fmean(values),
                            "std": statistics.pstdev(values) if len(values) > 1 else 0.0, "per_seed": values}
        entry["usage"] = {level: {key: statistics.fmean(r["usage"][level][key] or 0 for r in rows)
                                  for key in ("calls", "input_tokens", "output_tokens")} for level in LEVELS}
        entry["wall_seconds"] = statistics.fmean(r["wall_seconds"] for r in rows)
        entry["winner"] = _winners(rows)
        summary[method] = entry
    return summary


def _winners(rows: list[dict]) -> str:
    """The winning optimizer of a meta method over its seeds ("copro", "copro (2 seeds), bootstrap_fewshot");
    "-" for a method without a meta search."""
    if not any("meta_val_baseline" in r for r in rows):
        return "-"
    counts = Counter((r.get("winner") or "unoptimized") if "winner" in r else "not recorded" for r in rows)
    return ", ".join(name if n == 1 or len(counts) == 1 else f"{name} ({n} seeds)" for name, n in counts.items())


def output_folder(config: ExperimentConfig, output: str | Path | None = None) -> Path:
    """Where a run writes: `output` when given, else ``<output_dir>/<name>``."""
    return Path(output) if output else Path(config.output_dir) / config.name


def run_experiment(config: ExperimentConfig, *, seeds: list[int] | None = None, output: str | Path | None = None,
                   lms: dict[str, dspy.BaseLM] | None = None, force: bool = False, quiet: bool = True,
                   storage=None) -> dict[str, Any]:
    """Run every method for every seed; write the outputs; return the results dict.

    `lms` (program / optimizer / meta) replaces the config's LMs, e.g. with scripted LMs in tests.
    `quiet`: DSPy's own bars, prints and chatter are silenced in every run (`dspy_meta.runtime.quiet`); one
    bar over the runs shows progress (stderr). False: every optimizer shows and prints what DSPy does.
    Everything is checked before the first method runs (config, seeds, task data, LMs, and every
    finished result in the output folder against the current settings). A finished method x seed run
    is reused when its settings are unchanged; one of other settings raises `StaleResults` naming what
    changed, unless `force`, which recomputes it. With `storage` (an Optuna storage URL or a
    `dspy_meta.distributed.StudyStorage`), the meta methods' candidates queue in one study per method x seed
    for ``dspy-meta worker --storage URL`` processes (this process runs them too unless told otherwise).
    """
    seeds = list(seeds) if seeds is not None else list(config.seeds)
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
    if bad or not seeds:
        raise ConfigError(f"seeds: must be one or more non-negative integers, got {seeds!r}")
    out_dir = output_folder(config, output)
    task = config.task.load()
    lms = lms or {level: lm_config.build() for level, lm_config in config.lms.items()}
    runs = [(seed, method) for seed in seeds for method in config.methods]
    if not force:
        _check_finished(runs, config, lms, task, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    with dspy.context(lm=lms["program"]):
        for seed, method in tqdm(runs, desc=config.name, unit="run"):
            logger.info("running %s, seed %d", method, seed)
            with quiet_scope(quiet):
                records.append(_run_one(method, task, lms, config, seed, out_dir, force, storage))
    results = {"config": config.to_dict(), "task": {"name": task.name, "description": task.description,
                                                    "source": task.source, "split_note": task.split_note,
                                                    "sizes": [len(task.train), len(task.val), len(task.test)]},
               "seeds": seeds, "runs": records, "summary": _summary(records)}
    write_outputs(results, out_dir)
    return results


def _check_finished(runs, config, lms, task, out_dir: Path) -> None:
    """Refuse before any work when a finished result in `out_dir` belongs to other settings."""
    stale = []
    for seed, method in runs:
        finished = out_dir / method / f"seed{seed}" / "record.json"
        if finished.exists():
            try:
                saved = json.loads(finished.read_text()).get("fingerprint", {})
            except ValueError:
                saved = {"record.json": "unreadable"}
            changed = changed_keys(saved, run_fingerprint(method, seed, config, lms, task))
            if changed:
                stale.append(f"{method}/seed{seed} (differs in {changed})")
    if stale:
        raise StaleResults(f"{out_dir} holds results of other settings: {', '.join(stale)}; rerun with --force "
                           "to recompute them, or use another --output")


def markdown_table(results: dict[str, Any]) -> str:
    task = results["task"]
    lines = [f"Task: {task['name']} ({task['description']}); train/val/test = "
             f"{'/'.join(map(str, task['sizes']))}; seeds {results['seeds']}", "",
             "| Method | Val | Test | winner | program calls | optimizer calls | meta calls "
             "| tokens in/out (all levels) | wall s |", "|---|---|---|---|---|---|---|---|---|"]
    for method, entry in results["summary"].items():
        usage = entry["usage"]
        tokens_in = sum(u["input_tokens"] for u in usage.values())
        tokens_out = sum(u["output_tokens"] for u in usage.values())
        cells = [f"{entry[s]['mean']:.2f} ± {entry[s]['std']:.2f}" for s in ("val", "test")]
        lines.append(f"| {method} | {cells[0]} | {cells[1]} | {entry.get('winner', '-')} | "
                     f"{usage['program']['calls']:.0f} | "
                     f"{usage['optimizer']['calls']:.0f} | {usage['meta']['calls']:.0f} | "
                     f"{tokens_in:.0f}/{tokens_out:.0f} | {entry['wall_seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def write_outputs(results: dict[str, Any], out_dir: Path) -> None:
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    (out_dir / "results.md").write_text(markdown_table(results))
    write_trajectory_plot(results, out_dir / "trajectory.png")
