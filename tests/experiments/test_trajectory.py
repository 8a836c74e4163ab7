"""The trajectory plot aggregates seeds: per method one line (the mean) and its min-max spread."""

import pytest

from dspy_meta.experiments.trajectory import seed_bands, trajectory_figure, write_trajectory_plot

RESULTS = {
    "task": {"name": "t"}, "seeds": [0, 1],
    "summary": {"zero_shot_cot": {}, "meta_teleprompter": {}},
    "runs": [
        {"method": "zero_shot_cot", "seed": 0, "trajectory": [[0, 0.2]]},
        {"method": "zero_shot_cot", "seed": 1, "trajectory": [[0, 0.4]]},
        {"method": "meta_teleprompter", "seed": 0, "trajectory": [[0, 0.2], [10, 0.5], [30, 0.9]]},
        {"method": "meta_teleprompter", "seed": 1, "trajectory": [[0, 0.4], [20, 0.6]]},
    ],
}


def test_seeds_are_aggregated_on_the_union_of_their_call_counts():
    bands = seed_bands(RESULTS)
    assert bands["zero_shot_cot"]["calls"] == [0]
    assert bands["zero_shot_cot"]["mean"] == [pytest.approx(0.3)]
    meta = bands["meta_teleprompter"]
    assert meta["calls"] == [0, 10, 20, 30]
    # Each seed holds its best so far until its next point, and its last score once its run ended.
    assert meta["mean"] == pytest.approx([0.3, 0.45, 0.55, 0.75])
    assert meta["low"] == [0.2, 0.4, 0.5, 0.6] and meta["high"] == [0.4, 0.5, 0.6, 0.9]
    assert meta["seeds"] == [2, 2, 2, 2]


def test_a_seed_that_starts_later_is_left_out_before_its_first_point():
    results = {**RESULTS, "summary": {"few_shot_cot": {}},
               "runs": [{"method": "few_shot_cot", "seed": 0, "trajectory": [[4, 0.5]]},
                        {"method": "few_shot_cot", "seed": 1, "trajectory": [[6, 0.7]]}]}
    band = seed_bands(results)["few_shot_cot"]
    assert band["calls"] == [4, 6] and band["seeds"] == [1, 2]
    assert band["mean"] == pytest.approx([0.5, 0.6])


def test_the_figure_has_one_legend_entry_per_method_and_a_shaded_spread(tmp_path):
    figure = trajectory_figure(RESULTS)
    (axes,) = figure.axes
    labels = [text.get_text() for text in axes.get_legend().get_texts()]
    assert sorted(labels) == ["meta_teleprompter", "zero_shot_cot"]  # not one per seed
    assert len(axes.collections) >= 2  # the error bar of zero_shot_cot and the band of meta_teleprompter
    assert "mean of 2 seeds" in axes.get_title()
    write_trajectory_plot(RESULTS, tmp_path / "trajectory.png")
    assert (tmp_path / "trajectory.png").read_bytes()[:4] == b"\x89PNG"
