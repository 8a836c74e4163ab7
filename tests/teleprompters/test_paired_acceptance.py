"""Acceptance on the same validation examples: a gain on one or two examples is noise, not a win."""

import pytest

from dspy_meta import MetaTeleprompter
from dspy_meta.testing.toy_task import Shout, shout_metric

from .conftest import TINY, toy_engines


def _lucky_metric(unrewarded_words):
    """Shouting is rewarded on the training words (so the inner optimizers find it) but only on some
    validation words: the best candidate beats the unoptimized program (0 everywhere) on exactly those
    examples and ties it on the rest."""
    def metric(example, prediction, trace=None):
        return 0.0 if example.word in unrewarded_words else shout_metric(example, prediction, trace)
    return metric


def _compile(data, lucky: int, confidence_pct: int):
    engines = toy_engines()
    metric = _lucky_metric({example.word for example in data[1][lucky:]})
    teleprompter = MetaTeleprompter(metric, task_model=engines[0].as_lm(), prompt_model=engines[1].as_lm(),
                                    meta_model=engines[2].as_lm(), seed=0, display_progress=False,
                                    max_bootstrapped_demos=1, max_labeled_demos=0,
                                    budget=TINY.replace(accept_confidence_pct=confidence_pct))
    return teleprompter.compile(Shout(), trainset=data[0], valset=data[1]).meta_results_


@pytest.mark.parametrize("lucky, confidence_pct, wins", [(2, 80, False), (3, 80, True), (2, 0, True), (1, 0, True)])
def test_the_best_candidate_must_win_on_enough_examples_to_replace_the_program(shout_data, lucky, confidence_pct,
                                                                                 wins):
    results = _compile(shout_data, lucky, confidence_pct)
    n = len(shout_data[1])
    assert results.baseline_score == 0.0
    scored = [c for c in results.candidates if c.score is not None]
    assert max(c.score for c in scored) == pytest.approx(lucky / n, abs=1e-3)  # shouting was found
    assert all(len(c.example_scores) == n for c in scored)
    assert all(c.score == pytest.approx(sum(c.example_scores) / n, abs=1e-3) for c in scored)
    assert results.returned_baseline is (not wins)
    if wins:
        assert results.best_score == pytest.approx(lucky / n, abs=1e-3)
        assert f"better on {lucky}, worse on 0 of {n} examples" in results.final_reason
    else:  # the gain on 2 of 6 examples never displaced a 0.0 candidate, nor the unoptimized program
        assert results.best_score == 0.0
        lucky_ones = [c for c in scored if c.score > 0]
        assert lucky_ones and not any(c.accepted and c.best_before is not None for c in lucky_ones)
        assert any("did not beat" in c.reason and f"better on {lucky}, worse on 0 of {n}" in c.reason
                   for c in lucky_ones)


def test_a_tie_never_wins_and_the_reason_reports_the_margin(shout_data):
    results = _compile(shout_data, 3, 80)
    first = {}
    for record in results.candidates:
        if record.score is None:
            continue
        if record.lineage in first:
            # Later candidates of a lineage are judged on the same examples as its best so far.
            assert "better on" in record.reason and "sign test p=" in record.reason
            if record.score == record.best_before:
                assert not record.accepted
        first.setdefault(record.lineage, record)


def test_an_input_optimizers_result_is_kept_on_a_higher_mean_as_dspy_returns_it(shout_data):
    """The BootstrapFewShot input finds shouting (demos help this program LM), but the metric rewards it on
    one validation example only: not significant for the paired test, yet DSPy's BootstrapFewShot would
    return that program, so MetaTeleprompter does too (it used to return the unoptimized program)."""
    from dspy_meta.testing.toy_task import shout_program_responder

    from .conftest import compile_toy, toy_engines

    engines = toy_engines(program=lambda call: shout_program_responder(call, demos_help=True))
    metric = _lucky_metric({example.word for example in shout_data[1][1:]})
    program = compile_toy(engines, shout_data, metric=metric, usage_limits={"program_calls": 20},
                          max_labeled_demos=1)
    results = program.meta_results_
    n = len(shout_data[1])
    assert results.candidates[0].stage == "initial:bootstrap_fewshot"
    assert results.baseline_score == 0.0 and results.best_score == pytest.approx(1 / n, abs=1e-3)
    assert not results.returned_baseline and program.answer.predict.demos
    assert "kept on a higher mean" in results.final_reason and "better on 1, worse on 0" in results.final_reason


def test_compile_starts_by_saying_the_smallest_gain_its_valset_can_accept(shout_data, caplog):
    n = len(shout_data[1])
    with caplog.at_level("INFO", logger="dspy_meta.search.acceptance"):
        _compile(shout_data, 3, 80)
    records = [r for r in caplog.records if r.name == "dspy_meta.search.acceptance"]
    assert records and records[0].getMessage().startswith(
        f"{n} validation examples: a candidate must win on at least 3 more examples than it loses "
        f"(+{300 / n:.0f} points)")
    assert records[0].levelname == "WARNING"  # a handful of examples cannot accept a realistic gain
