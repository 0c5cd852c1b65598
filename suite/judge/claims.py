"""The checker: rows + the claims registry -> one typed verdict per claim (claims.md).

A seed succeeds when it meets every check of the claim. The typical reading asks whether the
median run meets the claim: an anytime-valid test of the seed success rate against 1/2
(suite.judge.sequential), per cell; a claim over several cells (distance [254, 510]) PASSes only
when every cell does. A seed whose outcome is unknown (a failed cell; a failure a profile's epoch
cap may have caused) counts against whichever verdict it could overturn. A `contrast` claim
compares two cells' success rates (suite.judge.contrast). A claim with a `bound` FAILs by
arithmetic when no run of the architecture can meet it (suite.judge.bounds), whatever the seeds.
Beside every verdict: the magnitude (mean, bootstrap interval) and the achievable rate.

NOT-RUN when no faithful cell of the claim is there. A profile that may not decide the claim
(a mini profile, say) gives at most INCONCLUSIVE. The checker refuses what it cannot count: a
cell stored twice, or an ok row without a value.
"""
from __future__ import annotations

import pandas as pd

from suite.errors import ConfigError
from suite.judge import bounds
from suite.judge.contrast import contrast
from suite.judge.registry import DERIVED, REGISTRY, Check, Claim, Select, load_registry
from suite.judge.sequential import ALPHA, METHOD, achievable, exact_interval, seed_test
from suite.judge.stats import interval
from suite.judge.verdict import COLUMNS, ClaimVerdict, frame
from suite.schema.rows import faithful_rows, ok_rows

__all__ = ["REGISTRY", "Check", "Claim", "load_registry", "check_claims", "judge_claims", "stopped_by_cut",
           "CELL_KEYS", "COLUMNS"]

COMBINE_ORDER = {"FAIL": 0, "INCONCLUSIVE": 1, "NOT-RUN": 2, "PASS": 3}
CELL_KEYS = ["task", "distance", "model", "lambda_target", "protocol"]


def _line(index) -> str:
    """Where a row sits in runs.csv (the header is line 1)."""
    return f"runs.csv line {int(index) + 2}"


def refuse_duplicates(runs: pd.DataFrame) -> None:
    """A cell stored twice would count its seed twice."""
    if runs.empty:
        return
    same_seed = "task, distance, model, lambda, protocol and seed"
    for rows, keys, what in ((ok_rows(runs), ["config_hash"], "config_hash"),
                             (faithful_rows(runs), CELL_KEYS + ["seed"], same_seed)):
        dup = rows.duplicated(keys, keep="first")
        if dup.any():
            i = dup.idxmax()
            first = rows.index[(rows[keys] == rows.loc[i, keys]).all(axis=1)][0]
            raise ConfigError(f"{_line(i)}: duplicate cell (same {what} as line {int(first) + 2}); "
                              "a cell may be stored once")


def failed_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """Faithful cells that stopped with an error: seeds of unknown outcome."""
    if runs.empty or "status" not in runs.columns:
        return runs.iloc[:0]
    failed = runs[runs["status"] == "failed"]
    return failed[failed["faithful_model"].fillna(False).astype(bool)]


def matching(runs: pd.DataFrame, select: Select, claim_id: str) -> pd.DataFrame:
    if runs.empty:
        return runs
    mask = pd.Series(True, index=runs.index)
    for key, want in select.columns().items():
        if key not in runs.columns:
            raise ConfigError(f"claim {claim_id}: runs.csv has no column '{key}'")
        mask &= runs[key].isin(want)
    return runs[mask]


def _column(rows: pd.DataFrame, metric: str) -> pd.Series | None:
    if metric in DERIVED:
        return DERIVED[metric](rows) if "usage" in rows.columns else None
    return rows[metric].astype(float) if metric in rows.columns else None


def measured_metrics(faithful: pd.DataFrame, registry: list[Claim]) -> set[str]:
    """Metrics the rows measured at all; one empty everywhere is 'not measured', not an error."""
    metrics = {ch.metric for c in registry for ch in c.checks + ([c.success] if c.success else [])}
    return {m for m in metrics if (col := _column(faithful, m)) is not None and col.notna().any()}


def _refuse_nan(rows: pd.DataFrame, claim: Claim, measured: set[str]) -> None:
    for ch in claim.checks:
        if ch.metric in measured and (empty := _column(rows, ch.metric).isna()).any():
            raise ConfigError(f"{_line(empty.idxmax())}: {ch.metric} is empty or NaN in an ok row "
                              f"(claim {claim.id}); a finished cell must have every metric the run measured")


def _cut_rows(g: pd.DataFrame) -> pd.Series:
    """Seeds a profile's epoch cap ended before they solved the task."""
    if "epoch_cap" not in g or g["epoch_cap"].isna().all():
        return pd.Series(False, index=g.index)
    hit = g["epoch_cap"].notna() & (g["epochs_phase1"] >= g["epoch_cap"]) & ~g["phase2_ran"].astype(bool)
    return hit & (g["val_accuracy"] <= 0.99)


