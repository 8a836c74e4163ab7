"""Statistics of a comparison: mean ± std over seeds, paired intervals and tests on the same test examples,
and the resolving power of a comparison (the minimum detectable difference).

The protocol pairs two methods on the same test examples and seeds. `paired_difference` reports the mean
difference with a paired bootstrap interval (95% by default), the exact McNemar p-value over the
discordant pairs (pooled over seeds), the observed disagreement rate, and the minimum detectable
difference (MDD) at 80% power for one seed's test set of that size and disagreement rate. A comparison
whose MDD is above the gain it wants to show cannot tell that gain from noise.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence

from dspy_meta.search.acceptance import sign_test_min_net_wins

__all__ = ["mcnemar_exact_p", "mean_std", "minimum_detectable_difference", "paired_difference",
           "sign_test_min_net_wins"]

_NORMAL = statistics.NormalDist()


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _binomial_tail(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), exactly."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n


def mcnemar_exact_p(wins: int, losses: int) -> float:
    """Two-sided exact McNemar test: the binomial test of `wins` against `losses` among the discordant pairs
    (1.0 when there are none)."""
    if wins < 0 or losses < 0:
        raise ValueError(f"counts must be >= 0, got {wins} and {losses}")
    n = wins + losses
    return 1.0 if n == 0 else min(1.0, 2 * _binomial_tail(min(wins, losses), n))


def minimum_detectable_difference(n_examples: int, disagreement: float, *, alpha: float = 0.05,
                                  power: float = 0.8) -> float:
    """The smallest paired difference in accuracy a two-sided test at `alpha` detects with `power`, on
    `n_examples` pairs of which a share `disagreement` differ (normal approximation of McNemar's test:
    ``(z_{1-alpha/2} + z_power) * sqrt(disagreement / n)``)."""
    if n_examples < 1:
        raise ValueError(f"n_examples must be >= 1, got {n_examples}")
    if not 0.0 <= disagreement <= 1.0:
        raise ValueError(f"disagreement must be in [0, 1], got {disagreement}")
    z = _NORMAL.inv_cdf(1 - alpha / 2) + _NORMAL.inv_cdf(power)
    return z * math.sqrt(disagreement / n_examples)


def paired_difference(method: Sequence[Sequence[float]], reference: Sequence[Sequence[float]], *,
                      confidence: float = 0.95, resamples: int = 2000, seed: int = 0,
                      power: float = 0.8) -> dict[str, float]:
    """Mean test difference `method - reference`, with a paired bootstrap interval, McNemar's test and the MDD.

    Both arguments hold per-seed lists of per-example scores on the same test examples in the same
    order (``method[s][i]`` pairs with ``reference[s][i]``); seeds are paired by position. The point
    estimate is the mean over seeds and examples of the differences. The bootstrap resamples test
    examples with replacement (the same draw for every seed, so the pairing is kept) and reports the
    percentile interval at `confidence`. McNemar counts wins and losses over every (seed, example)
    pair. The MDD is `minimum_detectable_difference` for one seed's test set at the observed
    disagreement rate and ``alpha = 1 - confidence``.
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
    pairs = [(float(a), float(b)) for m, r in zip(method, reference) for a, b in zip(m, r)]
    wins, losses = sum(a > b for a, b in pairs), sum(a < b for a, b in pairs)
    disagreement = (wins + losses) / len(pairs)
    return {"diff": estimate, "low": low, "high": high, "confidence": confidence, "resamples": resamples,
            "n_examples": n, "n_seeds": len(method), "wins": wins, "losses": losses,
            "disagreement": disagreement, "mcnemar_p": mcnemar_exact_p(wins, losses),
            "mdd": minimum_detectable_difference(n, disagreement, alpha=1 - confidence, power=power),
            "power": power}
