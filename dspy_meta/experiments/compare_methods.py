"""The methods of the equal-budget comparison: DSPy's own optimizers as DSPy ships them, and ours.

Each runner is ``run(student, task, lms, config, seed) -> (program, notes)``; `lms` holds the metered
program / optimizer / meta LMs, the program LM capped at ``config.program_calls``. How each method
is held to the cap:

- meta methods (``meta_prompt``, ``meta_structure``, ``meta_teleprompter``): ``usage_limits=
  {"program_calls": N}``; at the cap they stop and return the best program found so far.
- ``mipro_v2``: ``num_trials`` is derived from the cap (bootstrapping plus full validation
  evaluations must fit); ``gepa``: ``max_metric_calls`` is the cap less one GEPA iteration's worst
  overshoot; ``copro``: breadth/depth from the config; ``bootstrap_fewshot`` needs at most one call
  per training example. The capped LM is the hard stop: a stock optimizer that asks for a call past
  the cap is stopped there and, since DSPy's optimizers return nothing when interrupted, the method's
  result is the unoptimized student (``hit_cap: true`` in the record).
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Callable

import dspy

from dspy_meta import MetaPromptOptimizer, MetaStructureOptimizer, MetaTeleprompter, OptimizerSpec
from dspy_meta.plans import plan_from_dict

logger = logging.getLogger(__name__)

__all__ = ["SelfConsistency", "RUNNERS", "mipro_trials", "gepa_metric_calls"]


class SelfConsistency(dspy.Module):
    """`n` samples of `program` at `temperature`, most common answer wins (ties: the earliest).

    The samples use rollout ids ``seed * 1000 + i``: different seeds draw different samples, and the
    DSPy cache stays on.
    """

    def __init__(self, program: dspy.Module, n: int, temperature: float, seed: int, answer_field: str = "answer"):
        super().__init__()
        self.program = program
        self.n = n
        self.temperature = temperature
        self.seed = seed
        self.answer_field = answer_field

    def forward(self, **inputs):
        lm = dspy.settings.lm
        samples = []
        for i in range(self.n):
            with dspy.context(lm=lm.copy(rollout_id=self.seed * 1000 + i, temperature=self.temperature)):
                try:
                    samples.append(self.program(**inputs))
                except Exception as exc:  # a sample that fails to parse is one lost vote
                    logger.debug("self-consistency sample %d failed: %s", i, exc)
        if not samples:
            raise ValueError("every self-consistency sample failed")
        answers = [" ".join(str(getattr(s, self.answer_field, "")).split()) for s in samples]
        return samples[answers.index(Counter(answers).most_common(1)[0][0])]


def _demos(config) -> dict:
    return dict(config.settings["demos"])


def mipro_trials(cap: int, n_train: int, n_val: int, num_candidates: int, minibatch: bool, minibatch_size: int) -> int:
    """Trials that fit the cap: bootstrapping (at most one call per training example for each of the
    ``num_candidates - 2`` bootstrapped demo sets), the default program's full evaluation, then per
    trial a full evaluation (or a minibatch plus a share of the periodic full evaluations)."""
    left = cap - max(0, num_candidates - 2) * n_train - n_val
    per_trial = (minibatch_size + n_val / 5) if minibatch else n_val
    return max(1, int(left // per_trial))


def gepa_metric_calls(cap: int, n_val: int, minibatch_size: int) -> int:
    """GEPA checks its budget between iterations; one iteration spends up to two minibatches and a full
    validation pass, so that much is kept back from the cap (never less than one validation pass + 1)."""
    return max(n_val + 1, cap - n_val - 2 * minibatch_size)


def _zero_shot(student, task, lms, config, seed):
    return student, {}


def _self_consistency(student, task, lms, config, seed):
    s = config.settings["self_consistency"]
    return SelfConsistency(student, s["n"], s["temperature"], seed), {"n": s["n"]}


def _bootstrap(student, task, lms, config, seed):
    # BootstrapFewShot has no seed; the seed shuffles the order it walks the trainset in.
    trainset = random.Random(seed).sample(task.train, len(task.train))
    optimizer = dspy.BootstrapFewShot(metric=task.metric, **_demos(config))
    return optimizer.compile(student, trainset=trainset), {}


def _copro(student, task, lms, config, seed):
    s = config.settings["copro"]
    optimizer = dspy.COPRO(prompt_model=lms["optimizer"], metric=task.metric, breadth=s["breadth"], depth=s["depth"],
                           init_temperature=s["init_temperature"])
    program = optimizer.compile(student, trainset=task.train,
                                eval_kwargs={"num_threads": config.num_threads, "display_progress": False})
    return program, {"breadth": s["breadth"], "depth": s["depth"]}


def _mipro(student, task, lms, config, seed):
    s = config.settings["mipro_v2"]
    minibatch = len(task.val) > s["minibatch_size"]
    trials = mipro_trials(config.program_calls, len(task.train), len(task.val), s["num_candidates"], minibatch,
                          s["minibatch_size"])
    optimizer = dspy.MIPROv2(metric=task.metric, prompt_model=lms["optimizer"], task_model=lms["program"],
                             auto=None, num_candidates=s["num_candidates"], num_threads=config.num_threads,
                             seed=seed, verbose=False, **_demos(config))
    program = optimizer.compile(student, trainset=task.train, valset=task.val, num_trials=trials, minibatch=minibatch,
                                minibatch_size=s["minibatch_size"])
    return program, {"num_trials": trials, "num_candidates": s["num_candidates"], "minibatch": minibatch}


def _gepa(student, task, lms, config, seed):
    s = config.settings["gepa"]
    budget = gepa_metric_calls(config.program_calls, len(task.val), s["reflection_minibatch_size"])

    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        return task.metric(gold, pred, trace)

    optimizer = dspy.GEPA(metric=metric, max_metric_calls=budget, reflection_lm=lms["optimizer"],
                          reflection_minibatch_size=s["reflection_minibatch_size"], use_merge=s["use_merge"],
                          num_threads=config.num_threads, seed=seed)
    return optimizer.compile(student, trainset=task.train, valset=task.val), {"max_metric_calls": budget}


# DSPy's optimizers as a user runs them (the defaults table): DSPy's own defaults, no cap, actual cost.
def _mipro_auto_light(student, task, lms, config, seed):
    optimizer = dspy.MIPROv2(metric=task.metric, prompt_model=lms["optimizer"], task_model=lms["program"],
                             auto="light", num_threads=config.num_threads, seed=seed, verbose=False)
    return optimizer.compile(student, trainset=task.train, valset=task.val), {"auto": "light"}


def _gepa_auto_light(student, task, lms, config, seed):
    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        return task.metric(gold, pred, trace)

    optimizer = dspy.GEPA(metric=metric, auto="light", reflection_lm=lms["optimizer"],
                          num_threads=config.num_threads, seed=seed)
    return optimizer.compile(student, trainset=task.train, valset=task.val), {"auto": "light"}


def _copro_defaults(student, task, lms, config, seed):
    optimizer = dspy.COPRO(prompt_model=lms["optimizer"], metric=task.metric)
    program = optimizer.compile(student, trainset=task.train,
                                eval_kwargs={"num_threads": config.num_threads, "display_progress": False})
    return program, {"breadth": optimizer.breadth, "depth": optimizer.depth}


def _meta_teleprompter_defaults(student, task, lms, config, seed):
    optimizer = MetaTeleprompter(task.metric, task_model=lms["program"], prompt_model=lms["optimizer"],
                                 meta_model=lms["meta"], num_threads=config.num_threads, seed=seed,
                                 display_progress=False)
    program = optimizer.compile(student, trainset=task.train, valset=task.val)
    return program, _meta_notes(program)


def _meta_kwargs(lms, config, seed) -> dict:
    return {"budget": config.meta_budget, "task_model": lms["program"], "prompt_model": lms["optimizer"],
            "meta_model": lms["meta"], "num_threads": config.num_threads, "seed": seed, "display_progress": False,
            "usage_limits": {"program_calls": config.program_calls}}


def _inputs(config) -> dict[str, OptimizerSpec]:
    budget, demos = config.meta_budget, _demos(config)
    return {"copro": OptimizerSpec.create("copro", breadth=budget.copro_breadth, depth=budget.copro_depth),
            "mipro_v2": OptimizerSpec.create("mipro_v2", num_candidates=budget.mipro_candidates,
                                             num_trials=budget.mipro_trials, **demos),
            "bootstrap_fewshot": OptimizerSpec.create("bootstrap_fewshot", **demos)}


def _meta_notes(program) -> dict:
    results = getattr(program, "meta_results_", None)
    if results is None:
        return {}
    return {"stopped": results.stopped_reason, "returned_baseline": results.returned_baseline,
            "meta_val_baseline": results.baseline_score, "meta_val_best": results.best_score,
            "best_plan": results.best_plan, "candidates": len(results.candidates),
            "candidate_scores": [c.score for c in results.candidates],
            # What each candidate was and why it was (not) kept: the run's story, for reading results later.
            "candidate_records": [{"stage": c.stage, "score": c.score, "accepted": c.accepted,
                                   "plan": _describe(c.plan), "calls_per_example": c.calls_per_example,
                                   "reason": c.reason} for c in results.candidates]}


def _describe(plan: dict | None) -> str | None:
    if plan is None:
        return None
    try:
        return plan_from_dict(plan).describe()
    except ValueError:  # a plan naming optimizers outside the default library: keep its raw form
        return json.dumps(plan, sort_keys=True)


def _meta_prompt(student, task, lms, config, seed):
    optimizer = MetaPromptOptimizer(task.metric, _inputs(config)["copro"], **_meta_kwargs(lms, config, seed))
    program = optimizer.compile(student, trainset=task.train, valset=task.val)
    return program, _meta_notes(program)


def _meta_structure(student, task, lms, config, seed):
    optimizer = MetaStructureOptimizer(task.metric, _inputs(config), **_meta_kwargs(lms, config, seed))
    program = optimizer.compile(student, trainset=task.train, valset=task.val)
    return program, _meta_notes(program)


def _meta_teleprompter(student, task, lms, config, seed):
    optimizer = MetaTeleprompter(task.metric, **_demos(config), **_meta_kwargs(lms, config, seed))
    program = optimizer.compile(student, trainset=task.train, valset=task.val)
    return program, _meta_notes(program)


RUNNERS: dict[str, Callable] = {
    "zero_shot_cot": _zero_shot, "self_consistency": _self_consistency, "bootstrap_fewshot": _bootstrap,
    "copro": _copro, "mipro_v2": _mipro, "gepa": _gepa, "meta_prompt": _meta_prompt,
    "meta_structure": _meta_structure, "meta_teleprompter": _meta_teleprompter,
    "mipro_v2_auto_light": _mipro_auto_light, "gepa_auto_light": _gepa_auto_light, "copro_defaults": _copro_defaults,
    "meta_teleprompter_defaults": _meta_teleprompter_defaults,
}
