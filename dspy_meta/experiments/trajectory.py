"""The runner's trajectory: best validation score against LM calls spent, per run and aggregated over seeds.

Each run's trajectory is a step function: (cumulative LM calls, best validation score so far) points, the
score holding until the next point and, once its run ended, to the right edge of the plot. Across seeds
the plot shows, per method, the mean of those step functions with the min-max spread shaded: one line
and one legend entry per method, whatever the number of seeds.
"""

from __future__ import annotations

import bisect
import logging
import statistics
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["run_trajectory", "seed_bands", "trajectory_figure", "write_trajectory_plot"]


def run_trajectory(program, val_score: float, usage: dict) -> list[tuple[int, float]]:
    """(cumulative LM calls, best validation score so far) points of one run. A method without a meta search
    is one point: what it spent, and the score it got."""
    results = getattr(program, "meta_results_", None)
    if results is None:
        return [(sum(u["calls"] for u in usage.values()), val_score)]
    points, calls, best = [], 0, results.baseline_score or 0.0
    points.append((0, best))
    for candidate in results.candidates:
        calls += sum(u.calls for u in candidate.usage.values())
        if candidate.score is not None and candidate.score > best:
            best = candidate.score
        points.append((calls, best))
    return points


def _value_at(points: list[tuple[int, float]], calls: int) -> float | None:
    """The step function's value at `calls`: the last point at or before it (None before the first)."""
    index = bisect.bisect_right([c for c, _ in points], calls) - 1
    return points[index][1] if index >= 0 else None


def seed_bands(results: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """Per method, on the union of its seeds' call counts: the mean, min and max over seeds of the best
    validation score so far (seeds whose run has not reached a call count yet are left out there)."""
    bands = {}
    for method in results["summary"]:
        runs = [sorted(map(tuple, r["trajectory"])) for r in results["runs"] if r["method"] == method]
        grid = sorted({calls for points in runs for calls, _ in points})
        band = {"calls": [], "mean": [], "low": [], "high": [], "seeds": []}
        for calls in grid:
            values = [v for points in runs if (v := _value_at(points, calls)) is not None]
            for key, value in (("calls", calls), ("mean", statistics.fmean(values)), ("low", min(values)),
                               ("high", max(values)), ("seeds", len(values))):
                band[key].append(value)
        bands[method] = band
    return bands


def trajectory_figure(results: dict[str, Any]):
    """A matplotlib `Figure`: per method, the mean best validation score over seeds against LM calls, the
    min-max spread shaded; a method without a search is a point with its spread as an error bar.

    The figure is made without pyplot: no backend is chosen or changed (a notebook's inline plots keep
    working), no window opens, and nothing needs closing; a notebook shows it when a cell returns it.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    seeds = len(results["seeds"])
    bands = seed_bands(results)
    # Every line runs on to the right edge, holding its last score: a run's last step is then visible.
    right_edge = max((max(band["calls"]) for band in bands.values() if band["calls"]), default=0) * 1.05 + 1
    for method, band in bands.items():
        if len(band["calls"]) > 1:
            calls = [*band["calls"], right_edge]
            low, mean, high = ([*band[key], band[key][-1]] for key in ("low", "mean", "high"))
            (line,) = ax.step(calls, mean, where="post", label=method)
            ax.fill_between(calls, low, high, step="post", alpha=0.2, color=line.get_color())
        else:
            mean, low, high = band["mean"][0], band["low"][0], band["high"][0]
            ax.errorbar(band["calls"], [mean], yerr=[[mean - low], [high - mean]], fmt="o", capsize=3, label=method)
    ax.set_xlabel("LM calls spent optimizing (all levels)")
    ax.set_ylabel("best validation score")
    ax.set_title(results["task"]["name"] + (f" (mean of {seeds} seeds, min-max shaded)" if seeds > 1 else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def write_trajectory_plot(results: dict[str, Any], path: Path) -> None:
    """``trajectory.png``; skipped, with a warning, when matplotlib (the ``plots`` extra) is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # an optional extra: the results and tables do not need it
        logger.warning("no trajectory plot: matplotlib is not installed (pip install 'dspy-meta[plots]')")
        return
    trajectory_figure(results).savefig(path, dpi=120)
