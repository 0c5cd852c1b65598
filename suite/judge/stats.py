"""Intervals for verdicts: Wilson over test examples (one seed), Student t over seeds (>= 3)."""
from __future__ import annotations

import math

from scipy import stats

MIN_SEEDS_FOR_SEED_INTERVAL = 3


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


def t_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Interval for the mean over seeds; zero width when every seed agrees."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, mean
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    return mean - half, mean + half
