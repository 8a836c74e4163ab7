"""The toy compile the tracking tests log, and a reader of the run tree it leaves in MLflow."""

from dataclasses import dataclass, field

import dspy
import mlflow

from dspy_meta import MetaPromptOptimizer, MetaTeleprompter, OptimizerSpec
from dspy_meta.teleprompters import MetaBudget
from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.scripted_lm import register_litellm_provider
from dspy_meta.testing.toy_task import (
    Shout, aligning_meta_responder, shout_examples, shout_metric, shout_optimizer_responder, shout_program_responder,
)

TINY = MetaBudget(prompt_steps=1, structure_steps=1, copro_breadth=2, copro_depth=1, mipro_candidates=2,
                  mipro_trials=2)
SECRET = "sk-PLANTED-mlflow-7c1d2e"


def keyed_lms(keyed: bool = True) -> dict:
    """Program, optimizer and meta LMs of the shout task, each with a planted API key and a URL that holds it
    (through litellm); `keyed=False`: plain scripted engines (no litellm import, a faster start)."""
    engines = {"task_model": ScriptedEngine(lambda c: shout_program_responder(c, demos_help=False)),
               "prompt_model": ScriptedEngine(shout_optimizer_responder),
               "meta_model": ScriptedEngine(aligning_meta_responder)}
    if not keyed:
        return {name: engine.as_lm(f"scripted-{name}/model") for name, engine in engines.items()}
    lms = {}
    for name, engine in engines.items():
        register_litellm_provider(f"scripted-{name}", engine)  # the real litellm path, served offline
        lms[name] = dspy.LM(f"scripted-{name}/model", api_key=SECRET, cache=False,
                            api_base=f"https://user:{SECRET}@example.invalid/v1")
    return lms


def compile_meta(keyed: bool = True, **kwargs):
    """A tiny MetaTeleprompter run (9 candidates) of the shout task."""
    teleprompter = MetaTeleprompter(shout_metric, budget=TINY, seed=0, display_progress=False, max_bootstrapped_demos=1,
                                    max_labeled_demos=0, **keyed_lms(keyed), **kwargs)
    return teleprompter.compile(Shout(), trainset=shout_examples(8), valset=shout_examples(6, offset=8))


def compile_prompt(**kwargs):
    """A tiny MetaPromptOptimizer run (COPRO, 2 candidates): the cheapest compile with a parent and children."""
    teleprompter = MetaPromptOptimizer(shout_metric, OptimizerSpec.create("copro", breadth=2, depth=1), budget=TINY,
                                       seed=0, display_progress=False, **keyed_lms(), **kwargs)
    return teleprompter.compile(Shout(), trainset=shout_examples(8), valset=shout_examples(6, offset=8))


@dataclass
class RunTree:
    runs: list
    children: dict = field(default_factory=dict)  # run id -> its child runs

    @property
    def roots(self) -> list:
        return [r for r in self.runs if "mlflow.parentRunId" not in r.data.tags]

    def children_of(self, run) -> list:
        found = [r for r in self.runs if r.data.tags.get("mlflow.parentRunId") == run.info.run_id]
        return sorted(found, key=lambda r: int(r.data.tags.get("dspy_meta.candidate_index", -1)))


def run_tree(experiment_id: str) -> RunTree:
    return RunTree(mlflow.MlflowClient().search_runs([experiment_id], max_results=1000))
