
from dspy_meta import MetaTeleprompter
from dspy_meta.teleprompters import MetaBudget
from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.toy_task import (
    Shout, aligning_meta_responder, shout_metric, shout_optimizer_responder, shout_program_responder,
)

TINY = MetaBudget(prompt_steps=1, structure_steps=1, copro_breadth=2, copro_depth=1, mipro_candidates=2,
                  mipro_trials=2)


def toy_engines(program=None, optimizer=None, *, faults=None) -> list[ScriptedEngine]:
    """Program, optimizer and meta engines of the shout task (responders replaceable)."""
    return [ScriptedEngine(program or (lambda c: shout_program_responder(c, demos_help=False)), faults=faults),
            ScriptedEngine(optimizer or shout_optimizer_responder, faults=faults),
            ScriptedEngine(aligning_meta_responder, faults=faults)]


def compile_toy(engines, data, metric=shout_metric, **kwargs):
    """A tiny-budget MetaTeleprompter run of the shout task on `engines`."""
    kwargs = {"budget": TINY, "seed": 0, "display_progress": False, "max_bootstrapped_demos": 1,
              "max_labeled_demos": 0, **kwargs}
    teleprompter = MetaTeleprompter(metric, task_model=engines[0].as_lm(), prompt_model=engines[1].as_lm(),
                                    meta_model=engines[2].as_lm(), **kwargs)
    return teleprompter.compile(Shout(), trainset=data[0], valset=data[1])