def stopped_by_cut(g: pd.DataFrame) -> bool:
    """Did a profile's epoch cap end any seed of this cell before it solved the task?"""
    return bool(_cut_rows(g).any())


def _meets(g: pd.DataFrame, checks: list[Check]) -> pd.Series:
    held = pd.Series(True, index=g.index)
    for ch in checks:
        held &= _column(g, ch.metric).map(ch.holds)
    return held


def seed_outcomes(g: pd.DataFrame, failed: pd.DataFrame, checks: list[Check]) -> list[bool | None]:
    """Seed outcomes in seed order: True / False, or None where unknown (a failed cell, or a
    failure the epoch cap may have caused)."""
    held, cut = _meets(g, checks), _cut_rows(g)
    by_seed = {int(s): (None if (not h and c) else bool(h)) for s, h, c in zip(g["seed"], held, cut)}
    for s in failed["seed"]:
        by_seed.setdefault(int(s), None)
    return [by_seed[s] for s in sorted(by_seed)]


def _seed_success(g: pd.DataFrame, claim: Claim) -> str:
    out = []
    if claim.success is not None:
        s = claim.success
        out.append(f"{int(_meets(g, [s]).sum())}/{len(g)} seeds {s.metric} {s.comparator} {s.threshold:g}")
    if len(claim.checks) > 1:
        out.append(f"{int(_meets(g, claim.checks).sum())}/{len(g)} seeds meet every check")
    return "; ".join(out)


def _details(g: pd.DataFrame, claim: Claim) -> str:
    parts = []
    for ch in claim.checks:
        acc = ch.metric == "accuracy"
        col = _column(g, ch.metric)
        m = None if col is None else interval(ch.metric, col, g["test_correct"] if acc else None,
                                              g["test_total"] if acc else None)
        if m is None:
            parts.append(f"{ch.text()}: not measured")
            continue
        parts.append(f"{ch.text()}: mean {m.mean:.4f} [{m.low:.4f}, {m.high:.4f}] {m.kind}; "
                     f"{int(_meets(g, [ch]).sum())}/{len(g)} seeds meet it")
    return "; ".join(parts)


def _base(c: Claim) -> dict:
    return {"claim_id": c.id, "source": c.source, "claim": c.claim, "published": c.published,
            "comparator": " and ".join(ch.text() for ch in c.checks), "reading": c.reading}


def _runs_of(rows: pd.DataFrame) -> str:
    return ", ".join(sorted(rows["run"].dropna().unique())) if "run" in rows else ""


class Rows:
    """What one judgement reads: the faithful ok rows, the failed faithful cells, the measured
    metrics, and whether the rows' profile may decide each claim."""

    def __init__(self, runs: pd.DataFrame, decides, arithmetic_without_rows: bool):
        refuse_duplicates(runs)
        self.faithful, self.failed = faithful_rows(runs), failed_rows(runs)
        self.decides = decides
        self.arithmetic_without_rows = arithmetic_without_rows
        self.measured: set[str] = set()


def _arithmetic(c: Claim, rows: pd.DataFrame) -> ClaimVerdict | None:
    found = bounds.impossible(c)
    if not found:
        return None
    b, threshold = min(found, key=lambda x: x[0].ceiling)
    extra = ""
    if not rows.empty:
        extra = f"; the seeds agree: {_details(rows, c)}"
    return ClaimVerdict(**_base(c), verdict="FAIL", decided_by="arithmetic",
                        method="arithmetic bound from the FLOP closed forms (ConvOnly executes the least any "
                               "routed model can)", n_seeds=int(rows["seed"].nunique()) if len(rows) else 0,
                        statistic=f"ceiling {b.ceiling:.4f} at T = {b.seq_len}", stopped="decided without seeds",
                        details=b.evidence(threshold) + extra, runs=_runs_of(rows))


