"""COPRO with replaceable prompts.

DSPy's COPRO looks its two instruction-generator Signatures up as module globals
inside `compile`, so they cannot be swapped without patching the module. This
subclass re-implements COPRO's coordinate ascent with the Signatures passed to its
constructor: nothing global is touched, and two instances with different prompts
can run in two threads at once.
"""

from __future__ import annotations

import logging
from typing import Any

import dspy
from dspy.teleprompt import COPRO
from dspy.utils.parallelizer import ParallelExecutor
from dspy.teleprompt import copro_optimizer as _dspy_copro

from dspy_meta.runtime.lm_routing import samples_in_one_request
from dspy_meta.runtime.redact import redact
from dspy_meta.optimizers.base import OptimizerKind, Param, lm_scope, register_kind
from dspy_meta.optimizers.prompts import PromptSet, PromptTemplate

logger = logging.getLogger(__name__)

__all__ = ["PromptableCOPRO", "COPROKind"]

BASIC = "basic_generate_instruction"
GIVEN_ATTEMPTS = "generate_instruction_given_attempts"


def _last_output_field(signature) -> str:
    return list(signature.output_fields)[-1]


def _with_candidate(signature, instruction: str, prefix: str):
    return signature.with_instructions(instruction).with_updated_fields(_last_output_field(signature), prefix=prefix)


def _current(signature) -> tuple[str, str]:
    field = signature.fields[_last_output_field(signature)]
    return signature.instructions, (field.json_schema_extra or {}).get("prefix", "")


def _clean(text: Any) -> str:
    return str(text or "").strip().strip('"').strip()


