"""`CompositeOptimizer`: a Teleprompter that runs a plan of inner optimizers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.teleprompt import Teleprompter

from dspy_meta.runtime.scoring import score_program
from dspy_meta.optimizers.base import get_kind
from dspy_meta.plans.nodes import BestOf, OptimizeStep, PlanNode, Sequential, plan_from_dict

logger = logging.getLogger(__name__)

__all__ = ["CompositeOptimizer", "StepRecord"]


@dataclass
class StepRecord:
    """What one plan node did: its path in the plan, what ran, and any validation score."""

    path: str
    op: str
    describe: str
    score: float | None = None
    chosen: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Run:
    metric: Callable
    trainset: list
    valset: list | None
    prompt_model: Any
    task_model: Any
    num_threads: int | None
    seed: int
    records: list[StepRecord] = field(default_factory=list)
    steps_run: int = 0


class CompositeOptimizer(Teleprompter):
    """Run a plan (sequence / best_of of inner optimizers) as one optimizer.

    Args:
        plan: a plan node, or its dict form (validated with `plan_from_dict`).
        metric: ``metric(example, prediction, trace=None) -> float | bool``.
        prompt_model: the inner optimizers' LM (None: the task LM).
        task_model: the program's LM (None: the LM of the calling context).
        num_threads: threads for evaluations.
        seed: base seed; step i of the plan runs with ``seed + i``.

    After `compile`, the returned program carries ``plan_trace_`` (a list of `StepRecord`).
    """

    def __init__(self, plan: PlanNode | dict, metric: Callable, *, prompt_model=None, task_model=None,
                 num_threads: int | None = None, seed: int = 0):
        self.plan = plan
        self.metric = metric
        self.prompt_model = prompt_model
        self.task_model = task_model
        self.num_threads = num_threads
        self.seed = seed

    def compile(self, student, *, trainset, teacher=None, valset=None, **kwargs):
        plan = self.plan if isinstance(self.plan, (OptimizeStep, Sequential, BestOf)) else plan_from_dict(self.plan)
        if not callable(self.metric):
            raise TypeError(f"metric must be callable, got {type(self.metric).__name__}")
        if not trainset:
            raise ValueError("trainset must not be empty")
        if isinstance(plan, BestOf) or any(isinstance(n, BestOf) for n in _walk(plan)):
            if not valset:
                raise ValueError("a plan with best_of needs a valset to choose between branches")
        run = _Run(self.metric, list(trainset), list(valset) if valset else None, self.prompt_model,
                   self.task_model, self.num_threads, self.seed)
        program = _execute(plan, student, run, "plan")
        program.plan_trace_ = run.records
        return program


def _walk(node: PlanNode):
    yield node
    for child in getattr(node, "nodes", ()):
        yield from _walk(child)


def _execute(node: PlanNode, program: dspy.Module, run: _Run, path: str) -> dspy.Module:
    if isinstance(node, OptimizeStep):
        seed = run.seed + run.steps_run
        run.steps_run += 1
        logger.info("%s: running %s", path, node.describe())
        spec = node.spec
        teleprompter = spec.build(run.metric, prompt_model=run.prompt_model, task_model=run.task_model,
                                  num_threads=run.num_threads, seed=seed)
        result = get_kind(spec.kind).compile(teleprompter, program, trainset=run.trainset, valset=run.valset)
        run.records.append(StepRecord(path, "optimize", node.describe(), extra={"seed": seed}))
        return result
    if isinstance(node, Sequential):
        for i, child in enumerate(node.nodes):
            program = _execute(child, program, run, f"{path}.steps[{i}]")
        return program
    if isinstance(node, BestOf):
        best_program, best_score, records = None, None, []
        for i, child in enumerate(node.nodes):
            candidate = _execute(child, program.deepcopy(), run, f"{path}.branches[{i}]")
            score = score_program(candidate, run.valset, run.metric, num_threads=run.num_threads,
                                  lm=run.task_model)
            record = StepRecord(f"{path}.branches[{i}]", "branch", child.describe(), score=score, chosen=False)
            records.append(record)
            run.records.append(record)
            if best_score is None or score > best_score:  # ties keep the earlier branch
                best_program, best_score = candidate, score
        records[[r.score for r in records].index(best_score)].chosen = True
        return best_program
    raise TypeError(f"not a plan node: {type(node).__name__}")
