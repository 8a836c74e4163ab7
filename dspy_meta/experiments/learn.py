"""``dspy-meta learn CONFIG``: meta-learn one inner optimizer kind across learning tasks, offline, into a bundle.

`run_learning(config)` searches over the optimizer's own prompts and its hyperparameters. Trial 0 is the stock
optimizer (DSPy's prompts, the config's reference params). Each later trial takes its hyperparameters from a
seeded Optuna TPE sampler over the config's `space`, and its prompts from the meta LM: a rewrite of the best
trial's prompts so far, asked for transfer (`dspy_meta.experiments.learn_proposals`), shown examples of every
task and the history of the trials. A trial is evaluated on every (task, seed): the optimizer compiles the task's
starting program on its train split, and the program is scored per example on the val split with the program
LM, paired with the stock optimizer's program (trial 0's, on the same examples). The objective is the mean
over tasks (and seeds) of the trial's val accuracy minus the stock one. The inner optimizer never sees val:
kinds that select on a validation set carve it from train, so the signal is measured on examples no
optimizer selected on. Test splits are never read.

Checkpoints (`dspy_meta.experiments.learn_store`): a trial's candidate is on disk before it is evaluated,
every finished evaluation is one fsynced line, and the best-so-far bundle (``output``) and the run's record
are rewritten after every trial. Re-running the same command resumes: finished evaluations are reused, an
unfinished trial is finished first, and the Optuna study is rebuilt from the finished trials, so a stop
(Ctrl-C, SIGKILL) loses at most the evaluation in flight, and the resumed run ends where an uninterrupted
one would (for deterministic LMs, with the same bundle).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from contextlib import contextmanager
from typing import Any

import dspy
from tqdm.auto import tqdm

from dspy_meta.errors import ConfigError
from dspy_meta.experiments.capped_lm import CallMeter, capped, fresh_dspy_cache
from dspy_meta.experiments.compare import score_examples
from dspy_meta.experiments.learn_config import LearnConfig, learning_fingerprint
from dspy_meta.experiments.learn_store import LearningStore
from dspy_meta.learning.bundle import LearnedBundle
from dspy_meta.experiments.learn_proposals import (
    propose_transferable_prompts, render_learning_history, render_task_examples,
)
from dspy_meta.optimizers.spec import OptimizerSpec
from dspy_meta.runtime.quiet import quiet as quiet_scope
from dspy_meta.runtime.redact import redact

__all__ = ["run_learning", "summarize_trial", "OBJECTIVE"]

logger = logging.getLogger(__name__)

LEVELS = ("program", "optimizer", "meta")
OBJECTIVE = ("mean over the learning tasks (and seeds) of the paired gain in validation accuracy of the program "
             "the optimizer produces over the program the stock optimizer produces")
TPE_STARTUP_TRIALS = 4  # random samples before TPE models the finished trials


def _data_hash(task) -> str:
    """The train and val examples (the only splits a learning run reads)."""
    rows = {split: [dict(example) for example in getattr(task, split)] for split in ("train", "val")}
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _load_tasks(config: LearnConfig) -> dict[str, Any]:
    from dspy_meta.benchmarks import load_task

    tasks = {}
    for name in config.tasks:
        kwargs = config.resolved_task_kwargs(name)
        try:
            task = load_task(name, **kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"tasks: {name!r} with {kwargs} cannot be loaded: {exc}") from None
        if len(task.train) < 2 or not task.val:
            raise ConfigError(f"tasks: {name!r} with {kwargs} has {len(task.train)} train and {len(task.val)} val "
                              "examples; a learning run needs at least 2 and 1")
        tasks[name] = task
    return tasks


def _add_usage(total: dict[str, dict[str, int]], usage: dict[str, dict[str, int]]) -> None:
    for level, counts in usage.items():
        into = total.setdefault(level, {})
        for key, value in counts.items():
            into[key] = into.get(key, 0) + value


# -- one evaluation: compile on train, score on val ------------------------------------------------
def _evaluate(trial: dict[str, Any], task, seed: int, lms: dict, config: LearnConfig, quiet: bool) -> dict:
    spec: OptimizerSpec = trial["spec"]
    meters = {level: CallMeter(level) for level in ("program", "optimizer")}
    program_lm, optimizer_lm = capped(lms["program"], meters["program"]), capped(lms["optimizer"], meters["optimizer"])
    error = None
    started = time.perf_counter()
    with quiet_scope(quiet), fresh_dspy_cache():  # each evaluation as a new user's: counts independent of order
        with dspy.context(lm=program_lm, disable_history=False):
            try:
                program = spec.run(task.make_program(), trainset=task.train, metric=task.metric,
                                   prompt_model=optimizer_lm, task_model=program_lm,
                                   num_threads=config.num_threads, seed=seed)
            except Exception as exc:  # a crashing optimizer is recorded, not hidden: its result is the student
                logger.exception("trial %d, %s, seed %d: the optimizer failed", trial["trial"], task.name, seed)
                program, error = task.make_program(), f"{type(exc).__name__}: {redact(exc)}"
        compiled = time.perf_counter()
        scoring = CallMeter("program")
        scores = score_examples(program, task.val, task.metric, capped(lms["program"], scoring), config.num_threads)
    return {"trial": trial["trial"], "task": task.name, "seed": seed, "spec": spec.fingerprint(),
            "val_scores": scores, "accuracy": sum(scores) / len(scores), "error": error,
            "usage": {"compile": {level: meter.snapshot() for level, meter in meters.items()},
                      "scoring": {"program": scoring.snapshot()}},
            "seconds": {"compile": round(compiled - started, 2), "scoring": round(time.perf_counter() - compiled, 2)}}


def _reused(trial: dict[str, Any], task: str, seed: int, trials: dict, results: dict) -> dict | None:
    """An earlier trial's finished evaluation of the same candidate (the meta LM repeated itself), copied."""
    fingerprint = trial["spec"].fingerprint()
    for index in sorted(trials):
        if index < trial["trial"] and trials[index]["spec"].fingerprint() == fingerprint \
                and (index, task, seed) in results:
            source = results[(index, task, seed)]
            return {**source, "trial": trial["trial"], "reused_from": index,
                    "usage": {"compile": {}, "scoring": {}}, "seconds": {"compile": 0.0, "scoring": 0.0}}
    return None


