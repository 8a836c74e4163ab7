"""What a meta-optimization run tried and found; attached to the returned program as `meta_results_`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dspy_meta.runtime.usage import LEVELS, LevelUsage

__all__ = ["CandidateRecord", "MetaResults"]

@dataclass
class CandidateRecord:
    """One candidate optimizer: where it came from, its plan, and how it scored.

    ``score`` is None when the candidate was rejected before running (unparseable or
    invalid proposal); ``reason`` then says why.
    """

    index: int
    stage: str  # "initial:<name>", "prompt:<name>", "structure-init:<name>" or "structure"
    plan: dict[str, Any] | None
    score: float | None = None
    lineage: str = ""  # the search it belongs to, whose best so far it was judged against
    best_before: float | None = None
    accepted: bool = False
    reason: str = ""
    analysis: str = ""
    reused: bool = False  # identical to an earlier candidate: its score was reused, nothing re-run
    calls_per_example: float | None = None  # the program's predictor calls per validation example (inference cost)
    usage: dict[str, LevelUsage] = field(default_factory=dict)
    example_scores: list[float] | None = None  # its score on each validation example (paired comparisons)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "stage": self.stage, "plan": self.plan, "score": self.score,
                "lineage": self.lineage, "best_before": self.best_before, "accepted": self.accepted, "reason": self.reason,
                "analysis": self.analysis, "reused": self.reused,
                "calls_per_example": self.calls_per_example, "example_scores": self.example_scores,
                "usage": {level: u.to_dict() for level, u in self.usage.items()}}


@dataclass
class MetaResults:
    """Every candidate tried, the accepted path, the learned optimizer and LM usage per level."""

    candidates: list[CandidateRecord] = field(default_factory=list)
    baseline_score: float | None = None  # the unoptimized student on the valset
    returned_baseline: bool = False  # no candidate beat the student, which was returned unchanged
    stopped_reason: str | None = None  # set when a usage limit ended the run early
    final_reason: str = ""  # how the best candidate compared with the unoptimized program (the paired margin)
    best_score: float | None = None
    best_plan: dict[str, Any] | None = None
    best_optimizers: dict[str, Any] = field(default_factory=dict)  # prompt-optimized spec per input, as dicts
    usage: dict[str, LevelUsage] = field(default_factory=dict)
    valset_size: int = 0
    seed: int | None = None
    # The search's wall time (baseline score included): not compared, nor in `to_dict`, which a resumed run
    # reproduces exactly.
    wall_seconds: float | None = field(default=None, compare=False)
    # Seconds inside each level's LM requests, summed over threads (the level's share of the LM time): also
    # measured, so neither compared nor in `to_dict`.
    lm_seconds: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def accepted_path(self) -> list[int]:
        return [c.index for c in self.candidates if c.accepted]

    @property
    def best_optimizer(self):
        """The learned optimizer: an `OptimizerSpec` when it is a single step, else a plan node."""
        from dspy_meta.plans.nodes import OptimizeStep, plan_from_dict

        if self.best_plan is None:
            return None
        plan = plan_from_dict(self.best_plan)
        return plan.spec if isinstance(plan, OptimizeStep) else plan

    @property
    def winner(self) -> str | None:
        """The winning optimizer in a few words (``copro``, ``copro -> bootstrap_fewshot``); None when the
        unoptimized program was returned."""
        from dspy_meta.plans.nodes import plan_from_dict

        if self.returned_baseline or self.best_plan is None:
            return None
        try:
            return plan_from_dict(self.best_plan).describe()
        except Exception:  # noqa: BLE001 -- a plan saved by another version: name its top-level op
            return str(self.best_plan.get("kind") or self.best_plan.get("op") or "a plan")

    def summary(self) -> str:
        """One line: validation before -> after, the winner, the calls per level, each level's share of the
        LM time and the wall time."""
        def shown(score):
            return "n/a" if score is None else f"{score:.3f}"

        if self.winner is None:
            winner = "the unoptimized program"
        else:
            stage = next((c.stage for c in self.candidates if c.plan == self.best_plan and c.accepted), None)
            winner = f"{self.winner} ({stage})" if stage else self.winner
        calls = "/".join(str(self.usage[level].calls) for level in LEVELS)
        busy = sum(self.lm_seconds.values())
        shares = "/".join(f"{100 * self.lm_seconds.get(level, 0.0) / busy:.0f}%" for level in LEVELS) if busy else ""
        time_split = f"; LM time program/optimizer/meta {shares}" if shares else ""
        wall = f"; {self.wall_seconds:.1f} s" if self.wall_seconds is not None else ""
        stopped = f"; stopped: {self.stopped_reason}" if self.stopped_reason else ""
        return (f"validation {shown(self.baseline_score)} -> {shown(self.best_score)} (returned {winner}); "
                f"LM calls program/optimizer/meta {calls}{time_split}{wall}{stopped}")

    def to_dict(self) -> dict[str, Any]:
        return {"baseline_score": self.baseline_score, "returned_baseline": self.returned_baseline,
                "stopped_reason": self.stopped_reason, "final_reason": self.final_reason,
                "best_score": self.best_score, "best_plan": self.best_plan, "best_optimizers": self.best_optimizers,
                "accepted_path": self.accepted_path, "valset_size": self.valset_size, "seed": self.seed,
                "winner": self.winner,
                "usage": {level: u.to_dict() for level, u in self.usage.items()},
                "candidates": [c.to_dict() for c in self.candidates]}
