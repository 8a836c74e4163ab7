import pytest

from dspy_meta.experiments.stats import mean_std, paired_difference


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
    assert result["diff"] == pytest.approx((10 * 3 - 1) / (3 * 40))
    assert result["low"] < result["diff"] < result["high"]
    assert 0.1 < result["low"] and result["high"] < 0.4  # a quarter of the examples, +-: clearly positive
    assert result["n_examples"] == 40 and result["n_seeds"] == 3 and result["confidence"] == 0.9
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