# -- the objective ----------------------------------------------------------------------------------
def summarize_trial(index: int, results: dict, config: LearnConfig) -> dict[str, Any]:
    """A finished trial against the stock one (trial 0): the objective, per-task gains and accuracies,
    per-example wins and losses, and the calls it made."""
    per_task_gain, per_task_accuracy, wins, losses, errors = {}, {}, {}, {}, []
    usage: dict[str, dict[str, int]] = {}
    for task in config.tasks:
        gains, accuracies, wins[task], losses[task] = [], [], 0, 0
        for seed in config.seeds:
            mine, stock = results[(index, task, seed)], results[(0, task, seed)]
            gains.append(mine["accuracy"] - stock["accuracy"])
            accuracies.append(mine["accuracy"])
            wins[task] += sum(a > b for a, b in zip(mine["val_scores"], stock["val_scores"], strict=True))
            losses[task] += sum(a < b for a, b in zip(mine["val_scores"], stock["val_scores"], strict=True))
            for part in mine["usage"].values():
                _add_usage(usage, part)
            if mine.get("error"):
                errors.append(f"{task} seed {seed}: {mine['error']}")
        per_task_gain[task] = sum(gains) / len(gains)
        per_task_accuracy[task] = sum(accuracies) / len(accuracies)
    return {"trial": index, "objective": sum(per_task_gain.values()) / len(per_task_gain),
            "per_task_gain": per_task_gain, "per_task_accuracy": per_task_accuracy, "wins": wins, "losses": losses,
            "usage": usage, "errors": errors}


def _best(summaries: dict[int, dict]) -> int:
    """The trial of the highest objective; the earliest among equals (the stock optimizer wins ties)."""
    return max(sorted(summaries), key=lambda index: summaries[index]["objective"])


# -- proposing a trial ------------------------------------------------------------------------------
@contextmanager
def _optuna_quiet():
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield optuna
    finally:
        optuna.logging.set_verbosity(verbosity)


def _suggest_params(config: LearnConfig, index: int, trials: dict, summaries: dict) -> dict[str, Any]:
    """Trial `index`'s searched params: a TPE sampler seeded by (search_seed, index), told every finished trial.
    The study is rebuilt for each trial, so the suggestion depends on the finished trials alone (not on how
    many times the run was stopped and resumed)."""
    if not config.space:
        return {}
    with _optuna_quiet() as optuna:
        distributions = {name: optuna.distributions.CategoricalDistribution(choices)
                         for name, choices in config.space.items()}
        sampler = optuna.samplers.TPESampler(seed=config.search_seed * 100_003 + index,
                                             n_startup_trials=TPE_STARTUP_TRIALS)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for done in sorted(summaries):
            params = trials[done].get("optuna_params")
            if params is not None:
                study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions,
                                                          value=summaries[done]["objective"]))
        return dict(study.ask(fixed_distributions=distributions).params)