def _typical(c: Claim, data: Rows) -> ClaimVerdict:
    rows = matching(data.faithful, c.select, c.id)
    failed = matching(data.failed, c.select, c.id)
    if (len(rows) or data.arithmetic_without_rows) and (v := _arithmetic(c, rows)) is not None:
        return v
    if rows.empty:
        verdict, note = ("INCONCLUSIVE", f"{len(failed)} failed cell(s), no seed finished") if len(failed) else \
            ("NOT-RUN", "no faithful cell of this claim")
        return ClaimVerdict(**_base(c), verdict=verdict, decided_by="not-run", note=note)
    _refuse_nan(rows, c, data.measured)
    notes = []
    unmeasured = [ch.metric for ch in c.checks if ch.metric not in data.measured]
    if unmeasured:
        return ClaimVerdict(**_base(c), verdict="NOT-RUN", decided_by="not-run", n_seeds=int(rows["seed"].nunique()),
                            note=f"not measured: {', '.join(unmeasured)}", runs=_runs_of(rows))
    cells = []
    for key, g in rows.groupby(CELL_KEYS, sort=True):
        f = failed[(failed[CELL_KEYS] == pd.Series(key, index=CELL_KEYS)).all(axis=1)] if len(failed) else failed
        cells.append((seed_test(seed_outcomes(g, f, c.checks)), g))
    test, g = min(cells, key=lambda x: (COMBINE_ORDER[x[0].verdict], x[0].successes / max(x[0].n, 1)))
    verdict = test.verdict
    missing = [f"{k}={v}" for k, want in c.select.columns().items() if len(want) > 1
               for v in want if not (rows[k] == v).any()]
    if missing:
        verdict = "INCONCLUSIVE" if verdict == "PASS" else verdict
        notes.append(f"cells not judged here: {', '.join(missing)}")
    if len(failed):
        notes.append(f"{len(failed)} failed cell(s) (outcome unknown)")
    if int(_cut_rows(rows).sum()):
        notes.append(f"{int(_cut_rows(rows).sum())} seed(s) stopped by the epoch cap before solving (outcome unknown)")
    if not data.decides(c):
        verdict = "INCONCLUSIVE"
        notes.append(f"these rows' profile cannot decide this claim (decided by: {', '.join(c.profiles)})")
    if len(cells) > 1:
        notes.append(f"{len(cells)} cells; the worst is shown (d={g['distance'].iloc[0]})")
    first = c.checks[0]
    acc = first.metric == "accuracy"
    m = interval(first.metric, _column(g, first.metric), g["test_correct"] if acc else None,
                 g["test_total"] if acc else None)
    k, n = test.successes, test.n
    low, high = exact_interval(k, n) if n else (None, None)
    return ClaimVerdict(**_base(c), verdict=verdict, decided_by="seeds", method=METHOD, alpha=test.alpha, n_seeds=n,
                        successes=k, statistic=test.statistic(), stopped=test.stopped(),
                        more_to_decide=test.more() if verdict == "INCONCLUSIVE" and data.decides(c) else "",
                        achievable=achievable(k, n), seed_success_low=low, seed_success_high=high,
                        seed_success=_seed_success(g, c), measured=m.mean, low=m.low, high=m.high, interval=m.kind,
                        details=_details(g, c), note="; ".join(notes), runs=_runs_of(rows))


def _contrast(c: Claim, data: Rows) -> ClaimVerdict:
    mine = matching(data.faithful, c.select, c.id)
    theirs = matching(data.faithful, c.against, c.id)
    if mine.empty or theirs.empty:
        side = "selected" if mine.empty else "'against'"
        return ClaimVerdict(**_base(c), verdict="NOT-RUN", decided_by="not-run",
                            note=f"no faithful cell of the {side} cells")
    k, n = int(_meets(mine, c.checks).sum()), len(mine)
    j, m = int(_meets(theirs, c.checks).sum()), len(theirs)
    t = contrast(k, n, j, m)
    verdict, notes = t.verdict, []
    if not data.decides(c):
        verdict = "INCONCLUSIVE"
        notes.append(f"these rows' profile cannot decide this claim (decided by: {', '.join(c.profiles)})")
    more = (f"{t.more} more seeds on each side, agreeing with the claim, would PASS it" if t.more else
            "more than 64 more seeds on each side") if verdict == "INCONCLUSIVE" else ""
    low, high = exact_interval(k, n)
    return ClaimVerdict(**_base(c), verdict=verdict, decided_by="contrast", method=t.method, alpha=t.alpha, n_seeds=n + m,
                        successes=k, statistic=t.statistic(), stopped="fixed sample: every seed of both cells",
                        more_to_decide=more, achievable=achievable(k, n), seed_success_low=low, seed_success_high=high,
                        seed_success=f"{k}/{n} seeds against {j}/{m} seeds meet every check",
                        details=f"selected: {_details(mine, c)}; against: {_details(theirs, c)}",
                        note="; ".join(notes), runs=_runs_of(pd.concat([mine, theirs])))


def judge_claims(runs: pd.DataFrame, registry: list[Claim], decides,
                 arithmetic_without_rows: bool = False) -> list[ClaimVerdict]:
    """One verdict per claim of `registry` over `runs`; `decides(claim)` says whether these rows'
    profile may decide it. A claim decided by arithmetic reads FAIL where the rows hold its cells,
    and everywhere with `arithmetic_without_rows` (the results-wide table); a run that never
    trained the cell reports it NOT-RUN rather than judge what it did not touch."""
    data = Rows(runs, decides, arithmetic_without_rows)
    data.measured = measured_metrics(data.faithful, registry)
    return [(_contrast if c.reading == "contrast" else _typical)(c, data) for c in registry]


def profile_decides(profile: dict):
    """A run's profile decides the claims that name it, unless it says it decides none."""
    return lambda c: profile.get("name") in c.profiles and profile.get("decides_claims", True)


def check_claims(runs: pd.DataFrame, profile: dict, registry: list[Claim]) -> pd.DataFrame:
    """claims.csv of one run: one row per claim (suite.judge.verdict.COLUMNS)."""
    return frame(judge_claims(runs, registry, profile_decides(profile)))


__all__ += ["ALPHA", "profile_decides"]
