"""One claim's verdict as a typed record: what claims.csv holds and REPORT.md renders.

Every row states the method, alpha, n, the statistic and why it stopped; when INCONCLUSIVE, how
many more agreeing seeds would decide it. The magnitude (mean and a bootstrap interval of the
first check's metric) and the achievable rate stand beside the verdict and never decide it.
"""
from __future__ import annotations

from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict

VERDICTS = ("PASS", "FAIL", "INCONCLUSIVE", "NOT-RUN")
Verdict = Literal["PASS", "FAIL", "INCONCLUSIVE", "NOT-RUN"]
#: how a verdict was reached: a test on seeds, a contrast of two cells' seeds, or arithmetic
Decided = Literal["seeds", "contrast", "arithmetic", "not-run"]


class ClaimVerdict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    claim_id: str
    source: str
    claim: str
    published: str
    comparator: str            # what one seed must meet
    reading: str               # the registry's reading (typical or contrast)
    verdict: Verdict
    decided_by: Decided
    method: str = ""
    alpha: float | None = None
    n_seeds: int = 0
    successes: int = 0         # seeds meeting every check (of the worst cell)
    statistic: str = ""
    stopped: str = ""          # why the test stopped where it did
    more_to_decide: str = ""   # INCONCLUSIVE: how many more agreeing seeds would decide it
    achievable: str = ""       # "k of n seeds, exact 95% interval lo-hi": an existence proof, not a verdict
    seed_success_low: float | None = None
    seed_success_high: float | None = None
    seed_success: str = ""     # the registry's `success` check and 'every check', as rates
    measured: float | None = None   # magnitude: mean of the first check's metric
    low: float | None = None
    high: float | None = None
    interval: str = ""
    details: str = ""          # every check: mean [interval], seeds meeting it
    note: str = ""
    runs: str = ""             # the run folders the seeds came from


COLUMNS = list(ClaimVerdict.model_fields)


def frame(verdicts: list[ClaimVerdict]) -> pd.DataFrame:
    """claims.csv's table: one row per claim, in the registry's order."""
    return pd.DataFrame([v.model_dump() for v in verdicts], columns=COLUMNS)