def _history(trials: dict, summaries: dict) -> list[dict[str, Any]]:
    return [{"trial": index, "objective": summary["objective"], "per_task_gain": summary["per_task_gain"],
             "params": dict(trials[index]["spec"].params),
             "prompts": {name: t.instructions for name, t in trials[index]["spec"].prompts.items()}}
            for index, summary in sorted(summaries.items())]


def _new_trial(index: int, config: LearnConfig, tasks: dict, trials: dict, summaries: dict,
               meta_lm, meta_meter: CallMeter) -> dict[str, Any]:
    if index == 0:
        reference = config.reference_params()
        spec = OptimizerSpec.create(config.kind, **reference)
        searched = {name: reference[name] for name in config.space}
        in_space = all(value in config.space[name] for name, value in searched.items())
        return {"trial": 0, "spec": spec, "optuna_params": searched if in_space else None, "prompts_from": "stock",
                "based_on": None, "proposal": None, "meta_usage": {}}
    based_on = _best(summaries)
    best = trials[based_on]["spec"]
    before = meta_meter.snapshot()
    proposal = None
    if best.prompts:
        rng = random.Random(f"{config.search_seed}:{index}")
        examples = render_task_examples({name: (task.description, task.train) for name, task in tasks.items()},
                                        config.examples_per_task, rng)
        proposal = propose_transferable_prompts(meta_lm, best, task_examples=examples,
                                                history=render_learning_history(_history(trials, summaries)),
                                                key=f"learn:{config.search_seed}:{index}")
        for reason in proposal.rejections:
            logger.info("trial %d: meta proposal rejected: %s", index, reason)
    params = _suggest_params(config, index, trials, summaries)
    spec = (proposal.spec if proposal and proposal.spec else best).with_params(**params)
    after = meta_meter.snapshot()
    return {"trial": index, "spec": spec, "optuna_params": params if config.space else None,
            "prompts_from": "meta" if proposal and proposal.spec else "best kept", "based_on": based_on,
            "proposal": proposal.to_dict() if proposal else None,
            "meta_usage": {"meta": {key: after[key] - before[key] for key in after}}}


# -- outputs ----------------------------------------------------------------------------------------
def _budgets(config: LearnConfig, tasks: dict) -> dict[str, Any]:
    return {"kind": config.kind, "reference_params": config.reference_params(), "space": config.to_dict()["space"],
            "trials": config.trials, "examples_per_task": config.examples_per_task,
            "task_kwargs": {name: config.resolved_task_kwargs(name) for name in config.tasks},
            "task_sizes": {name: {"train": len(t.train), "val": len(t.val)} for name, t in tasks.items()}}


def _calls(trials: dict, summaries: dict) -> dict[str, int]:
    usage: dict[str, dict[str, int]] = {}
    for index, summary in summaries.items():
        _add_usage(usage, summary["usage"])
        _add_usage(usage, trials[index].get("meta_usage") or {})
    return {level: usage.get(level, {}).get("calls", 0) for level in LEVELS}


def _write_outputs(config: LearnConfig, tasks: dict, trials: dict, summaries: dict, results: dict,
                   command: str, store: LearningStore) -> LearnedBundle:
    best = _best(summaries)
    stock = summaries[0]["per_task_accuracy"]
    scores = {"objective": OBJECTIVE, "best_trial": best, "best_objective": summaries[best]["objective"],
              "objective_per_trial": [summaries[i]["objective"] for i in sorted(summaries)],
              "per_task_gain": summaries[best]["per_task_gain"],
              "per_task_accuracy": summaries[best]["per_task_accuracy"], "stock_accuracy": stock,
              "wins": summaries[best]["wins"], "losses": summaries[best]["losses"]}
    spec = trials[best]["spec"]
    labelled = OptimizerSpec(spec.kind, spec.params, spec.prompts, label=f"{config.name} (trial {best})")
    budgets = {**_budgets(config, tasks), "calls_spent": _calls(trials, summaries),
               "trials_finished": len(summaries) - 1}
    bundle = LearnedBundle.create(config.name, {config.kind: labelled}, None,
                                  models={level: config.lms[level].model for level in LEVELS},
                                  learning_tasks=list(config.tasks), budgets=budgets, seeds=list(config.seeds),
                                  scores=scores, command=command)
    bundle.save(config.output)
    seconds = sum(sum(r["seconds"].values()) for r in results.values())
    store.write_record({"name": config.name, "kind": config.kind, "tasks": list(config.tasks),
                        "seeds": list(config.seeds), "command": command, "objective": OBJECTIVE,
                        "complete": len(summaries) == config.trials + 1, "best_trial": best, "bundle": config.output,
                        "budgets": budgets, "stock_accuracy": stock, "evaluation_seconds": round(seconds, 1),
                        "trials": [{**summaries[i], "params": dict(trials[i]["spec"].params),
                                    "prompts_from": trials[i]["prompts_from"], "based_on": trials[i]["based_on"],
                                    "proposal": trials[i]["proposal"], "meta_usage": trials[i]["meta_usage"]}
                                   for i in sorted(summaries)]})
    return bundle


