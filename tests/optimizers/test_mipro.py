import threading
import time

import dspy
import pytest
from dspy.propose import dataset_summary_generator, grounded_proposer

from dspy_meta.optimizers import OptimizerSpec, PromptableMIPROv2
from dspy_meta.optimizers.mipro import summarize_dataset
from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.toy_task import MAGIC_WORD, shout_program_responder

SMALL = dict(num_candidates=2, num_trials=3, max_bootstrapped_demos=1, max_labeled_demos=0)


def _proposer_responder(tag=""):
    def respond(call):
        return {"proposed_instruction": f"{MAGIC_WORD} please{tag}", "observations": "Single words.",
                "summary": "A list of single lower-case words.", "program_description": "Shouts words.",
                "module_description": "The only module."}
    return respond


def test_mipro_runs_with_dspy_default_prompts(student, shout_data, metric, program_engine):
    proposer = ScriptedEngine(_proposer_responder())
    trainset, valset = shout_data
    program = OptimizerSpec.create("mipro_v2", **SMALL).run(
        student, trainset=trainset, valset=valset, metric=metric, prompt_model=proposer.as_lm(),
        task_model=program_engine.as_lm())
    assert MAGIC_WORD in program.answer.predict.signature.instructions
    sent = {call.instructions for call in proposer.calls}
    assert grounded_proposer.DescribeProgram.instructions in sent
    assert dataset_summary_generator.DatasetDescriptor.instructions in sent
    assert dataset_summary_generator.ObservationSummarizer.instructions in sent
    assert grounded_proposer.generate_instruction_class().signature.instructions in sent


@pytest.mark.parametrize("lm_max_tokens, description_cap", [(350, 160), (100, 100)])
def test_descriptions_and_summaries_ask_for_short_answers_only(student, shout_data, metric, program_engine,
                                                              lm_max_tokens, description_cap):
    """One-paragraph answers are capped at DESCRIPTION_TOKENS (never above the LM's own limit); the
    instruction itself gets the LM's whole limit."""
    proposer = ScriptedEngine(_proposer_responder())
    trainset, valset = shout_data
    OptimizerSpec.create("mipro_v2", **SMALL).run(
        student, trainset=trainset, valset=valset, metric=metric,
        prompt_model=proposer.as_lm(max_tokens=lm_max_tokens), task_model=program_engine.as_lm())
    limits = {}
    for call in proposer.calls:
        limits.setdefault(call.output_fields, set()).add(call.max_tokens)
    short = [fields for fields in limits if fields in (("program_description",), ("module_description",),
                                                        ("observations",), ("summary",))]
    assert len(short) == 4 and all(limits[fields] == {description_cap} for fields in short)
    assert limits[("proposed_instruction",)] == {lm_max_tokens}


def test_only_single_output_signatures_are_capped():
    from dspy_meta.optimizers.capped import CappedPredict

    with pytest.raises(ValueError, match="single-output"):
        CappedPredict("question -> reasoning, answer", 100)


def test_custom_prompts_reach_the_proposer(student, shout_data, metric, program_engine):
    proposer = ScriptedEngine(_proposer_responder())
    spec = OptimizerSpec.create("mipro_v2", **SMALL).with_prompts(
        describe_program="CUSTOM describe program", describe_module="CUSTOM describe module",
        generate_module_instruction="CUSTOM write an instruction for word shouting",
        dataset_descriptor="CUSTOM look at the data", observation_summarizer="CUSTOM summarize")
    trainset, valset = shout_data
    spec.run(student, trainset=trainset, valset=valset, metric=metric, prompt_model=proposer.as_lm(),
             task_model=program_engine.as_lm())
    sent = {call.instructions for call in proposer.calls}
    assert {"CUSTOM describe program", "CUSTOM describe module", "CUSTOM write an instruction for word shouting",
            "CUSTOM look at the data", "CUSTOM summarize"} <= sent
    assert all(s.startswith("CUSTOM") for s in sent)


def test_dataset_summary_uses_prior_observation_prompt(shout_data):
    proposer = ScriptedEngine(_proposer_responder())
    prompts = OptimizerSpec.create("mipro_v2").with_prompts(
        dataset_descriptor_with_prior_observations="CUSTOM more observations").prompts
    summary = summarize_dataset(shout_data[0], 3, proposer.as_lm(), prompts)
    assert summary == "A list of single lower-case words."
    assert len(proposer.calls_matching("CUSTOM more observations")) == 2  # batches [3:6] and [6:8]


