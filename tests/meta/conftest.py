import pytest

from dspy_meta.meta import MetaBudget
from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.toy_task import aligning_meta_responder, shout_optimizer_responder, shout_program_responder

TINY = MetaBudget(prompt_steps=1, structure_steps=1, copro_breadth=2, copro_depth=1, mipro_candidates=2,
                  mipro_trials=2)


@pytest.fixture
def engines():
    """Program LM that needs the magic word, optimizer LM that finds it only when its prompt mentions
    shouting, meta LM that aligns prompts with the task."""
    return (ScriptedEngine(lambda c: shout_program_responder(c, demos_help=False), model="program"),
            ScriptedEngine(shout_optimizer_responder, model="optimizer"),
            ScriptedEngine(aligning_meta_responder, model="meta"))


@pytest.fixture
def lms(engines):
    program, optimizer, meta = engines
    return {"task_model": program.as_lm(), "prompt_model": optimizer.as_lm(), "meta_model": meta.as_lm()}