# -- the run ----------------------------------------------------------------------------------------
def run_learning(config: LearnConfig, *, lms: dict[str, dspy.BaseLM] | None = None, command: str | None = None,
                 quiet: bool = True, progress: bool = True) -> LearnedBundle:
    """Run (or resume) the learning run `config`; returns the best bundle, also written to ``config.output``.

    `lms` (program / optimizer / meta) replaces the config's LMs, e.g. with scripted LMs in tests. `command`
    is the command that reproduces the bundle, recorded in its provenance (default: ``dspy-meta learn`` and
    the config's file). `quiet`: DSPy's own bars and prints are silenced; `progress`: the run's bar is shown.
    """
    command = command or f"dspy-meta learn {config.source or config.name + '.yaml'}"
    store = LearningStore(config.work_dir)
    store.root.mkdir(parents=True, exist_ok=True)
    lock = store.locked()
    try:
        tasks = _load_tasks(config)
        fingerprint = {**learning_fingerprint(config), "data": {name: _data_hash(t) for name, t in tasks.items()}}
        resuming = store.check_manifest(fingerprint)
        on_file = store.load_trials()
        results = store.load_results(on_file)
        trials = {i: t for i, t in on_file.items() if i <= config.trials}  # fewer trials than before: the rest wait
        if resuming:
            logger.info("resuming %s: %d trial(s) and %d evaluation(s) on file are reused", store.root,
                        len(trials), len(results))
        lms = lms or _build_lms(config)
        meta_meter = CallMeter("meta")
        meta_lm = capped(lms["meta"], meta_meter)
        units = [(task, seed) for task in config.tasks for seed in config.seeds]
        finished = sum(1 for (index, _, _) in results if index <= config.trials)
        summaries: dict[int, dict] = {}
        bundle = None
        with tqdm(total=(config.trials + 1) * len(units), initial=finished, desc=f"learn {config.name}",
                  unit="eval", disable=not progress) as bar:
            for index in range(config.trials + 1):
                worked = index not in trials
                if worked:
                    trials[index] = _new_trial(index, config, tasks, trials, summaries, meta_lm, meta_meter)
                    store.write_trial({**trials[index], "spec": trials[index]["spec"].to_dict()})
                for task, seed in units:
                    if (index, task, seed) in results:
                        continue
                    worked = True
                    result = _reused(trials[index], task, seed, trials, results) or \
                        _evaluate(trials[index], tasks[task], seed, lms, config, quiet)
                    store.append_result(result)
                    results[(index, task, seed)] = result
                    bar.update()
                summaries[index] = summarize_trial(index, results, config)
                best = _best(summaries)
                logger.info("trial %d: objective %+.3f (%s); best so far: trial %d, %+.3f", index,
                            summaries[index]["objective"], trials[index]["prompts_from"], best,
                            summaries[best]["objective"])
                if worked or (bundle is None and index == config.trials):  # the last trial: always written
                    bundle = _write_outputs(config, tasks, trials, summaries, results, command, store)
        if _best(summaries) == 0:
            logger.warning("no learned trial beat the stock %s: the bundle %s holds the stock optimizer",
                           config.kind, config.output)
        return bundle
    finally:
        lock.release()


def _build_lms(config: LearnConfig) -> dict[str, dspy.BaseLM]:
    from dspy_meta.experiments.engine_memo import memo_lm

    return {level: memo_lm(c.model, **c.kwargs) for level, c in config.lms.items()}
