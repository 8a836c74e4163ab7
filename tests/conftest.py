import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # offline: no price-table fetch at import

import logging

import dspy
import pytest

from dspy_meta.testing import Rule, ScriptedEngine
from dspy_meta.testing.toy_task import (
    MAGIC_WORD, Shout, aligning_meta_responder, shout_examples, shout_metric, shout_optimizer_responder,
    shout_program_responder,
)

COPRO_PROPOSAL = {"proposed_instruction": f"Reply in {MAGIC_WORD}.", "proposed_prefix_for_output_field": "Answer:"}


@pytest.fixture(autouse=True)
def _no_global_lm():
    """Tests pass LMs explicitly; a leaked global LM would hide a missing one."""
    with dspy.context(lm=None):
        yield


@pytest.fixture(autouse=True)
def _quiet_dspy():
    logging.getLogger("dspy").setLevel(logging.WARNING)


@pytest.fixture
def program_engine():
    return ScriptedEngine(shout_program_responder, model="program")


@pytest.fixture
def optimizer_engine():
    """Optimizer LM: every instruction generator proposes the magic instruction."""
    return ScriptedEngine([Rule(lambda call: "proposed_instruction" in call.output_fields, COPRO_PROPOSAL)],
                          model="optimizer")


@pytest.fixture
def shout_data():
    return shout_examples(8), shout_examples(6, offset=8)


@pytest.fixture
def student():
    return Shout()


@pytest.fixture
def metric():
    return shout_metric


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


@pytest.fixture(scope="session")
def bigbench_files():
    """The real BIG-bench task files, or a skip that says why they cannot be had.

    Their source, the ``bigbench==1.0.0`` sdist, left PyPI (seen 2026-12-07) and is no longer fetched;
    a machine that has the sdist runs these tests with ``DSPY_META_BIGBENCH_TARBALL=<path>`` or a filled
    cache. Without either the loader fails at once with one sentence, which is the skip reason.
    """
    from dspy_meta.benchmarks.sources import BenchmarkDataError, bigbench_task_files
    try:
        return bigbench_task_files()
    except BenchmarkDataError as exc:
        pytest.skip(f"BIG-bench task files unavailable: {' '.join(str(exc).split())}")