def test_constructor_reads_no_global_lm_and_compile_uses_the_context(student, shout_data, metric, program_engine):
    teleprompter = PromptableMIPROv2(metric, **{k: v for k, v in SMALL.items() if k != "num_trials"},
                                     num_trials=2, auto=None)
    assert teleprompter.task_model is None and teleprompter.prompt_model is None
    proposer = ScriptedEngine(_proposer_responder())
    trainset, valset = shout_data
    with dspy.context(lm=program_engine.as_lm()):
        PromptableMIPROv2(metric, prompt_model=proposer.as_lm(), num_candidates=2, num_trials=2, auto=None,
                          max_bootstrapped_demos=0, max_labeled_demos=0).compile(
            student, trainset=trainset, valset=valset)
    assert program_engine.calls and proposer.calls
    assert teleprompter.task_model is None  # compile never wrote into the optimizer


def test_missing_lm_is_a_clear_error(student, shout_data, metric):
    with pytest.raises(ValueError, match="needs a task LM"):
        PromptableMIPROv2(metric, num_candidates=2, num_trials=2, auto=None).compile(
            student, trainset=shout_data[0], valset=shout_data[1])


def test_seed_zero_is_honoured(student, shout_data, metric, program_engine):
    seeds = []

    class Spy(PromptableMIPROv2):
        def _set_random_seeds(self, seed):
            seeds.append(seed)
            super()._set_random_seeds(seed)

    proposer = ScriptedEngine(_proposer_responder())
    Spy(metric, prompt_model=proposer.as_lm(), task_model=program_engine.as_lm(), num_candidates=2, num_trials=2,
        auto=None, seed=0, max_bootstrapped_demos=0, max_labeled_demos=0).compile(
        student, trainset=shout_data[0], valset=shout_data[1])
    assert seeds == [0]


