"""GEPA as an inner-optimizer kind; its reflection prompt is passed through the constructor."""

from __future__ import annotations

import copy

import dspy
from dspy.teleprompt import GEPA
from dspy.teleprompt.gepa import instruction_proposal as _proposal

from dspy_meta.optimizers.base import OptimizerKind, Param, lm_scope, register_kind
from dspy_meta.optimizers.prompts import PromptSet, PromptTemplate

__all__ = ["PromptedInstructionProposer", "ScopedGEPA", "GEPAKind", "as_gepa_metric"]

PROPOSE_INSTRUCTION = "propose_instruction"


class PromptedInstructionProposer(_proposal.InstructionProposer):
    """GEPA's instruction proposer asking with `template` (instructions and field descriptions)."""

    def __init__(self, template: PromptTemplate, *, lm=None, **kwargs):
        super().__init__(base_instructions=template.instructions, **kwargs)
        self.propose = dspy.Predict(template.apply(self.propose.signature, strict=False))
        self.lm = lm

    def __call__(self, candidate, reflective_dataset, components_to_update):
        with lm_scope(self.lm):
            return super().__call__(candidate, reflective_dataset, components_to_update)


def as_gepa_metric(metric):
    """Adapt a `metric(example, pred, trace=None)` to GEPA's five-argument form."""

    def gepa_metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        return metric(gold, pred, trace)

    gepa_metric.__name__ = getattr(metric, "__name__", "metric")
    return gepa_metric


class ScopedGEPA(GEPA):
    """GEPA that runs on an explicit task LM and leaves itself unchanged by `compile`."""

    def __init__(self, metric, *, task_model=None, **kwargs):
        super().__init__(metric, **kwargs)
        self.task_model = task_model

    def compile(self, student, *, trainset, teacher=None, valset=None):
        run = copy.copy(self)  # GEPA.compile writes its resolved budget onto self
        with lm_scope(self.task_model):
            return GEPA.compile(run, student, trainset=trainset, teacher=teacher, valset=valset)


class GEPAKind(OptimizerKind):
    name = "gepa"
    description = ("GEPA: reflective prompt evolution. Runs the program on minibatches, has its reflection LM "
                   "read the traces and metric feedback and propose new instructions, keeping a Pareto "
                   "front of candidates on the validation set. Changes instructions only.")
    params = {
        "max_metric_calls": Param(int, 200, low=10, high=100000, help="metric evaluations budget"),
        "reflection_minibatch_size": Param(int, 3, low=1, high=50),
        "use_merge": Param(bool, True),
    }

    def default_prompts(self) -> PromptSet:
        return PromptSet({PROPOSE_INSTRUCTION: PromptTemplate.from_signature(_proposal.ProposeInstruction)})

    def build(self, params, prompts, *, metric, prompt_model, task_model, num_threads, seed, teacher_settings=None):
        # GEPA insists on an LM object at construction; build() runs at compile time, so the context LM is right.
        reflection_lm = prompt_model or task_model or dspy.settings.lm
        if reflection_lm is None:
            raise ValueError("GEPA needs a reflection LM: pass prompt_model or configure an LM")
        proposer = PromptedInstructionProposer(prompts[PROPOSE_INSTRUCTION], lm=reflection_lm)
        return ScopedGEPA(as_gepa_metric(metric), task_model=task_model, reflection_lm=reflection_lm,
                          instruction_proposer=proposer, num_threads=num_threads, seed=seed, **params)

    def compile(self, teleprompter, student, *, trainset, valset, teacher=None):
        return teleprompter.compile(student, trainset=trainset, valset=valset)  # GEPA refuses a teacher


register_kind(GEPAKind())
