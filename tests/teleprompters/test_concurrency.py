"""Independent parts of a meta search run side by side, under one thread budget, with sequential results."""

import threading
import time

import pytest

from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.toy_task import (
    Shout, aligning_meta_responder, shout_metric, shout_optimizer_responder, shout_program_responder,
)

from .conftest import compile_toy, toy_engines


_compile, _engines = compile_toy, toy_engines


class _PeakInFlight:
    """Wraps responders so that each request takes a moment; `peak` is the most requests answered at once."""

    def __init__(self):
        self._lock, self._in_flight, self.peak = threading.Lock(), 0, 0

    def counted(self, responder):
        def respond(call):
            with self._lock:
                self._in_flight += 1
                self.peak = max(self.peak, self._in_flight)
            time.sleep(0.005)
            with self._lock:
                self._in_flight -= 1
            return responder(call)
        return respond


def _records(results):
    return [(c.index, c.stage, c.plan, c.score, c.best_before, c.accepted, c.reason, c.reused)
            for c in results.candidates]


def test_concurrent_run_gives_the_sequential_result(shout_data):
    sequential_engines, concurrent_engines = _engines(), _engines()
    sequential = _compile(sequential_engines, shout_data, num_threads=1)
    concurrent = _compile(concurrent_engines, shout_data, num_threads=4)
    one, many = sequential.meta_results_, concurrent.meta_results_
    assert _records(many) == _records(one)
    assert many.best_plan == one.best_plan and many.best_optimizers == one.best_optimizers
    assert concurrent.dump_state() == sequential.dump_state()
    assert {level: u.calls for level, u in many.usage.items()} == {level: u.calls for level, u in one.usage.items()}
    # every call is counted once: per-candidate usage adds up to the total, less the baseline's
    baseline_calls = len(shout_data[1])
    assert sum(c.usage["program"].calls for c in many.candidates) == many.usage["program"].calls - baseline_calls
    assert [len(e.calls) for e in concurrent_engines] == [len(e.calls) for e in sequential_engines]


def test_the_inputs_prompt_searches_overlap(shout_data):
    """COPRO's first proposal waits for MIPROv2's first LM call: only a concurrent run lets both through."""
    mipro_started = threading.Event()
    waited = []

    def optimizer(call):
        if "dataset" in call.instructions.lower() or "pseudo-code" in call.instructions.lower():
            mipro_started.set()
        elif "instruction optimizer" in call.instructions.lower() and not waited:
            waited.append(mipro_started.wait(timeout=20))
        return shout_optimizer_responder(call)

    _compile(_engines(optimizer=optimizer), shout_data, num_threads=4)
    assert waited == [True]


@pytest.mark.parametrize("threads", [2, 4])
def test_requests_in_flight_never_exceed_num_threads(shout_data, threads):
    peak = _PeakInFlight()
    engines = [ScriptedEngine(peak.counted(lambda c: shout_program_responder(c, demos_help=False))),
               ScriptedEngine(peak.counted(shout_optimizer_responder)),
               ScriptedEngine(peak.counted(aligning_meta_responder))]
    _compile(engines, shout_data, num_threads=threads)
    assert peak.peak == threads  # busy up to the budget, never past it (3 branches x `threads` evaluations)


@pytest.mark.parametrize("slots", [2, 3])
def test_without_num_threads_a_batched_program_lm_gets_one_request_per_slot(shout_data, slots):
    """With num_threads=None, a program LM that decodes `slots` requests at once (the batched local engine)
    sets the run's thread budget to its slot count (else DSPy's num_threads setting is the budget)."""
    peak = _PeakInFlight()
    program = ScriptedEngine(peak.counted(lambda c: shout_program_responder(c, demos_help=False)))
    program.slots = slots  # what `dspy_meta.lm.engine_slots` reads on a batched engine
    engines = [program, ScriptedEngine(peak.counted(shout_optimizer_responder)),
               ScriptedEngine(peak.counted(aligning_meta_responder))]
    reference = _compile(_engines(), shout_data, num_threads=1)
    found = _compile(engines, shout_data, num_threads=None)
    assert peak.peak == slots
    assert _records(found.meta_results_) == _records(reference.meta_results_)


def test_a_finished_concurrent_run_resumes_without_any_lm_call(tmp_path, shout_data):
    first = _compile(_engines(), shout_data, num_threads=4, run_dir=str(tmp_path)).meta_results_
    engines = _engines()
    again = _compile(engines, shout_data, num_threads=4, run_dir=str(tmp_path)).meta_results_
    assert again.to_dict() == first.to_dict()
    assert [len(e.calls) for e in engines] == [0, 0, 0]


def test_structure_search_runs_its_inputs_side_by_side_with_the_sequential_result(shout_data):
    from dspy_meta.teleprompters import MetaBudget, MetaStructureOptimizer
    from dspy_meta.optimizers import OptimizerSpec

    library = {"copro": OptimizerSpec.create("copro", breadth=2, depth=1),
               "bootstrap": OptimizerSpec.create("bootstrap_fewshot", max_bootstrapped_demos=1, max_labeled_demos=0),
               "copro_aligned": OptimizerSpec.create("copro", breadth=2, depth=1).with_prompts(
                   basic_generate_instruction="Propose an instruction to shout words.")}
    outcomes = []
    for threads in (1, 4):
        engines = _engines()
        optimizer = MetaStructureOptimizer(shout_metric, library, budget=MetaBudget(structure_steps=1), seed=0,
                                           display_progress=False, num_threads=threads,
                                           task_model=engines[0].as_lm(), prompt_model=engines[1].as_lm(),
                                           meta_model=engines[2].as_lm())
        outcomes.append(optimizer.compile(Shout(), trainset=shout_data[0], valset=shout_data[1]).meta_results_)
    sequential, concurrent = outcomes
    assert _records(concurrent) == _records(sequential)
    # The inputs open the search together: the best of them (copro_aligned) is judged first.
    assert [(c.stage, c.score, c.best_before, c.accepted) for c in concurrent.candidates[:3]] == [
        ("structure-init:copro", 0.0, 1.0, False), ("structure-init:bootstrap", 0.0, 1.0, False),
        ("structure-init:copro_aligned", 1.0, None, True)]
    assert concurrent.best_plan == sequential.best_plan
