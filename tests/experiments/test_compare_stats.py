import pytest

import math

from dspy_meta.experiments.stats import mcnemar_exact_p, mean_std, minimum_detectable_difference, paired_difference
from dspy_meta.search.acceptance import acceptance_power, sign_test_min_net_wins


def test_mean_and_sample_std():
    assert mean_std([0.5]) == (0.5, 0.0)
    mean, std = mean_std([0.2, 0.4, 0.6])
    assert mean == pytest.approx(0.4) and std == pytest.approx(0.2)


def test_paired_difference_on_a_constructed_example():
    reference = [[1.0] * 10 + [0.0] * 30 for _ in range(3)]
    # The method also wins examples 10-19 on every seed, and loses example 0 on seed 2 only.
    method = [[1.0] * 20 + [0.0] * 20 for _ in range(3)]
    method[2][0] = 0.0
    result = paired_difference(method, reference, resamples=4000, seed=1)
    assert (result["wins"], result["losses"]) == (30, 1)
    assert result["disagreement"] == pytest.approx(31 / 120)
    assert result["diff"] == pytest.approx((10 * 3 - 1) / (3 * 40))
    assert result["low"] < result["diff"] < result["high"]
    assert 0.1 < result["low"] and result["high"] < 0.4  # a quarter of the examples, +-: clearly positive
    assert result["n_examples"] == 40 and result["n_seeds"] == 3 and result["confidence"] == 0.95
    flipped = paired_difference(reference, method, resamples=4000, seed=1)
    assert flipped["diff"] == pytest.approx(-result["diff"])
    assert flipped["low"] == pytest.approx(-result["high"]) and flipped["high"] == pytest.approx(-result["low"])


def test_identical_methods_and_constant_differences_give_a_point_interval():
    scores = [[1.0, 0.0, 1.0, 1.0]] * 2
    same = paired_difference(scores, scores)
    assert (same["diff"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
    shifted = paired_difference([[0.5] * 4] * 2, [[0.0] * 4] * 2)
    assert (shifted["low"], shifted["high"]) == (0.5, 0.5)


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError):
        paired_difference([[1.0, 0.0]], [[1.0]])
    with pytest.raises(ValueError):
        paired_difference([[1.0]], [[1.0], [0.0]])


def test_exact_mcnemar_against_hand_computed_binomial_tails():
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(5, 0) == pytest.approx(2 / 32)
    assert mcnemar_exact_p(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact_p(7, 3) == pytest.approx(2 * (1 + 10 + 45 + 120) / 1024)
    assert mcnemar_exact_p(4, 4) == 1.0
    with pytest.raises(ValueError):
        mcnemar_exact_p(-1, 2)


def test_minimum_detectable_difference_shrinks_with_examples_and_grows_with_disagreement():
    # (1.96 + 0.8416) * sqrt(0.2 / 300) = 0.0723: 300 examples at 20% disagreement cannot resolve 5 points...
    assert minimum_detectable_difference(300, 0.2) == pytest.approx(2.8016 * math.sqrt(0.2 / 300), rel=1e-3)
    assert minimum_detectable_difference(300, 0.2) > 0.05
    # ...at 8% they can (10% gives 5.1 points); 30 examples cannot resolve even 15 points.
    assert minimum_detectable_difference(300, 0.08) < 0.05 < minimum_detectable_difference(300, 0.1)
    assert minimum_detectable_difference(30, 0.2) > 0.15
    assert minimum_detectable_difference(300, 0.0) == 0.0
    with pytest.raises(ValueError):
        minimum_detectable_difference(0, 0.1)


def test_paired_difference_reports_mcnemar_and_the_mdd_of_its_sizes():
    reference = [[1.0] * 50 + [0.0] * 250]
    method = [[1.0] * 50 + [1.0] * 30 + [0.0] * 220]
    result = paired_difference(method, reference)
    assert result["diff"] == pytest.approx(0.1) and result["low"] > 0
    assert result["mcnemar_p"] == pytest.approx(mcnemar_exact_p(30, 0))
    assert result["mdd"] == pytest.approx(minimum_detectable_difference(300, 0.1))


def test_the_sign_test_acceptance_needs_three_net_wins_at_80_percent():
    assert sign_test_min_net_wins(20, 0.2) == 3
    assert sign_test_min_net_wins(20, 0.05) == 5
    assert sign_test_min_net_wins(2, 0.2) is None
    message, too_small = acceptance_power(20, 0.8)
    assert message == ("20 validation examples: a candidate must win on at least 3 more examples than it loses "
                       "(+15 points)") and too_small
    message, too_small = acceptance_power(100, 0.8)
    assert "+3 points" in message and not too_small
    assert acceptance_power(2, 0.8)[1] and "no candidate can pass" in acceptance_power(2, 0.8)[0]
