"""The one interval over a cell's seeds, shared by the claims' magnitude and the figures' error
bars, so a figure never shows a different interval from the claim it illustrates. It describes
magnitude; verdicts are tests on seed success (suite.judge.sequential).

With >= 3 seeds a percentile bootstrap of the mean over seeds (seed outcomes are bimodal here, so
no normal shape is assumed; fixed resampling seed, so the interval is a function of the values);
with fewer, Wilson over the pooled test examples for accuracy, and the range over seeds otherwise. Every interval is clipped to what its metric can
take: a mean of 0.995 over three seeds does not make an accuracy of 1.004 plausible.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats

from suite.schema.rows import LAYER_COLUMN

MIN_SEEDS_FOR_SEED_INTERVAL = 3
#: metric -> (lowest, highest) value it can take; savings may be negative (slower than AttnOnly)
RANGES = {"accuracy": (0.0, 1.0), "val_accuracy": (0.0, 1.0), "usage": (0.0, 1.0), "val_usage": (0.0, 1.0),
          "savings_notional": (-math.inf, 1.0), "savings_executed": (-math.inf, 1.0),
          "savings_latency": (-math.inf, 1.0)}


def metric_range(metric: str) -> tuple[float, float]:
    if LAYER_COLUMN.match(metric):
        return RANGES["usage"]
    return RANGES.get(metric, (-math.inf, math.inf))


class Interval(NamedTuple):
    mean: float
    low: float
    high: float
    n: int
    kind: str  # which interval, in words, for the report


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


def t_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Interval for the mean over seeds (unclipped); zero width when every seed agrees."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, mean
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    return mean - half, mean + half


BOOTSTRAP_RESAMPLES = 9999


def bootstrap_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean; zero width when every seed agrees."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2 or np.all(x == x[0]):
        return float(x.mean()), float(x.mean())
    res = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=BOOTSTRAP_RESAMPLES,
                          method="percentile", random_state=np.random.default_rng(0))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def interval(metric: str, values, correct=None, total=None) -> Interval | None:
    """Mean and 95% interval of `metric` over one cell's seeds (NaN dropped), or None if none.
    `correct`/`total` (per seed test counts) give accuracy its Wilson interval below 3 seeds."""
    values = [float(v) for v in values if not math.isnan(float(v))]
    n = len(values)
    if n == 0:
        return None
    mean = sum(values) / n
    if n >= MIN_SEEDS_FOR_SEED_INTERVAL:
        (low, high), kind = bootstrap_interval(values), f"bootstrap over {n} seeds"
    elif metric == "accuracy" and correct is not None and total is not None:
        k, total = int(sum(correct)), int(sum(total))
        mean, (low, high) = k / total, wilson(k, total)
        kind = f"Wilson over {total} test examples ({n} seed{'s' if n > 1 else ''})"
    else:
        low, high = min(values), max(values)
        kind = "point (1 seed)" if n == 1 else f"range over {n} seeds"
    lo, hi = metric_range(metric)
    return Interval(mean, max(low, lo), min(high, hi), n, kind)
