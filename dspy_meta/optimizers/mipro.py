"""MIPROv2 with replaceable grounded-proposer and dataset-summary prompts.

DSPy's grounded proposer builds its Signatures from module globals on every call.
Here the proposer is subclassed so the Signatures come from a `PromptSet` held by
the instance, and MIPROv2 is subclassed to use that proposer. MIPROv2's search
(bootstrapping demos, Optuna over instruction x demo choices) is DSPy's own.
"""

from __future__ import annotations

import copy
import logging

import dspy
from dspy.propose import dataset_summary_generator as _summary
from dspy.propose import grounded_proposer as _grounded
from dspy.propose.utils import create_predictor_level_history_string, strip_prefix
from dspy.teleprompt import MIPROv2
from dspy.teleprompt import mipro_optimizer_v2 as _mipro
from dspy.teleprompt.utils import get_signature
from dspy.utils.parallelizer import ParallelExecutor

from dspy_meta.optimizers.base import OptimizerKind, Param, register_kind
from dspy_meta.optimizers.capped import DESCRIPTION_TOKENS, CappedPredict
from dspy_meta.optimizers.dataset_summary import (
    DESCRIBE_DATASET, DESCRIBE_DATASET_MORE, SUMMARIZE_OBSERVATIONS, DatasetSummary, summarize_dataset,
)
from dspy_meta.optimizers.prompts import PromptSet, PromptTemplate

logger = logging.getLogger(__name__)

__all__ = ["PromptableMIPROv2", "PromptableGroundedProposer", "MIPROv2Kind", "summarize_dataset"]

DESCRIBE_PROGRAM = "describe_program"
DESCRIBE_MODULE = "describe_module"
GENERATE_INSTRUCTION = "generate_module_instruction"
_SUMMARY_JOB = ("dataset summary",)


def _full_instruction_signature():
    return _grounded.generate_instruction_class().signature


class _GenerateOnceSummarized:
    """The instruction generator, called with the dataset summary once it is ready.

    DSPy's module asks for the program and module descriptions before it generates; waiting for
    the summary only here lets the summary's calls run alongside the descriptions' calls.
    """

    def __init__(self, with_summary, without_summary, summary: DatasetSummary):
        self.with_summary = with_summary
        self.without_summary = without_summary
        self.summary = summary

    def __call__(self, **inputs):
        text = self.summary.get()
        inputs.pop("dataset_description", None)
        if text is None:
            return self.without_summary(**inputs)
        return self.with_summary(dataset_description=text, **inputs)


class _PromptedModuleInstruction(_grounded.GenerateModuleInstruction):
    """DSPy's instruction generator module with its three Predicts rebuilt from `prompts`."""

    def __init__(self, prompts: PromptSet, summary: DatasetSummary | None = None, **kwargs):
        super().__init__(**kwargs)
        self.describe_program = CappedPredict(prompts[DESCRIBE_PROGRAM].apply(_grounded.DescribeProgram),
                                              DESCRIPTION_TOKENS)
        self.describe_module = CappedPredict(prompts[DESCRIBE_MODULE].apply(_grounded.DescribeModule),
                                             DESCRIPTION_TOKENS)
        # The generator's fields depend on the proposer's settings; describe those present.
        self.generate_module_instruction = self._generator(prompts, **kwargs)
        if summary is not None and self.use_dataset_summary:
            self.generate_module_instruction = _GenerateOnceSummarized(
                self.generate_module_instruction, self._generator(prompts, **{**kwargs, "use_dataset_summary": False}),
                summary)

    @staticmethod
    def _generator(prompts: PromptSet, **kwargs):
        flags = {k: kwargs[k] for k in ("use_dataset_summary", "program_aware", "use_task_demos",
                                        "use_instruct_history", "use_tip") if k in kwargs}
        signature = _grounded.generate_instruction_class(**flags).signature
        return dspy.Predict(prompts[GENERATE_INSTRUCTION].apply(signature, strict=False))


