"""The closing candidate: an ensemble of the best distinct programs a run found."""

import pytest

from dspy_meta.optimizers import OptimizerSpec
from dspy_meta.plans import OptimizeStep
from dspy_meta.search import CandidateRecord
from dspy_meta.search.strategies import EnsembleOfFound
from dspy_meta.search.strategies.ensemble_of_found import best_distinct_plans


def _plan(demos):
    return OptimizeStep(OptimizerSpec.create("bootstrap_fewshot", max_bootstrapped_demos=0,
                                             max_labeled_demos=demos)).to_dict()


def _record(index, score, plan):
    return CandidateRecord(index=index, stage="s", plan=plan, lineage="x", score=score)


def test_members_are_the_best_distinct_scored_plans_best_first():
    ensemble = {"op": "ensemble", "members": [_plan(1), _plan(2)]}
    records = [_record(0, 0.5, _plan(1)), _record(1, 0.7, _plan(2)), _record(2, 0.7, _plan(2)),  # a reuse
               _record(3, None, _plan(3)), _record(4, 0.9, ensemble), _record(5, 0.6, _plan(4)),
               _record(6, 0.4, None), _record(7, 0.7, _plan(5))]
    members = best_distinct_plans(records, 3)
    assert [m.to_dict() for m in members] == [_plan(2), _plan(5), _plan(4)]  # ties: the earlier first


def test_the_strategy_asks_once_and_only_with_enough_members():
    records = [_record(i, 0.5, _plan(i + 1)) for i in range(3)]
    strategy = EnsembleOfFound(records, 3)
    (candidate,) = strategy.ask(None)
    assert candidate.derived and candidate.plan.to_dict()["op"] == "ensemble" and strategy.ask(None) == []
    assert EnsembleOfFound(records[:2], 3).ask(None) == []
    with pytest.raises(ValueError, match="at least 3"):
        EnsembleOfFound(records, 2)
