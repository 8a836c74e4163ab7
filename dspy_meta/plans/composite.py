"""`CompositeOptimizer`: a Teleprompter that runs a plan of inner optimizers."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.teleprompt import Teleprompter

from dspy_meta.runtime.scoring import score_program
from dspy_meta.optimizers.base import get_kind
from dspy_meta.programs import get_transform
from dspy_meta.plans.nodes import BestOf, Ensemble, OptimizeStep, PlanNode, Sequential, TransformStep, plan_from_dict

logger = logging.getLogger(__name__)

__all__ = ["CompositeOptimizer", "StepRecord", "plan_key"]

PLAN_NODES = (OptimizeStep, Sequential, BestOf, TransformStep, Ensemble)


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
    known_programs: Mapping[str, dspy.Module] = field(default_factory=dict)
    teacher: Any = None
    teacher_settings: dict[str, Any] | None = None
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
        known_programs: programs already found from this student, by plan key (`plan_key`); an ensemble
            member with one of those plans reuses its program instead of running it again.
        teacher_settings: DSPy settings (``lm=...``) for the steps that bootstrap demos (MIPROv2,
            BootstrapFewShot), as in those optimizers; `compile`'s ``teacher`` program is used there too.

    After `compile`, the returned program carries ``plan_trace_`` (a list of `StepRecord`).
    """

    def __init__(self, plan: PlanNode | dict, metric: Callable, *, prompt_model=None, task_model=None,
                 num_threads: int | None = None, seed: int = 0,
                 known_programs: Mapping[str, dspy.Module] | None = None, teacher_settings: dict | None = None):
        self.plan = plan
        self.known_programs = known_programs
        self.metric = metric
        self.prompt_model = prompt_model
        self.task_model = task_model
        self.num_threads = num_threads
        self.seed = seed
        self.teacher_settings = teacher_settings

    def compile(self, student, *, trainset, teacher=None, valset=None, **kwargs):
        plan = self.plan if isinstance(self.plan, PLAN_NODES) else plan_from_dict(self.plan)
        if not callable(self.metric):
            raise TypeError(f"metric must be callable, got {type(self.metric).__name__}")
        if not trainset:
            raise ValueError("trainset must not be empty")
        if isinstance(plan, BestOf) or any(isinstance(n, BestOf) for n in _walk(plan)):
            if not valset:
                raise ValueError("a plan with best_of needs a valset to choose between branches")
        run = _Run(self.metric, list(trainset), list(valset) if valset else None, self.prompt_model,
                   self.task_model, self.num_threads, self.seed, dict(self.known_programs or {}), teacher,
                   self.teacher_settings)
        program = _execute(plan, student, run, "plan", untouched=True)
        program.plan_trace_ = run.records
        return program


def _walk(node: PlanNode):
    yield node
    for child in getattr(node, "nodes", ()):
        yield from _walk(child)


def plan_key(plan: PlanNode) -> str:
    """What identifies a plan: identical keys give identical runs."""
    return json.dumps(plan.to_dict(), sort_keys=True)


def _execute(node: PlanNode, program: dspy.Module, run: _Run, path: str, untouched: bool = False) -> dspy.Module:
    """The program `node` makes of `program`; `untouched` says `program` is still the student."""
    if isinstance(node, OptimizeStep):
        seed = run.seed + run.steps_run
        run.steps_run += 1
        logger.info("%s: running %s", path, node.describe())
        spec = node.spec
        teleprompter = spec.build(run.metric, prompt_model=run.prompt_model, task_model=run.task_model,
                                  num_threads=run.num_threads, seed=seed, teacher_settings=run.teacher_settings)
        extra = {"teacher": run.teacher} if run.teacher is not None else {}
        result = get_kind(spec.kind).compile(teleprompter, program, trainset=run.trainset, valset=run.valset, **extra)
        run.records.append(StepRecord(path, "optimize", node.describe(), extra={"seed": seed}))
        return result
    if isinstance(node, TransformStep):
        logger.info("%s: transform %s", path, node.describe())
        run.records.append(StepRecord(path, "transform", node.describe()))
        return get_transform(node.kind)(program, **node.params)
    if isinstance(node, Ensemble):
        members = []
        for i, child in enumerate(node.nodes):
            known = run.known_programs.get(plan_key(child)) if untouched else None
            members.append(known.deepcopy() if known is not None else
                           _execute(child, program.deepcopy(), run, f"{path}.members[{i}]", untouched))
            run.records.append(StepRecord(f"{path}.members[{i}]", "member", child.describe(),
                                          extra={"reused": known is not None}))
        return get_transform("ensemble")(members)
    if isinstance(node, Sequential):
        for i, child in enumerate(node.nodes):
            program = _execute(child, program, run, f"{path}.steps[{i}]", untouched and i == 0)
        return program
    if isinstance(node, BestOf):
        best_program, best_score, records = None, None, []
        for i, child in enumerate(node.nodes):
            candidate = _execute(child, program.deepcopy(), run, f"{path}.branches[{i}]", untouched)
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
