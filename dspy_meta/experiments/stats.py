"""Statistics of a comparison: mean ± std over seeds, and paired bootstrap intervals on test examples."""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence

__all__ = ["mean_std", "paired_difference"]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def paired_difference(method: Sequence[Sequence[float]], reference: Sequence[Sequence[float]], *,
                      confidence: float = 0.90, resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """Mean test difference `method - reference` with a paired bootstrap interval.

    Both arguments hold per-seed lists of per-example scores on the same test examples in the same
    order (``method[s][i]`` pairs with ``reference[s][i]``); seeds are paired by position. The point
    estimate is the mean over seeds and examples of the differences. The bootstrap resamples test
    examples with replacement (the same draw for every seed, so the pairing is kept) and reports
    the percentile interval at `confidence`.
    """
    if len(method) != len(reference) or not method:
        raise ValueError(f"need the same number of seeds on both sides, got {len(method)} and {len(reference)}")
    n = len(method[0])
    if n == 0 or any(len(row) != n for row in (*method, *reference)):
        raise ValueError("every seed must score the same, non-empty list of test examples")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    # Per example: the difference averaged over seeds; the estimate is their mean.
    per_example = [statistics.fmean(float(m[i]) - float(r[i]) for m, r in zip(method, reference, strict=True))
                   for i in range(n)]
    estimate = statistics.fmean(per_example)
    rng = random.Random(seed)
    draws = sorted(statistics.fmean(per_example[rng.randrange(n)] for _ in range(n)) for _ in range(resamples))
    tail = (1 - confidence) / 2
    cut = min(round(tail * resamples), resamples - 1)  # the same number of draws left out on each side
    low, high = draws[cut], draws[resamples - 1 - cut]
    return {"diff": estimate, "low": low, "high": high, "confidence": confidence, "resamples": resamples,
            "n_examples": n, "n_seeds": len(method)}
