"""Does a candidate succeed as often as a reference? Two seed success rates, k/n against j/m.

Seed outcomes here are bimodal (a seed solves the task or collapses), so regress compares how
often seeds succeed, not a mean that one collapsed seed drags about (claims.md). Per comparison:
  WORSE / BETTER  a one-sided Fisher exact test (suite.judge.contrast) shows the candidate's rate
                  lower / higher than the reference's at p <= alpha;
  SAME            equivalence is shown: two one-sided tests (TOST) at alpha, i.e. the (1 - 2 alpha)
                  interval of the difference lies strictly inside +-MARGIN. SAME is read first, so
                  a difference shown but inside the margin is SAME (no difference that matters);
  INCONCLUSIVE    otherwise, with how many more seeds per side, at the observed rates, would decide.
The interval is MOVER (Newcombe's square-and-add) on Clopper-Pearson limits of each rate: exact
limits keep the false SAME rate at or below alpha when the true difference is the margin (Wilson
limits, Newcombe's hybrid score, reach 6.7% at 40 seeds by the enumeration in tests/test_regress.py).
The rates are unpaired: the same seed gives both runs the same data and initial weights, but a
different router trains a different model, so a seed's two outcomes are not matched pairs.
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy import stats

from suite.judge.contrast import contrast, significant  # p <= alpha up to float rounding

ALPHA = 0.05
#: A difference of one seed in four between two success rates is the smallest the verdict must
#: not call SAME: one seed in four collapsing is what a user would notice; with it, 11 agreeing
#: seeds per side show equivalence (0.10 would need 29, more than a CPU's regress can train).
MARGIN = 0.25
MAX_SEEDS = 100          # `--seeds` accepts at most this many; "more seeds" is searched up to it
METHOD = (f"one-sided Fisher exact tests (WORSE/BETTER) and TOST within +-{MARGIN:g} (SAME) on seed success "
          f"rates, {1 - 2 * ALPHA:.0%} MOVER interval on Clopper-Pearson limits, alpha {ALPHA:g}")

Verdict = Literal["SAME", "BETTER", "WORSE", "INCONCLUSIVE"]


def clopper_pearson(k, n, confidence: float):
    """suite.judge.sequential.exact_interval in closed form (beta quantiles), on arrays too: the
    coverage tests enumerate every outcome, which scipy's root-finding version makes slow."""
    k, n, tail = np.asarray(k, float), np.asarray(n, float), (1 - confidence) / 2
    with np.errstate(invalid="ignore"):
        low = np.where(k == 0, 0.0, stats.beta.ppf(tail, k, n - k + 1))
        high = np.where(k == n, 1.0, stats.beta.ppf(1 - tail, k + 1, n - k))
    return low, high


def difference_interval(k, n, j, m, confidence: float = 1 - 2 * ALPHA):
    """MOVER interval of k/n - j/m: each side's distance to its Clopper-Pearson limit, added in
    quadrature (Newcombe 1998, square-and-add; Zou and Donner 2008), clipped to [-1, 1], the
    differences two rates can have (square-and-add overshoots at the ends). Arrays broadcast."""
    p, q = np.asarray(k) / np.asarray(n), np.asarray(j) / np.asarray(m)
    (l1, u1), (l2, u2) = clopper_pearson(k, n, confidence), clopper_pearson(j, m, confidence)
    low = np.maximum(p - q - np.hypot(p - l1, u2 - q), -1.0)
    high = np.minimum(p - q + np.hypot(u1 - p, q - l2), 1.0)
    return (float(low), float(high)) if np.ndim(low) == 0 else (low, high)


def decide(k: int, n: int, j: int, m: int, alpha: float = ALPHA, margin: float = MARGIN) -> tuple[Verdict, dict]:
    """The verdict on k of n candidate seeds against j of m reference seeds, and its numbers."""
    if n == 0 or m == 0:
        return "INCONCLUSIVE", {"difference": math.nan, "low": math.nan, "high": math.nan,
                                "p_worse": 1.0, "p_better": 1.0}
    low, high = difference_interval(k, n, j, m, 1 - 2 * alpha)
    c = contrast(k, n, j, m, alpha)
    numbers = {"difference": k / n - j / m, "low": low, "high": high, "p_worse": c.p_worse, "p_better": c.p_better}
    if -margin < low and high < margin:
        return "SAME", numbers
    if significant(c.p_worse, alpha):
        return "WORSE", numbers
    if significant(c.p_better, alpha):
        return "BETTER", numbers
    return "INCONCLUSIVE", numbers


def more_to_decide(k: int, n: int, j: int, m: int, alpha: float = ALPHA,
                   margin: float = MARGIN) -> tuple[int | None, Verdict | None]:
    """The fewest seeds x added to each side (`--seeds` raised by x trains both), at the observed
    rates, that decide it, and the verdict they would give; (None, None) when none up to MAX_SEEDS."""
    if n == 0 or m == 0:
        return None, None
    for x in range(1, MAX_SEEDS - max(n, m) + 1):
        kk, jj = round(k / n * (n + x)), round(j / m * (m + x))
        verdict, _ = decide(kk, n + x, jj, m + x, alpha, margin)
        if verdict != "INCONCLUSIVE":
            return x, verdict
    return None, None


class SuccessComparison(BaseModel):
    """One task's seed success, candidate against one reference: what REGRESS.md renders."""
    model_config = ConfigDict(frozen=True, extra="forbid")

    method: str = METHOD
    alpha: float = ALPHA
    margin: float = MARGIN
    successes: int               # candidate seeds that succeed
    n: int
    ref_successes: int
    ref_n: int
    difference: float            # candidate rate - reference rate
    low: float                   # (1 - 2 alpha) interval of the difference
    high: float
    p_worse: float               # one-sided Fisher: candidate succeeds less often
    p_better: float
    verdict: Verdict
    more: int | None = None      # INCONCLUSIVE: seeds more per side that would decide it
    more_verdict: Verdict | None = None

    def counts(self) -> str:
        return f"{self.successes}/{self.n} vs {self.ref_successes}/{self.ref_n}"

    def more_text(self) -> str:
        """'' once decided; otherwise how many more seeds would decide it, and how."""
        if self.verdict != "INCONCLUSIVE":
            return ""
        if self.more is None:
            return f"no number of seeds up to {MAX_SEEDS} per side decides it at the observed rates"
        return (f"{self.more} more seed{'s' * (self.more != 1)} per side at the observed rates "
                f"(--seeds {max(self.n, self.ref_n) + self.more}) would decide it: {self.more_verdict}")


def compare_success(k: int, n: int, j: int, m: int, alpha: float = ALPHA, margin: float = MARGIN) -> SuccessComparison:
    verdict, numbers = decide(k, n, j, m, alpha, margin)
    more, how = more_to_decide(k, n, j, m, alpha, margin) if verdict == "INCONCLUSIVE" else (None, None)
    return SuccessComparison(alpha=alpha, margin=margin, successes=k, n=n, ref_successes=j, ref_n=m,
                             verdict=verdict, more=more, more_verdict=how, **numbers)