class PromptableCOPRO(COPRO):
    """COPRO whose instruction generators are given as `PromptSet` entries.

    Same algorithm and hyperparameters as `dspy.COPRO`: propose `breadth` instructions
    (and output prefixes) per predictor, score each on the trainset, then `depth - 1`
    rounds of proposals conditioned on the scored attempts. Candidates already scored
    for a single-predictor program are not scored again.
    """

    def __init__(self, prompt_model=None, metric=None, breadth=10, depth=3, init_temperature=1.4,
                 track_stats=False, *, prompts: PromptSet | None = None, task_model=None,
                 num_threads: int | None = None):
        super().__init__(prompt_model=prompt_model, metric=metric, breadth=breadth, depth=depth,
                         init_temperature=init_temperature, track_stats=track_stats)
        self.prompts = prompts
        self.task_model = task_model
        self.num_threads = num_threads

    def _signatures(self):
        prompts = self.prompts or COPROKind().default_prompts()
        return (prompts[BASIC].apply(_dspy_copro.BasicGenerateInstruction),
                prompts[GIVEN_ATTEMPTS].apply(_dspy_copro.GenerateInstructionGivenAttempts))

    def _propose(self, signature, n: int, **inputs) -> list[tuple[str, str]]:
        """`n` proposals: one request with ``n`` samples where the LM sends ``n`` to its provider (the prompt
        is sent once), else `n` requests in parallel, each with its own rollout id so each is cacheable
        and none is paid twice."""
        with lm_scope(self.prompt_model):
            lm = dspy.settings.lm
            predict = dspy.Predict(signature)
            if samples_in_one_request(lm):
                predictions = self._samples_in_one_request(predict, lm, n, inputs)
            else:
                def sample(i):
                    with dspy.context(lm=lm.copy(rollout_id=i, temperature=self.init_temperature)):
                        return predict(**inputs)

                # DSPy's executor carries dspy.context into its threads; a failed sample is one proposal fewer.
                executor = ParallelExecutor(num_threads=self.num_threads or 1, max_errors=n + 1,
                                            disable_progress_bar=True)
                predictions = executor.execute(sample, list(range(n)))
        proposals = []
        for prediction in predictions:
            if prediction is None or isinstance(prediction, Exception):
                logger.warning("a COPRO proposal failed: %s", redact(prediction))
                continue
            instruction = _clean(prediction.proposed_instruction)
            prefix = _clean(prediction.proposed_prefix_for_output_field)
            if instruction:
                proposals.append((instruction, prefix))
        return proposals

    def _samples_in_one_request(self, predict, lm, n: int, inputs) -> list:
        try:
            prediction = predict(**inputs, config={"n": n, "temperature": self.init_temperature})
        except Exception as exc:  # as when every sample of the parallel path fails: no proposals this round
            return [exc]
        # Samples the adapter could not parse are left out of `completions`: fewer proposals, as above.
        return [prediction.completions[i] for i in range(len(prediction.completions))]

    def _score(self, program, index: int, candidates: list[tuple[str, str]], trainset, *, num_threads=None,
               failure_score: float = 0.0, max_errors: int | None = None) -> list[float]:
        """Trainset scores of `candidates` for predictor `index`, as `dspy.Evaluate` computes them.

        All (candidate, example) pairs go through one parallel pass: the scores of scoring one
        candidate after another, without a half-empty last wave of threads per candidate.
        """
        base = program.predictors()[index].signature
        variants = []
        for candidate in candidates:
            variant = program.deepcopy()
            variant.predictors()[index].signature = _with_candidate(base, *candidate)
            variants.append(variant)

        def run(job):
            k, example = job
            return self.metric(example, variants[k](**example.inputs()))

        max_errors = dspy.settings.max_errors if max_errors is None else max_errors
        executor = ParallelExecutor(num_threads=num_threads or self.num_threads or dspy.settings.num_threads,
                                    max_errors=max_errors * max(1, len(variants)), disable_progress_bar=True)
        outcomes = executor.execute(run, [(k, example) for k in range(len(variants)) for example in trainset])
        n = len(trainset)
        scores = []
        for k in range(len(variants)):
            # A failed example (None or an exception) scores `failure_score`, as in Evaluate.
            values = [failure_score if o is None or isinstance(o, Exception) else float(o)
                      for o in outcomes[k * n:(k + 1) * n]]
            scores.append(round(100 * sum(values) / n, 2))
        return scores

    def compile(self, student, *, trainset, teacher=None, valset=None, eval_kwargs=None):
        """Optimize the instructions of `student`'s predictors; `student` is not modified.

        `eval_kwargs` as for `dspy.Evaluate`: ``num_threads``, ``failure_score`` and ``max_errors``
        are honoured, display options ignored.
        """
        basic_sig, attempts_sig = self._signatures()
        eval_kwargs = dict(eval_kwargs or {})
        for ignored in ("display_progress", "display_table"):
            eval_kwargs.pop(ignored, None)
        unknown = set(eval_kwargs) - {"num_threads", "failure_score", "max_errors"}
        if unknown:
            raise TypeError(f"COPRO eval_kwargs not supported: {sorted(unknown)}")
        program = student.deepcopy()
        predictors = program.predictors()
        single = len(predictors) == 1
        scored: list[dict[tuple[str, str], float]] = [{} for _ in predictors]
        pending: list[list[tuple[str, str]]] = []
        total_calls = 0

        with lm_scope(self.task_model):
            for predictor in predictors:
                start = _current(predictor.signature)
                pending.append([*self._propose(basic_sig, self.breadth - 1, basic_instruction=start[0]), start])

            for depth in range(self.depth):
                logger.info("COPRO depth %d/%d", depth + 1, self.depth)
                for i, predictor in enumerate(predictors):
                    # With several predictors, the others changed since the last round: rescore everything.
                    candidates = pending[i] if single else [*scored[i], *pending[i]]
                    new = [c for c in dict.fromkeys(candidates) if not (single and c in scored[i])]
                    scored[i].update(zip(new, self._score(program, i, new, trainset, **eval_kwargs), strict=True))
                    total_calls += len(new)
                    best = max(scored[i], key=scored[i].get)
                    predictor.signature = _with_candidate(predictor.signature, *best)
                if depth == self.depth - 1:
                    break
                for i in range(len(predictors)):
                    ranked = sorted(scored[i].items(), key=lambda item: item[1])[-self.breadth:]
                    attempts = []
                    for rank, ((instruction, prefix), score) in enumerate(ranked, start=1):
                        attempts += [f"Instruction #{rank}: {instruction}", f"Prefix #{rank}: {prefix}",
                                     f"Resulting Score #{rank}: {score}"]
                    pending[i] = self._propose(attempts_sig, self.breadth, attempted_instructions=attempts)

        program.candidate_programs = [
            {"predictor": i, "instruction": c[0], "prefix": c[1], "score": s}
            for i, table in enumerate(scored) for c, s in sorted(table.items(), key=lambda kv: -kv[1])
        ]
        program.total_calls = total_calls
        return program


class COPROKind(OptimizerKind):
    name = "copro"
    description = ("COPRO: coordinate ascent over each predictor's instruction. Its prompt LM proposes "
                   "`breadth` instructions, each is scored on the trainset, and `depth` rounds refine them "
                   "from the scored attempts. Changes instructions only, no demos.")
    params = {
        "breadth": Param(int, 10, low=2, high=50, help="instructions proposed per round"),
        "depth": Param(int, 3, low=1, high=10, help="rounds of proposals"),
        "init_temperature": Param(float, 1.4, low=0.0, high=2.0, help="sampling temperature of proposals"),
    }

    def default_prompts(self) -> PromptSet:
        return PromptSet({
            BASIC: PromptTemplate.from_signature(_dspy_copro.BasicGenerateInstruction),
            GIVEN_ATTEMPTS: PromptTemplate.from_signature(_dspy_copro.GenerateInstructionGivenAttempts),
        })

    def build(self, params, prompts, *, metric, prompt_model, task_model, num_threads, seed, teacher_settings=None):
        return PromptableCOPRO(prompt_model=prompt_model, metric=metric, prompts=prompts,
                               task_model=task_model, num_threads=num_threads, **params)


register_kind(COPROKind())
