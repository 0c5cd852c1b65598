"""Does one set of cells succeed more often than another? The curriculum effect, on seed success.

T2 says the curriculum (lambda ramped after phase 1) succeeds where the same penalty from the
first step fails. That is a comparison of two success rates, separate from the usage check the
T2-curr claims inherit: a one-sided Fisher exact test (the exact conditional test for a 2x2
table; small counts are what this task gives). PASS when the selected cells succeed more often at
p <= alpha, FAIL when the `against` cells are shown to succeed more often, else INCONCLUSIVE with
how many more agreeing seeds per side would decide it. It is a fixed-sample test: contrasts are
not extended by `--until-decided`, so its seeds are never chosen after looking at it. One caveat:
the ramp cells it reads are also T1/T2-curr cells, which `--until-decided` does extend (on their
usage check, not on this accuracy check); a contrast read after such rounds rests on a sample size
chosen by a correlated outcome, and its p is then approximate.
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


#: p <= alpha up to float rounding: Fisher's p of 3/3 against 0/3 is 1/20 exactly, computed 0.05000000000000001
ROUNDING = 1e-9


def significant(p: float, alpha: float = ALPHA) -> bool:
    return p <= alpha + ROUNDING


def _p(k: int, n: int, j: int, m: int, alternative: str) -> float:
    return float(stats.fisher_exact([[k, n - k], [j, m - j]], alternative=alternative).pvalue)


def contrast(k: int, n: int, j: int, m: int, alpha: float = ALPHA) -> ContrastTest:
    """k of n selected seeds succeed against j of m seeds of the cells compared against."""
    if n == 0 or m == 0:
        better = worse = 1.0
    else:
        better, worse = _p(k, n, j, m, "greater"), _p(k, n, j, m, "less")
    verdict = "PASS" if significant(better, alpha) else "FAIL" if significant(worse, alpha) else "INCONCLUSIVE"
    more = None
    if verdict == "INCONCLUSIVE":
        more = next((x for x in range(1, MAX_MORE + 1) if significant(_p(k + x, n + x, j, m + x, "greater"), alpha)), None)
    return ContrastTest(alpha=alpha, successes=k, n=n, against_successes=j, against_n=m, p_better=better,
                        p_worse=worse, verdict=verdict, more=more)