class PromptableGroundedProposer(_grounded.GroundedProposer):
    """Grounded proposer that asks its LM with the Signatures in `prompts`.

    The dataset summary is computed when the first proposal needs it, alongside the
    program descriptions, rather than up front (unless MIPROv2 started it earlier: `summary`).
    """

    def __init__(self, prompt_model, program, trainset, *, prompts: PromptSet, view_data_batch_size=10,
                 use_dataset_summary=True, num_threads: int | None = None, summary: DatasetSummary | None = None,
                 **kwargs):
        super().__init__(prompt_model, program, trainset, view_data_batch_size=view_data_batch_size,
                         use_dataset_summary=False, **kwargs)
        self.prompts = prompts
        self.num_threads = num_threads
        self.use_dataset_summary = use_dataset_summary
        if use_dataset_summary and summary is None:
            summary = DatasetSummary(trainset, view_data_batch_size, self.prompt_model, prompts)
        self.summary = summary if use_dataset_summary else None

    def propose_instructions_for_program(self, trainset, program, demo_candidates, trial_logs, N):  # noqa: N803
        """DSPy's proposal plan, with the proposals asked concurrently.

        Tips and rollout ids are drawn from ``self.rng`` up front, in the order the sequential
        proposer draws them, so a seed gives the same instructions at any thread count.
        """
        if self.set_history_randomly:
            self.use_instruct_history = self.rng.random() < 0.5
        if not demo_candidates:
            self.use_task_demos = False
            num_demos = N
        else:
            num_demos = max(len(demo_candidates[0]), 1)
        jobs = []
        for pred_i, _ in enumerate(program.predictors()):
            for demo_set_i in range(num_demos)[:min(N, num_demos)]:
                tip, use_tip = None, self.use_tip
                if self.set_tip_randomly:
                    tip = _grounded.TIPS[self.rng.choice(list(_grounded.TIPS.keys()))]
                    use_tip = bool(tip)
                jobs.append((pred_i, demo_set_i, tip, use_tip, self.rng.randint(0, 10**9)))

        def propose(job):
            if job is _SUMMARY_JOB:  # first in line, so its calls start with the descriptions' calls
                return self.summary.get()
            pred_i, demo_set_i, tip, use_tip, rollout_id = job
            return self._propose_one(program, pred_i, demo_candidates, demo_set_i, trial_logs, tip, use_tip,
                                     rollout_id)

        if self.summary is not None:
            jobs.insert(0, _SUMMARY_JOB)

        # DSPy's executor carries dspy.context into its threads.
        executor = ParallelExecutor(num_threads=self.num_threads or 1, max_errors=len(jobs) + 1,
                                    disable_progress_bar=True)
        answers = executor.execute(propose, jobs)
        if self.summary is not None:
            jobs, answers = jobs[1:], answers[1:]
        proposed: dict[int, list[str]] = {}
        for (pred_i, *_), answer in zip(jobs, answers, strict=True):
            if answer is None or isinstance(answer, Exception):
                raise RuntimeError(f"instruction proposal for predictor {pred_i} failed: {answer}")
            proposed.setdefault(pred_i, []).append(answer)
        return proposed

    def propose_instruction_for_predictor(self, program, predictor, pred_i, demo_candidates, demo_set_i,
                                          trial_logs, tip=None) -> str:
        return self._propose_one(program, pred_i, demo_candidates, demo_set_i, trial_logs, tip, self.use_tip,
                                 self.rng.randint(0, 10**9))

    def _propose_one(self, program, pred_i, demo_candidates, demo_set_i, trial_logs, tip, use_tip,
                     rollout_id) -> str:
        history = create_predictor_level_history_string(program, pred_i, trial_logs,
                                                        _grounded.MAX_INSTRUCT_IN_HISTORY)
        generator = _PromptedModuleInstruction(
            self.prompts,
            self.summary,
            program_code_string=self.program_code_string,
            use_dataset_summary=self.summary is not None,
            program_aware=self.program_aware,
            use_task_demos=self.use_task_demos and bool(demo_candidates),
            use_instruct_history=self.use_instruct_history and bool(history),
            use_tip=use_tip,
        )
        # A distinct rollout id per proposal gives diverse samples without turning the cache off.
        rollout_lm = self.prompt_model.copy(rollout_id=rollout_id, temperature=self.init_temperature)
        with dspy.context(lm=rollout_lm):
            proposal = generator(demo_candidates=demo_candidates, pred_i=pred_i, demo_set_i=demo_set_i,
                                 program=program, data_summary=None, previous_instructions=history,
                                 num_demos_in_context=self.num_demos_in_context, tip=tip)
        return strip_prefix(proposal.proposed_instruction)


