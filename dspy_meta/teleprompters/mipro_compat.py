"""What makes `MetaTeleprompter` a drop-in for `dspy.MIPROv2`: its options mapped, its result attributes.

Every MIPROv2 option is either honoured, mapped onto the meta search, or ignored with one warning per
compile (README, "Meta-optimize: a drop-in for dspy.MIPROv2", lists which).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import dspy

from dspy_meta.errors import ConfigError
from dspy_meta.programs import returned_program
from dspy_meta.search.budget import MetaBudget
from dspy_meta.search.evaluator import Evaluator

__all__ = ["resolve_lm", "single_teacher", "manual_budget", "ignored_options", "warn_ignored",
           "attach_mipro_stats", "MIPRO_COMPILE_DEFAULTS"]

# MIPROv2.compile's options this package does not use, with MIPROv2's defaults: passing another value warns.
MIPRO_COMPILE_DEFAULTS = {
    "minibatch_full_eval_steps": 5, "program_aware_proposer": True, "data_aware_proposer": True,
    "view_data_batch_size": 10, "tip_aware_proposer": True, "fewshot_aware_proposer": True,
    "provide_traceback": None, "minibatch_size": 35,
}
# MIPROv2 constructor settings with no effect here, with their defaults.
INERT_SETTINGS = {"verbose": False, "metric_threshold": None}


def resolve_lm(value: Any, where: str) -> dspy.BaseLM | None:
    """An LM object as is; a local model name or litellm model string through `make_lm`; None stays None.

    A name `make_lm` does not know fails here, before any LM call, naming the argument.
    """
    if value is None or isinstance(value, dspy.BaseLM):
        return value
    if not isinstance(value, str):
        raise TypeError(f"{where} must be a dspy.BaseLM or a model name, got {type(value).__name__}")
    from dspy_meta.lm import make_lm

    try:
        return make_lm(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def single_teacher(teacher: Any, student: dspy.Module) -> dspy.Module | None:
    """The teacher program (BetterTogether passes a list of one); None means the student teaches itself."""
    if isinstance(teacher, (list, tuple)):
        if len(teacher) > 1:
            raise ValueError(f"MetaTeleprompter takes one teacher program, got {len(teacher)}")
        teacher = teacher[0] if teacher else None
    if teacher is not None and not isinstance(teacher, dspy.Module):
        raise TypeError(f"teacher must be a dspy.Module, got {type(teacher).__name__}")
    if teacher is not None and len(teacher.predictors()) != len(student.predictors()):
        raise ValueError("teacher and student must have the same predictors")
    return teacher


def manual_budget(num_candidates: int | None, num_trials: int | None, num_predictors: int,
                  zero_shot: bool) -> tuple[MetaBudget, int]:
    """MIPROv2's manual mode (``auto=None``) as a budget: its candidates and trials for the MIPROv2 input,
    COPRO's breadth alike, the whole valset scored (MIPROv2 samples none in this mode).

    Without `num_trials` (MIPROv2 refuses that) the number MIPROv2 recommends is used. Returns the budget
    and the trials.
    """
    if num_candidates is None:
        raise ConfigError("auto=None needs num_candidates (as in MIPROv2)")
    if num_trials is None:
        variables = num_predictors * (1 if zero_shot else 2)
        num_trials = int(max(2 * variables * math.log2(max(num_candidates, 2)), 1.5 * num_candidates))
    return MetaBudget(mipro_candidates=num_candidates, mipro_trials=max(1, num_trials),
                      copro_breadth=max(2, num_candidates), max_valset=1_000_000), num_trials


def ignored_options(settings: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    """Names whose value differs from the default, i.e. that the caller set."""
    return sorted(name for name, value in settings.items() if name in defaults and value != defaults[name])


def warn_ignored(names: list[str], why: str) -> None:
    """One warning per compile for every option that has no effect (Python shows a repeat once per place)."""
    if names:
        warnings.warn(f"MetaTeleprompter ignores {', '.join(names)}: {why}", UserWarning, stacklevel=4)  # the caller of compile


def _percent(score: float | None) -> float | None:
    return None if score is None else round(100.0 * score, 2)


def attach_mipro_stats(program: dspy.Module, student: dspy.Module, evaluator: Evaluator) -> dspy.Module:
    """MIPROv2's result attributes (``track_stats=True``) from the meta candidates, on the returned program.

    Scores are percentages, as MIPROv2's (`dspy.Evaluate` scores). ``candidate_programs``: the unoptimized
    program and every candidate scored on the whole valset, best first, as ``{"score", "program",
    "full_eval", "stage", "plan"}``; ``trial_logs``: one entry per candidate in run order (1: the
    unoptimized program); ``total_calls``: LM calls at all levels; ``prompt_model_total_calls``: those
    of the optimizer and meta levels.
    """
    results = evaluator.results
    entries = [{"score": _percent(results.baseline_score), "program": student.deepcopy(), "full_eval": True,
                "stage": "baseline", "plan": None}]
    trial_logs = {1: {"full_eval_score": entries[0]["score"], "full_eval_program": entries[0]["program"],
                      "stage": "baseline", "total_eval_calls_so_far": len(evaluator.valset)}}
    calls = len(evaluator.valset)
    for record in results.candidates:
        calls += record.usage["program"].calls if "program" in record.usage else 0
        candidate = evaluator.program_of(record)
        copied = None if candidate is None else returned_program(student, candidate)  # the user's LMs, not the run's
        trial_logs[len(trial_logs) + 1] = {"full_eval_score": _percent(record.score), "full_eval_program": copied,
                                           "stage": record.stage, "plan": record.plan, "accepted": record.accepted,
                                           "reason": record.reason, "total_eval_calls_so_far": calls}
        if record.score is not None and copied is not None and not record.reused:
            entries.append({"score": _percent(record.score), "program": copied, "full_eval": True,
                            "stage": record.stage, "plan": record.plan})
    scored = [e for e in entries if e["score"] is not None]
    program.candidate_programs = sorted(scored, key=lambda e: e["score"], reverse=True)  # stable: earlier wins ties
    program.mb_candidate_programs = []
    program.trial_logs = trial_logs
    final = results.baseline_score if results.returned_baseline else results.best_score
    program.score = _percent(final)
    usage = results.usage
    program.total_calls = sum(u.calls for u in usage.values())
    program.prompt_model_total_calls = sum(usage[level].calls for level in ("optimizer", "meta") if level in usage)
    return program
