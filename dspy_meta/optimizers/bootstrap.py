"""BootstrapFewShot as an inner-optimizer kind: demos only, no prompts of its own."""

from __future__ import annotations

from dspy.teleprompt import BootstrapFewShot

from dspy_meta.optimizers.base import OptimizerKind, Param, lm_scope, register_kind
from dspy_meta.optimizers.prompts import PromptSet

__all__ = ["ScopedBootstrapFewShot", "BootstrapFewShotKind"]


class ScopedBootstrapFewShot(BootstrapFewShot):
    """BootstrapFewShot that runs its teacher on an explicit task LM."""

    def __init__(self, *, task_model=None, **kwargs):
        super().__init__(**kwargs)
        self.task_model = task_model

    def compile(self, student, *, teacher=None, trainset, valset=None):
        # The parent stores its working state on self; run it on a copy so this object stays reusable.
        run = ScopedBootstrapFewShot(task_model=self.task_model, metric=self.metric,
                                     metric_threshold=self.metric_threshold, teacher_settings=self.teacher_settings,
                                     max_bootstrapped_demos=self.max_bootstrapped_demos,
                                     max_labeled_demos=self.max_labeled_demos, max_rounds=self.max_rounds,
                                     max_errors=self.max_errors)
        # DSPy refuses an already compiled student; in a plan, bootstrapping the current program is the point.
        student = student.deepcopy()
        student._compiled = False
        with lm_scope(self.task_model):
            return BootstrapFewShot.compile(run, student, teacher=teacher, trainset=trainset)


class BootstrapFewShotKind(OptimizerKind):
    name = "bootstrap_fewshot"
    description = ("BootstrapFewShot: runs the program on training examples and keeps the traces that pass "
                   "the metric as few-shot demos (plus labeled examples). Changes demos only; keeps "
                   "instructions. No LM prompts of its own.")
    params = {
        "max_bootstrapped_demos": Param(int, 4, low=0, high=16, help="demos taken from passing traces"),
        "max_labeled_demos": Param(int, 16, low=0, high=32, help="raw labeled examples added as demos"),
        "max_rounds": Param(int, 1, low=1, high=5, help="bootstrapping attempts per example"),
    }

    def default_prompts(self) -> PromptSet:
        return PromptSet()

    def build(self, params, prompts, *, metric, prompt_model, task_model, num_threads, seed, teacher_settings=None):
        return ScopedBootstrapFewShot(task_model=task_model, metric=metric, teacher_settings=teacher_settings,
                                      **params)

    def compile(self, teleprompter, student, *, trainset, valset, teacher=None):
        return teleprompter.compile(student, trainset=trainset, teacher=teacher)


register_kind(BootstrapFewShotKind())
