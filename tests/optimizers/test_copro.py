import threading

import dspy
import pytest
from dspy.teleprompt import copro_optimizer

from dspy_meta.lm import samples_in_one_request
from dspy_meta.optimizers import OptimizerSpec, PromptableCOPRO
from dspy_meta.testing import Rule, ScriptedEngine
from dspy_meta.testing.scripted_lm import register_litellm_provider
from dspy_meta.testing.toy_task import MAGIC_WORD


def _run(spec, student, data, metric, program_engine, optimizer_lm):
    trainset, _ = data
    return spec.run(student, trainset=trainset, metric=metric, prompt_model=optimizer_lm,
                    task_model=program_engine.as_lm())


def test_copro_finds_the_instruction_and_leaves_student_alone(student, shout_data, metric, program_engine,
                                                              optimizer_engine):
    spec = OptimizerSpec.create("copro", breadth=3, depth=2)
    original = student.answer.predict.signature.instructions
    program = _run(spec, student, shout_data, metric, program_engine, optimizer_engine.as_lm())
    assert MAGIC_WORD in program.answer.predict.signature.instructions
    assert program.answer.predict.signature.output_fields["answer"].json_schema_extra["prefix"] == "Answer:"
    assert student.answer.predict.signature.instructions == original
    assert type(program) is type(student)
    best = max(program.candidate_programs, key=lambda c: c["score"])
    assert best["score"] == 100.0


def test_default_prompts_are_dspys_own(student, shout_data, metric, program_engine, optimizer_engine):
    _run(OptimizerSpec.create("copro", breadth=2, depth=2), student, shout_data, metric, program_engine,
         optimizer_engine.as_lm())
    sent = {call.instructions for call in optimizer_engine.calls}
    assert sent == {copro_optimizer.BasicGenerateInstruction.instructions,
                    copro_optimizer.GenerateInstructionGivenAttempts.instructions}


def test_custom_prompts_reach_the_optimizer_lm(student, shout_data, metric, program_engine, optimizer_engine):
    spec = OptimizerSpec.create("copro", breadth=2, depth=2).with_prompts(
        basic_generate_instruction="CUSTOM-BASIC: write an instruction for shouting words.",
        generate_instruction_given_attempts="CUSTOM-ATTEMPTS: improve on these.")
    _run(spec, student, shout_data, metric, program_engine, optimizer_engine.as_lm())
    sent = [call.instructions for call in optimizer_engine.calls]
    assert sent[0].startswith("CUSTOM-BASIC")
    assert any(s.startswith("CUSTOM-ATTEMPTS") for s in sent)
    assert not any(copro_optimizer.BasicGenerateInstruction.instructions in s for s in sent)


def test_already_scored_candidates_are_not_rescored(student, shout_data, metric, program_engine,
                                                    optimizer_engine):
    trainset, _ = shout_data
    program = _run(OptimizerSpec.create("copro", breadth=3, depth=3), student, shout_data, metric,
                   program_engine, optimizer_engine.as_lm())
    # distinct candidates: the original and the one proposal the scripted LM keeps making
    assert program.total_calls == 2
    assert len(program_engine.calls) == 2 * len(trainset)