def test_two_mipros_in_threads_keep_their_own_prompts(student, shout_data, metric, program_engine):
    barrier = threading.Barrier(2, timeout=10)
    arrived = set()
    lock = threading.Lock()
    before = (grounded_proposer.DescribeProgram.instructions, grounded_proposer.generate_instruction_class,
              dataset_summary_generator.DatasetDescriptor)

    def responder(call):
        tag = "A" if "RUN-A" in call.instructions else "B" if "RUN-B" in call.instructions else None
        if tag and "generate" in call.instructions:
            with lock:
                first = tag not in arrived
                arrived.add(tag)
            if first:
                barrier.wait()
        return _proposer_responder(f" from {tag}")(call)

    engine = ScriptedEngine(responder)
    results = {}

    def run(tag):
        spec = OptimizerSpec.create("mipro_v2", **SMALL).with_prompts(
            generate_module_instruction=f"RUN-{tag}: generate an instruction")
        results[tag] = spec.run(student, trainset=shout_data[0], valset=shout_data[1], metric=metric,
                                prompt_model=engine.as_lm(), task_model=program_engine.as_lm(), seed=3)

    threads = [threading.Thread(target=run, args=(t,)) for t in "AB"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["A"].answer.predict.signature.instructions == f"{MAGIC_WORD} please from A"
    assert results["B"].answer.predict.signature.instructions == f"{MAGIC_WORD} please from B"
    assert (grounded_proposer.DescribeProgram.instructions, grounded_proposer.generate_instruction_class,
            dataset_summary_generator.DatasetDescriptor) == before


def test_concurrent_proposals_match_sequential_ones(student, shout_data, metric, program_engine):
    """Tips and rollout ids are drawn up front, so the thread count does not change what is proposed."""
    def by_tip(call):
        return {**_proposer_responder()(call), "proposed_instruction": f"{MAGIC_WORD} tip: {call.inputs.get('tip', '-')}"}

    outcomes = []
    for threads in (1, 4):
        proposer = ScriptedEngine(by_tip)
        program = OptimizerSpec.create("mipro_v2", **{**SMALL, "num_candidates": 4}).run(
            student, trainset=shout_data[0], valset=shout_data[1], metric=metric, prompt_model=proposer.as_lm(),
            task_model=program_engine.as_lm(), num_threads=threads, seed=5)
        tips = sorted(c.inputs.get("tip", "-") for c in proposer.calls if "proposed_instruction" in c.output_fields)
        outcomes.append((program.answer.predict.signature.instructions, tips))
    assert outcomes[0] == outcomes[1]
    assert len(outcomes[0][1]) >= 3


def test_dataset_summary_runs_alongside_bootstrapping(student, shout_data, metric):
    """Bootstrapping's first program call waits for the summary's first call: only overlapping work lets
    both through (run after bootstrapping, the summary would start only once the wait timed out)."""
    summary_started, waited = threading.Event(), []

    def propose(call):
        if call.instructions == dataset_summary_generator.DatasetDescriptor.instructions:
            summary_started.set()
        return _proposer_responder()(call)

    def answer(call):
        if not waited:
            waited.append(summary_started.wait(timeout=10))
        return shout_program_responder(call)

    proposer = ScriptedEngine(propose)
    program = OptimizerSpec.create("mipro_v2", **SMALL).run(
        student, trainset=shout_data[0], valset=shout_data[1], metric=metric, prompt_model=proposer.as_lm(),
        task_model=ScriptedEngine(answer, model="program").as_lm(), num_threads=4)
    assert waited == [True]
    assert MAGIC_WORD in program.answer.predict.signature.instructions
    generate = grounded_proposer.generate_instruction_class().signature.instructions
    # every instruction was generated with the summary in hand, and the summary was made once
    assert all(c.inputs.get("dataset_description") == "A list of single lower-case words."
               for c in proposer.calls if c.instructions == generate)
    assert sum(c.instructions == dataset_summary_generator.ObservationSummarizer.instructions
               for c in proposer.calls) == 1


def test_failed_dataset_summary_proposes_without_it(student, shout_data, metric, program_engine):
    def respond(call):
        if call.instructions == dataset_summary_generator.DatasetDescriptor.instructions:
            raise ValueError("summary LM down")
        return _proposer_responder()(call)

    proposer = ScriptedEngine(respond)
    program = OptimizerSpec.create("mipro_v2", **SMALL).run(
        student, trainset=shout_data[0], valset=shout_data[1], metric=metric,
        prompt_model=proposer.as_lm(num_retries=0), task_model=program_engine.as_lm(), num_threads=2)
    generate = grounded_proposer.generate_instruction_class().signature.instructions
    generations = [c for c in proposer.calls if c.instructions == generate]
    assert generations and all("dataset_description" not in c.inputs for c in generations)
    assert MAGIC_WORD in program.answer.predict.signature.instructions


def test_a_search_that_fails_early_stops_the_summary_after_its_call_in_flight(student, shout_data, metric):
    failed, waited = threading.Event(), []

    def respond(call):
        if call.instructions == dataset_summary_generator.DatasetDescriptor.instructions:
            waited.append(failed.wait(timeout=10))  # in flight until the search has failed
        return _proposer_responder()(call)

    proposer = ScriptedEngine(respond)
    mipro = PromptableMIPROv2(metric, prompt_model=proposer.as_lm(),
                              task_model=ScriptedEngine(shout_program_responder).as_lm(), auto=None, num_threads=4)
    with pytest.raises(ValueError):  # MIPROv2 refuses auto=None without num_trials, before any LM call of its own
        mipro.compile(student, trainset=shout_data[0], valset=shout_data[1], num_trials=None)
    failed.set()
    time.sleep(0.3)  # room for the summary's next call, were it to make one
    assert len(proposer.calls) <= 1 and all(waited)  # the call in flight, if the summary had started one


def test_without_a_valset_the_summary_sees_what_the_proposer_sees(student, shout_data, metric):
    """MIPROv2 splits a valset off the trainset when none is given: the summary must not see it."""
    described = []
    for threads in (1, 4):
        proposer = ScriptedEngine(_proposer_responder())
        OptimizerSpec.create("mipro_v2", **SMALL).run(
            student, trainset=shout_data[0] + shout_data[1], valset=None, metric=metric,
            prompt_model=proposer.as_lm(), task_model=ScriptedEngine(shout_program_responder).as_lm(),
            num_threads=threads, seed=3)
        described.append([c.inputs["examples"] for c in proposer.calls
                          if c.instructions == dataset_summary_generator.DatasetDescriptor.instructions])
    assert described[0] and described[0] == described[1]
