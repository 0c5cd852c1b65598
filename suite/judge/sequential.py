"""Does the median run meet a claim? An anytime-valid test of a seed success rate against 1/2.

Seed outcomes of this task are bimodal, so a verdict about what runs typically do is a question
about the success rate p of seeds (claims.md): PASS when p > 1/2 is shown, FAIL when p < 1/2 is
shown. Seeds are added after looking at the verdict (`--until-decided`), so a fixed-n test would
lose its error rate; this one keeps it for any stopping rule.

The statistic is a mixture likelihood ratio (an e-process). For PASS, E+ = the likelihood of the
outcomes averaged over p in (1/2, 1] with prior density proportional to p (a Beta(2, 1) truncated
to p > 1/2), divided by their likelihood at p = 1/2. Under any p <= 1/2 it is a nonnegative
supermartingale, so by Ville's inequality P(E+ ever reaches 1/alpha) <= alpha. FAIL mirrors it
(E- over p in [0, 1/2), prior proportional to 1 - p). Each error rate is at most alpha = 0.05 at
every number of seeds, however they were added. The prior's tilt towards p = 1 is what lets six
agreeing seeds decide (E = 21.2 >= 20); a flat prior would need seven.

The verdict is read along the seeds in seed order and stops at the first crossing: that is the
stopping time the bound is about, and it makes the verdict a function of the outcomes alone.
"""
from __future__ import annotations

import math
from typing import Literal, Sequence

from pydantic import BaseModel, ConfigDict
from scipy import stats
from scipy.special import betainc, betaln

from suite.schema.bounds import MAX_SEEDS  # the largest seed budget `--max-seeds` accepts; the simulation covers it

ALPHA = 0.05
PRIOR = (2.0, 1.0)       # Beta(a, b) on the side of 1/2 being tested, tilted towards the extreme
MAX_MORE = 200           # "more seeds would decide it" is searched up to this many
METHOD = ("anytime-valid mixture likelihood ratio for the seed success rate against 1/2 "
          "(prior Beta(2,1) on each side, Ville's bound)")

Verdict = Literal["PASS", "FAIL", "INCONCLUSIVE"]


def _log_side(k: float, n: float) -> float:
    """log E+ after k successes in n seeds."""
    a, b = PRIOR
    num = betaln(a + k, b + n - k) + math.log1p(-betainc(a + k, b + n - k, 0.5))
    den = betaln(a, b) + math.log1p(-betainc(a, b, 0.5))
    return n * math.log(2.0) + num - den


def e_values(k: int, n: int) -> tuple[float, float]:
    """(E+, E-) after k successes in n seeds: the evidence for p > 1/2 and for p < 1/2."""
    if not 0 <= k <= n:
        raise ValueError(f"successes: {k} is not within 0..{n}")
    return math.exp(_log_side(k, n)), math.exp(_log_side(n - k, n))


def _crossed(k: int, n: int, alpha: float) -> Verdict:
    e_pass, e_fail = e_values(k, n)
    if e_pass >= 1.0 / alpha:
        return "PASS"
    if e_fail >= 1.0 / alpha:
        return "FAIL"
    return "INCONCLUSIVE"


def more_to_decide(k: int, n: int, side: Verdict, alpha: float = ALPHA) -> int | None:
    """How many more seeds, all succeeding (side PASS) or all failing (FAIL), would decide it."""
    for m in range(1, MAX_MORE + 1):
        kk = k + m if side == "PASS" else k
        if _crossed(kk, n + m, alpha) == side:
            return m
    return None


class SeedTest(BaseModel):
    """The typical reading of one cell: what was tested, on what, and why it stopped."""
    model_config = ConfigDict(frozen=True, extra="forbid")

    method: str = METHOD
    alpha: float
    n: int                       # seeds judged
    successes: int               # of all n seeds
    verdict: Verdict
    e_pass: float                # evidence for p > 1/2 where it stopped (>= 1/alpha decides PASS)
    e_fail: float                # evidence for p < 1/2 where it stopped
    decided_at: int | None       # seeds read when a boundary was first crossed
    decided_successes: int | None  # successes among those
    more_to_pass: int | None     # more agreeing seeds that would decide it (INCONCLUSIVE only)
    more_to_fail: int | None

    def statistic(self) -> str:
        return f"E+ = {self.e_pass:.3g}, E- = {self.e_fail:.3g} (decides at {1 / self.alpha:g})"

    def stopped(self) -> str:
        if self.decided_at is None:
            return (f"no boundary crossed in {self.n} seed(s) ({self.successes} succeeded)" if self.n
                    else "no seed to judge")
        return (f"{self.verdict} at seed {self.decided_at} of {self.n} "
                f"({self.decided_successes} of the first {self.decided_at} succeeded)")

    def more(self) -> str:
        """'' once decided; otherwise how many more agreeing seeds would decide it."""
        if self.verdict != "INCONCLUSIVE":
            return ""
        say = lambda m, how: f"more than {MAX_MORE}" if m is None else f"{m} more {how} seed{'s' * (m != 1)}"
        return f"{say(self.more_to_pass, 'succeeding')} would PASS it; {say(self.more_to_fail, 'failing')} would FAIL it"


def seed_test(outcomes: Sequence[bool | None], alpha: float = ALPHA) -> SeedTest:
    """The typical reading of one cell's seed outcomes, given in seed order. None is a seed whose
    outcome is unknown (a failed cell, or one an epoch cap stopped before it solved): it counts as
    a failure towards PASS and as a success towards FAIL, so it can only delay a verdict."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: {alpha} is not within (0, 1)")
    n = len(outcomes)
    total = sum(o is True for o in outcomes)
    k_pass = k_fail = 0          # successes counting unknown seeds against each side's verdict
    for i, ok in enumerate(outcomes, start=1):
        k_pass += ok is True
        k_fail += ok is not False
        e_pass, e_fail = e_values(k_pass, i)[0], e_values(k_fail, i)[1]
        verdict = "PASS" if e_pass >= 1.0 / alpha else "FAIL" if e_fail >= 1.0 / alpha else None
        if verdict:
            return SeedTest(alpha=alpha, n=n, successes=total, verdict=verdict, e_pass=e_pass, e_fail=e_fail,
                            decided_at=i, decided_successes=k_pass if verdict == "PASS" else k_fail,
                            more_to_pass=None, more_to_fail=None)
    e_pass, e_fail = e_values(k_pass, n)[0], e_values(k_fail, n)[1]
    return SeedTest(alpha=alpha, n=n, successes=total, verdict="INCONCLUSIVE", e_pass=e_pass, e_fail=e_fail,
                    decided_at=None, decided_successes=None, more_to_pass=more_to_decide(k_pass, n, "PASS", alpha),
                    more_to_fail=more_to_decide(k_fail, n, "FAIL", alpha))


def exact_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson interval of a success rate: the achievable reading's 'k of n' beside it."""
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence, method="exact")
    return float(ci.low), float(ci.high)


def achievable(k: int, n: int) -> str:
    """An existence proof shown as a rate, never a verdict."""
    if n == 0:
        return ""
    low, high = exact_interval(k, n)
    return f"{k} of {n} seeds, exact 95% interval {low:.0%}-{high:.0%}"