class PromptableMIPROv2(MIPROv2):
    """MIPROv2 whose proposer prompts come from `prompts`.

    Unlike `dspy.MIPROv2`, the constructor reads no global settings: a missing
    `task_model` / `prompt_model` is resolved from the calling context in `compile`,
    `seed=0` is honoured, and `compile` does not change this object.
    """

    def __init__(self, metric, prompt_model=None, task_model=None, *, prompts: PromptSet | None = None,
                 num_trials: int | None = None, minibatch: bool = True, minibatch_size: int = 35,
                 **kwargs):
        # MIPROv2.__init__ falls back to dspy.settings.lm and raises without one: give it a stand-in.
        super().__init__(metric, prompt_model=_DEFERRED, task_model=_DEFERRED, **kwargs)
        self.prompt_model = prompt_model
        self.task_model = task_model
        self.prompts = prompts
        self.num_trials = num_trials
        self.minibatch = minibatch
        self.minibatch_size = minibatch_size

    def compile(self, student, *, trainset, teacher=None, valset=None, seed=None, **kwargs):
        run = copy.copy(self)
        run.task_model = self.task_model or dspy.settings.lm
        run.prompt_model = self.prompt_model or run.task_model
        if run.task_model is None:
            raise ValueError("MIPROv2 needs a task LM: pass task_model or call dspy.configure(lm=...)")
        run.seed = self.seed if seed is None else seed
        kwargs.setdefault("minibatch", self.minibatch)
        kwargs.setdefault("minibatch_size", min(self.minibatch_size, len(valset or trainset)))
        if self.auto is None:
            kwargs.setdefault("num_trials", self.num_trials)
        run._early_summary = None
        if kwargs.get("data_aware_proposer", True) and (run.num_threads or 1) > 1 and valset is not None:
            # The summary needs only the trainset (MIPROv2 keeps it whole when a valset is given): with
            # threads to spare it starts with the search, and only the proposer waits for it.
            run._early_summary = DatasetSummary(trainset, kwargs.get("view_data_batch_size", 10),
                                                 run.prompt_model, run._prompts())
            run._early_summary.start()
        try:
            return MIPROv2.compile(run, student, trainset=trainset, teacher=teacher, valset=valset,
                                   seed=run.seed, **kwargs)
        finally:
            if run._early_summary is not None:
                run._early_summary.cancel()  # a search that failed early pays for one summary call at most

    def _prompts(self) -> PromptSet:
        return self.prompts or MIPROv2Kind().default_prompts()

    def _propose_instructions(self, program, trainset, demo_candidates, view_data_batch_size,
                              program_aware_proposer, data_aware_proposer, tip_aware_proposer,
                              fewshot_aware_proposer, num_instruct_candidates):
        proposer = PromptableGroundedProposer(
            self.prompt_model, program, trainset,
            prompts=self._prompts(),
            view_data_batch_size=view_data_batch_size,
            program_aware=program_aware_proposer,
            use_dataset_summary=data_aware_proposer,
            use_task_demos=fewshot_aware_proposer,
            num_demos_in_context=_mipro.BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT,
            use_tip=tip_aware_proposer,
            set_tip_randomly=tip_aware_proposer,
            use_instruct_history=False,
            set_history_randomly=False,
            rng=self.rng,
            init_temperature=self.init_temperature,
            num_threads=self.num_threads,
            summary=self._early_summary,  # set by `compile` on its run copy
        )
        candidates = proposer.propose_instructions_for_program(
            trainset=trainset, program=program, demo_candidates=demo_candidates,
            N=num_instruct_candidates, trial_logs={},
        )
        for i, predictor in enumerate(program.predictors()):
            candidates[i][0] = get_signature(predictor).instructions  # keep the original as candidate 0
        return candidates


class _Deferred:
    """Truthy stand-in for an LM that `compile` resolves later."""

    def __bool__(self):
        return True


_DEFERRED = _Deferred()


class MIPROv2Kind(OptimizerKind):
    name = "mipro_v2"
    description = ("MIPROv2: bootstraps few-shot demo sets, has its prompt LM propose grounded instructions "
                   "(from a dataset summary, the program's code and a random tip), then searches instruction x "
                   "demo combinations with Bayesian optimization on the validation set. Changes instructions "
                   "and demos.")
    params = {
        "auto": Param(str, None, choices=("light", "medium", "heavy"), nullable=True,
                      help="preset budget; null uses num_candidates/num_trials"),
        "num_candidates": Param(int, 4, low=1, high=50, nullable=True, help="instruction and demo candidates"),
        "num_trials": Param(int, 6, low=1, high=200, nullable=True, help="search trials"),
        "max_bootstrapped_demos": Param(int, 4, low=0, high=16),
        "max_labeled_demos": Param(int, 4, low=0, high=16),
        "init_temperature": Param(float, 1.0, low=0.0, high=2.0),
        "minibatch": Param(bool, False, help="score trials on minibatches"),
        "minibatch_size": Param(int, 35, low=1, high=1000),
    }

    def default_prompts(self) -> PromptSet:
        return PromptSet({
            DESCRIBE_PROGRAM: PromptTemplate.from_signature(_grounded.DescribeProgram),
            DESCRIBE_MODULE: PromptTemplate.from_signature(_grounded.DescribeModule),
            GENERATE_INSTRUCTION: PromptTemplate.from_signature(_full_instruction_signature()),
            DESCRIBE_DATASET: PromptTemplate.from_signature(_summary.DatasetDescriptor),
            DESCRIBE_DATASET_MORE: PromptTemplate.from_signature(_summary.DatasetDescriptorWithPriorObservations),
            SUMMARIZE_OBSERVATIONS: PromptTemplate.from_signature(_summary.ObservationSummarizer),
        })

    def validate_params(self, params):
        params = super().validate_params(params)
        if params["auto"] is None and (params["num_candidates"] is None or params["num_trials"] is None):
            raise ValueError("mipro_v2: with auto null, num_candidates and num_trials must both be set")
        if params["auto"] is not None:
            # MIPROv2 refuses explicit counts next to a preset.
            params["num_candidates"] = params["num_trials"] = None
        return params

    def build(self, params, prompts, *, metric, prompt_model, task_model, num_threads, seed, teacher_settings=None):
        return PromptableMIPROv2(metric, prompt_model=prompt_model, task_model=task_model, prompts=prompts,
                                 num_threads=num_threads, seed=seed, verbose=False, teacher_settings=teacher_settings,
                                 **params)


register_kind(MIPROv2Kind())