def test_two_copros_with_different_prompts_in_two_threads_do_not_leak(student, shout_data, metric,
                                                                    program_engine):
    barrier = threading.Barrier(2, timeout=10)
    seen_first = set()
    lock = threading.Lock()

    def responder(call):
        tag = "ALPHA" if "PROMPT-ALPHA" in call.instructions else "BETA" if "PROMPT-BETA" in call.instructions else "?"
        with lock:
            first = tag not in seen_first
            seen_first.add(tag)
        if first:
            barrier.wait()  # both optimizers are inside their proposal call at the same moment
        return {"proposed_instruction": f"{MAGIC_WORD} from {tag}", "proposed_prefix_for_output_field": "A:"}

    shared = ScriptedEngine(responder)
    lm = shared.as_lm()
    globals_before = (copro_optimizer.BasicGenerateInstruction, copro_optimizer.BasicGenerateInstruction.instructions,
                      copro_optimizer.GenerateInstructionGivenAttempts)
    results = {}

    def run(tag):
        spec = OptimizerSpec.create("copro", breadth=2, depth=2).with_prompts(
            basic_generate_instruction=f"PROMPT-{tag} basic", generate_instruction_given_attempts=f"PROMPT-{tag} more")
        results[tag] = _run(spec, student, shout_data, metric, program_engine, lm)

    threads = [threading.Thread(target=run, args=(tag,)) for tag in ("ALPHA", "BETA")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["ALPHA"].answer.predict.signature.instructions == f"{MAGIC_WORD} from ALPHA"
    assert results["BETA"].answer.predict.signature.instructions == f"{MAGIC_WORD} from BETA"
    assert "?" not in seen_first
    assert (copro_optimizer.BasicGenerateInstruction, copro_optimizer.BasicGenerateInstruction.instructions,
            copro_optimizer.GenerateInstructionGivenAttempts) == globals_before


def test_multi_predictor_programs_are_optimized_per_predictor(shout_data, metric, optimizer_engine):
    class TwoStep(dspy.Module):
        def __init__(self):
            super().__init__()
            self.draft = dspy.Predict("word -> answer")
            self.answer = dspy.Predict("word, draft -> answer")

        def forward(self, word):
            return self.answer(word=word, draft=self.draft(word=word).answer)

    program_engine = ScriptedEngine(
        [Rule(lambda c: True, lambda c: {"answer": c.inputs["word"].upper() if MAGIC_WORD in c.instructions
                                         else c.inputs["word"]})])
    program = OptimizerSpec.create("copro", breadth=2, depth=1).run(
        TwoStep(), trainset=shout_data[0], metric=metric, prompt_model=optimizer_engine.as_lm(),
        task_model=program_engine.as_lm())
    assert MAGIC_WORD in program.answer.signature.instructions
    assert {c["predictor"] for c in program.candidate_programs} == {0, 1}


def test_breadth_is_validated_like_dspy():
    with pytest.raises(ValueError):
        PromptableCOPRO(metric=lambda *a: 1.0, breadth=1)


def test_candidate_scores_are_dspy_evaluate_scores_at_any_thread_count(student, shout_data, metric):
    """Candidates are scored in one parallel pass; each score must be what `dspy.Evaluate` gives it."""
    trainset = shout_data[0]
    partial = {w.word for w in trainset[::3]}  # "Shout" instructions get only a third of the words right

    def program_lm(call):
        word = call.inputs.get("word", "")
        right = MAGIC_WORD in call.instructions or ("Shout" in call.instructions and word in partial)
        if word == trainset[1].word and "Shout" in call.instructions:
            raise ValueError("this example fails")  # a failed example scores 0, as in Evaluate
        return {"reasoning": "-", "answer": word.upper() if right else word}

    proposals = iter([f"{MAGIC_WORD} them", "Shout them", "Whisper them"] * 4)

    def optimizer_lm(call):
        return {"proposed_instruction": next(proposals), "proposed_prefix_for_output_field": "Answer:"}

    outcomes = []
    for threads in (1, 4):
        program_engine = ScriptedEngine(program_lm)
        program = PromptableCOPRO(prompt_model=ScriptedEngine(optimizer_lm).as_lm(), metric=metric, breadth=4,
                                  depth=1, task_model=program_engine.as_lm(num_retries=0),
                                  num_threads=threads).compile(student, trainset=trainset)
        outcomes.append(sorted((c["instruction"], c["score"]) for c in program.candidate_programs))
    assert outcomes[0] == outcomes[1]
    lm = ScriptedEngine(program_lm).as_lm(num_retries=0)
    for instruction, score in outcomes[0]:
        candidate = student.deepcopy()
        candidate.answer.predict.signature = candidate.answer.predict.signature.with_instructions(instruction)
        with dspy.context(lm=lm):
            expected = dspy.Evaluate(devset=trainset, metric=metric, num_threads=1, display_progress=False)(candidate)
        assert score == expected.score, instruction
    assert len({score for _, score in outcomes[0]}) >= 3  # the scores really differ


def test_unsupported_eval_kwargs_are_refused(student, shout_data, metric, optimizer_engine):
    with pytest.raises(TypeError, match="save_as_csv"):
        PromptableCOPRO(prompt_model=optimizer_engine.as_lm(), metric=metric, breadth=2, depth=1).compile(
            student, trainset=shout_data[0], eval_kwargs={"save_as_csv": "x.csv"})


def _proposing_engine():
    """Optimizer LM whose n-th sample of a request proposes instruction n (a LiteLLM provider, offline)."""
    def respond(call):
        if "proposed_instruction" not in call.output_fields:
            return {}
        return {"proposed_instruction": f"Shout the word, variant {call.sample}.",
                "proposed_prefix_for_output_field": "Answer:"}
    return ScriptedEngine(respond, model="optimizer")


@pytest.mark.parametrize("route", ["litellm", "canonical"])
def test_samples_go_in_one_request_only_where_the_lm_sends_n(route, student, shout_data, metric, program_engine):
    engine = _proposing_engine()
    if route == "litellm":
        register_litellm_provider("scripted-copro-n", engine)
        optimizer_lm = dspy.LM("scripted-copro-n/x", api_key="k", cache=False)
    else:
        optimizer_lm = engine.as_lm(cache=False)
    assert samples_in_one_request(optimizer_lm) is (route == "litellm")
    spec = OptimizerSpec.create("copro", breadth=4, depth=1)
    program = _run(spec, student, shout_data, metric, program_engine, optimizer_lm)

    proposals = [c for c in engine.calls if "proposed_instruction" in c.output_fields]
    assert len(proposals) == 3  # breadth - 1 samples of the basic generator either way
    if route == "litellm":
        assert [(c.sample, c.samples) for c in proposals] == [(0, 3), (1, 3), (2, 3)]
        assert len(optimizer_lm.history) == 1  # one request carried the three samples
        # each sample became its own candidate (plus the starting instruction)
        scored = {c["instruction"] for c in program.candidate_programs}
        assert {f"Shout the word, variant {i}." for i in range(3)} <= scored
    else:
        assert {(c.sample, c.samples) for c in proposals} == {(0, 1)}  # three requests of one sample each


def test_a_failed_one_request_sampling_leaves_the_starting_instruction(student, shout_data, metric, program_engine):
    engine = ScriptedEngine(lambda call: RuntimeError("provider down"), model="optimizer")
    register_litellm_provider("scripted-copro-down", engine)
    optimizer_lm = dspy.LM("scripted-copro-down/x", api_key="k", cache=False, num_retries=0)
    program = _run(OptimizerSpec.create("copro", breadth=3, depth=1), student, shout_data, metric,
                   program_engine, optimizer_lm)
    assert [c["instruction"] for c in program.candidate_programs] == [student.answer.predict.signature.instructions]
