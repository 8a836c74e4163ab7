"""Compiling with a learned bundle and no meta budget: the learned plan runs as it is, with no meta-LM call.

The meta level's cost was paid offline, when the bundle was learned (`dspy-meta learn`); a user's compile
then costs what the stock optimizers it wraps cost with the learned settings, and returns the student's
class, as those optimizers do.
"""

from __future__ import annotations

import logging

import dspy

from dspy_meta.learning.bundle import LearnedBundle
from dspy_meta.plans.composite import CompositeOptimizer

__all__ = ["compile_learned"]

logger = logging.getLogger(__name__)


def compile_learned(teleprompter, bundle: LearnedBundle, student, *, trainset, valset, seed: int,
                    teacher=None) -> dspy.Module:
    """Run `bundle`'s plan on `student` with `teleprompter`'s metric, LMs and threads."""
    trainset, valset = teleprompter._validate_data(student, trainset, valset)
    lms = teleprompter._resolve_lms(student)
    plan = bundle.plan_node()
    logger.info("compiling with the learned bundle %r: %s (no meta search)", bundle.name, plan.describe())
    optimizer = CompositeOptimizer(plan, teleprompter.metric, prompt_model=lms["optimizer"],
                                   task_model=lms["program"], num_threads=teleprompter.num_threads, seed=seed,
                                   teacher_settings=teleprompter._teacher_settings())
    with dspy.context(lm=lms["program"]):
        program = optimizer.compile(student, trainset=trainset, valset=valset, teacher=teacher)
    if type(program) is not type(student):
        raise TypeError(f"the learned plan of bundle {bundle.name!r} returned a {type(program).__name__}, not the "
                        f"student's {type(student).__name__}; such plans need a meta budget")
    program.learned_bundle_ = bundle.name
    return program
