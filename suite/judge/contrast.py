"""Does one set of cells succeed more often than another? The curriculum effect, on seed success.

T2 says the curriculum (lambda ramped after phase 1) succeeds where the same penalty from the
first step fails. That is a comparison of two success rates, separate from the usage check the
T2-curr claims inherit: a one-sided Fisher exact test (the exact conditional test for a 2x2
table; small counts are what this task gives). PASS when the selected cells succeed more often at
p <= alpha, FAIL when the `against` cells are shown to succeed more often, else INCONCLUSIVE with
how many more agreeing seeds per side would decide it. It is a fixed-sample test: contrasts are
not extended by `--until-decided`, so its seeds are never chosen after looking at it.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict
from scipy import stats

ALPHA = 0.05
MAX_MORE = 64
METHOD = "one-sided Fisher exact test on seed success (selected cells against the 'against' cells)"


class ContrastTest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    method: str = METHOD
    alpha: float = ALPHA
    successes: int
    n: int
    against_successes: int
    against_n: int
    p_better: float           # P-value for "selected succeed more often"
    p_worse: float
    verdict: Literal["PASS", "FAIL", "INCONCLUSIVE"]
    more: int | None          # more seeds on each side, agreeing with the claim, that would PASS it

    def statistic(self) -> str:
        return (f"{self.successes}/{self.n} against {self.against_successes}/{self.against_n}: "
                f"one-sided p = {self.p_better:.2g} (reverse {self.p_worse:.2g})")


def _p(k: int, n: int, j: int, m: int, alternative: str) -> float:
    return float(stats.fisher_exact([[k, n - k], [j, m - j]], alternative=alternative).pvalue)


def contrast(k: int, n: int, j: int, m: int, alpha: float = ALPHA) -> ContrastTest:
    """k of n selected seeds succeed against j of m seeds of the cells compared against."""
    if n == 0 or m == 0:
        better = worse = 1.0
    else:
        better, worse = _p(k, n, j, m, "greater"), _p(k, n, j, m, "less")
    verdict = "PASS" if better <= alpha else "FAIL" if worse <= alpha else "INCONCLUSIVE"
    more = None
    if verdict == "INCONCLUSIVE":
        more = next((x for x in range(1, MAX_MORE + 1) if _p(k + x, n + x, j, m + x, "greater") <= alpha), None)
    return ContrastTest(alpha=alpha, successes=k, n=n, against_successes=j, against_n=m, p_better=better,
                        p_worse=worse, verdict=verdict, more=more)
