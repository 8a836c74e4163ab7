"""Acceptance rules: strict improvement, and the paired sign test on the same validation examples."""

import pytest

from dspy_meta.search.acceptance import ImprovesOnBest, PairedSignTest, sign_test_p


def test_sign_test_p_values():
    assert sign_test_p(3, 0) == 0.125 and sign_test_p(2, 0) == 0.25 and sign_test_p(0, 0) == 1.0
    assert sign_test_p(4, 1) == pytest.approx(6 / 32)
    assert sign_test_p(0, 3) == 1.0


def test_strict_improvement_never_takes_a_tie_or_a_failure():
    rule = ImprovesOnBest()
    assert rule.accepts(0.5, None) and rule.accepts(0.6, 0.5)
    assert not rule.accepts(0.5, 0.5) and not rule.accepts(None, None) and not rule.accepts(None, 0.1)


def test_paired_rule_needs_more_than_one_lucky_example():
    rule = PairedSignTest(confidence=0.8)
    best = [0.0] * 10
    two_wins, three_wins = [1.0, 1.0] + [0.0] * 8, [1.0] * 3 + [0.0] * 7
    assert not rule.accepts(0.2, 0.0, two_wins, best)        # p = 0.25 > 0.2
    assert rule.accepts(0.3, 0.0, three_wins, best)          # p = 0.125
    mixed = [1.0] * 5 + [0.0] * 5
    incumbent = [0.0] * 4 + [1.0] + [0.0] * 5                # candidate: 4 wins, 1 loss of 10 -> p = 0.1875
    assert rule.accepts(0.5, 0.1, mixed, incumbent)
    assert not rule.accepts(0.3, 0.3, three_wins, [0.0] * 7 + [1.0] * 3)  # a tie of means never wins
    assert rule.accepts(0.1, None) and not rule.accepts(None, None)
    assert rule.accepts(0.2, 0.1) and not rule.accepts(0.1, 0.1)          # no per-example scores: strict
    assert rule.accepts(0.2, 0.1, [1.0, 1.0], [0.0])                     # lengths differ: strict


def test_paired_reason_reports_the_margin():
    rule = PairedSignTest(confidence=0.8)
    reason = rule.reason(0.2, 0.0, "prompt:copro", [1.0, 1.0, 0.0], [0.0, 0.0, 0.0])
    assert reason.startswith("did not beat") and "better on 2, worse on 0 of 3" in reason and "p=0.250" in reason
    assert rule.reason(0.5, None, "x") == "first scored candidate of x"
    with pytest.raises(ValueError, match="confidence"):
        PairedSignTest(confidence=1.0)
