"""The methods an experiment compares, each ``(program, task, lms, config, seed) -> optimized program``."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable

import dspy

from dspy_meta.distributed.queue import study_storage
from dspy_meta.teleprompters import MetaPromptOptimizer, MetaStructureOptimizer, MetaTeleprompter
from dspy_meta.teleprompters.meta_teleprompter import default_input_optimizers
from dspy_meta.optimizers.spec import OptimizerSpec

logger = logging.getLogger(__name__)

__all__ = ["METHOD_RUNNERS", "META_METHODS", "SampleVote", "run_method"]


class SampleVote(dspy.Module):
    """Self-consistency: `n` samples of `program` at temperature 0.7, most common answer wins.

    Distinct rollout ids make the samples differ without turning the LM cache off.
    """

    def __init__(self, program: dspy.Module, n: int, answer_field: str = "answer"):
        super().__init__()
        self.program = program
        self.n = n
        self.answer_field = answer_field

    def forward(self, **inputs):
        lm = dspy.settings.lm
        samples = []
        for i in range(self.n):
            with dspy.context(lm=lm.copy(rollout_id=i, temperature=0.7)):
                try:
                    samples.append(self.program(**inputs))
                except Exception as exc:  # a sample that fails to parse is one lost vote
                    logger.debug("sample %d failed: %s", i, exc)
        if not samples:
            raise ValueError("every sample failed")
        answers = [str(getattr(s, self.answer_field, "")).strip() for s in samples]
        winner = Counter(answers).most_common(1)[0][0]
        return samples[answers.index(winner)]


def _inputs(config) -> dict[str, OptimizerSpec]:
    """The input optimizers (COPRO, MIPROv2, BootstrapFewShot) with the config's budget and demo limits."""
    return default_input_optimizers(config.budget, max_bootstrapped_demos=config.max_bootstrapped_demos,
                                    max_labeled_demos=config.max_labeled_demos)


def _gepa(config, task) -> OptimizerSpec:
    """GEPA with as many metric calls as the MIPROv2 method's trials spend on full validation runs."""
    return OptimizerSpec.create("gepa", max_metric_calls=max(10, config.budget.mipro_trials * len(task.val)))


def _spec_method(kind: str) -> Callable:
    def run(program, task, lms, config, seed, run_dir=None):
        spec = _gepa(config, task) if kind == "gepa" else _inputs(config)[kind]
        return spec.run(program, trainset=task.train, valset=task.val, metric=task.metric,
                        prompt_model=lms["optimizer"], task_model=lms["program"], num_threads=config.num_threads,
                        seed=seed)
    return run


def _meta_kwargs(lms, config, seed, run_dir, storage=None) -> dict:
    return {"budget": config.budget, "task_model": lms["program"], "prompt_model": lms["optimizer"],
            "meta_model": lms["meta"], "num_threads": config.num_threads, "seed": seed,
            "run_dir": str(run_dir) if run_dir else None, "storage": storage}


def _meta_prompt(program, task, lms, config, seed, run_dir=None, storage=None):
    return MetaPromptOptimizer(task.metric, _inputs(config)["copro"],
                               **_meta_kwargs(lms, config, seed, run_dir, storage)).compile(
        program, trainset=task.train, valset=task.val)


def _meta_structure(program, task, lms, config, seed, run_dir=None, storage=None):
    return MetaStructureOptimizer(task.metric, _inputs(config), **_meta_kwargs(lms, config, seed, run_dir, storage)).compile(
        program, trainset=task.train, valset=task.val)


def _meta_teleprompter(program, task, lms, config, seed, run_dir=None, storage=None):
    return MetaTeleprompter(task.metric, max_bootstrapped_demos=config.max_bootstrapped_demos,
                            max_labeled_demos=config.max_labeled_demos,
                            **_meta_kwargs(lms, config, seed, run_dir, storage)).compile(
        program, trainset=task.train, valset=task.val)


METHOD_RUNNERS: dict[str, Callable] = {
    "zero_shot_cot": lambda program, task, lms, config, seed, run_dir=None: program,
    "few_shot_cot": _spec_method("bootstrap_fewshot"),
    "self_consistency": lambda program, task, lms, config, seed, run_dir=None: SampleVote(program,
                                                                                           config.num_samples),
    "copro": _spec_method("copro"),
    "mipro_v2": _spec_method("mipro_v2"),
    "gepa": _spec_method("gepa"),
    "meta_prompt": _meta_prompt,
    "meta_structure": _meta_structure,
    "meta_teleprompter": _meta_teleprompter,
}


META_METHODS = ("meta_prompt", "meta_structure", "meta_teleprompter")


def run_method(name: str, program, task, lms, config, seed, run_dir=None, storage=None):
    """Run one method; meta methods checkpoint into `run_dir` and resume from it, and with `storage` (an
    Optuna storage URL or a `StudyStorage`) queue their candidates for workers (``dspy-meta worker``)."""
    extra = {}
    if storage is not None and name in META_METHODS:  # the recipe lets `dspy-meta worker` rebuild the run
        recipe = {"kind": "experiment", "config": config.to_dict(), "method": name, "seed": seed}
        extra["storage"] = dataclasses.replace(study_storage(storage), recipe=recipe)
    with dspy.context(lm=lms["program"]):
        return METHOD_RUNNERS[name](program, task, lms, config, seed, run_dir, **extra)
