"""Which cells more seeds could still decide: what `--until-decided` adds seeds to.

A cell qualifies when a claim these rows may decide reads INCONCLUSIVE on seeds and that cell's
own seed test is still INCONCLUSIVE. Cells whose test already crossed are left alone (the
verdict is read along the seeds and stops at the first crossing, so more seeds cannot move it),
as are contrasts (a fixed sample: their seeds are never chosen after looking at them), claims
decided by arithmetic, and claims a mini profile cannot decide.
"""
from __future__ import annotations

import pandas as pd

from suite.judge.claims import CELL_KEYS, Rows, judge_claims, matching, seed_outcomes
from suite.judge.registry import Claim
from suite.judge.sequential import seed_test

CellKey = tuple  # (task, distance, model, lambda_target, protocol), as in CELL_KEYS


def cell_key(task: str, distance, model: str, lambda_target, protocol: str) -> CellKey:
    return str(task), int(distance), str(model), float(lambda_target), str(protocol)


def undecided_cells(runs: pd.DataFrame, registry: list[Claim], decides) -> dict[CellKey, list[str]]:
    """Cell key -> the ids of the undecided claims that would read more of its seeds."""
    out: dict[CellKey, list[str]] = {}
    if runs.empty:
        return out
    data = Rows(runs, decides, False)
    for claim, verdict in zip(registry, judge_claims(runs, registry, decides)):
        if verdict.verdict != "INCONCLUSIVE" or verdict.decided_by != "seeds" or not decides(claim):
            continue
        rows = matching(data.faithful, claim.select, claim.id)
        failed = matching(data.failed, claim.select, claim.id)
        for key, g in rows.groupby(CELL_KEYS, sort=True):
            f = failed[(failed[CELL_KEYS] == pd.Series(key, index=CELL_KEYS)).all(axis=1)] if len(failed) else failed
            if seed_test(seed_outcomes(g, f, claim.checks)).verdict == "INCONCLUSIVE":
                out.setdefault(cell_key(*key), []).append(claim.id)
    return out
