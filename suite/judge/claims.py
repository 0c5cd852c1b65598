"""The checker: a run's rows + the claims registry -> one verdict per claim, read two ways.

Typical reading (claims.md): PASS when the mean meets the comparator and the 95% interval
(suite.judge.stats.interval) does not cross the threshold; FAIL when the interval lies entirely
on the wrong side; otherwise INCONCLUSIVE. With fewer than 3 seeds only accuracy has an interval
(Wilson over the test examples); other metrics are INCONCLUSIVE: a point value is not evidence.
Achievable reading: PASS when at least one seed of every cell meets every check, FAIL when none
does; the seed success rate comes with its Wilson interval. The claim's `reading` picks which of
the two is its verdict. NOT-RUN when the run holds no faithful cell of the claim.

Also INCONCLUSIVE: a FAIL that a profile's epoch cap may have caused, a claim over several cells
of which some are missing, any claim the run's profile may not decide, a typical PASS (or an
achievable FAIL) over cells with failed seeds, which might have gone the other way.
The checker refuses what it cannot count: a cell stored twice, or an ok row without a value.
"""
from __future__ import annotations

import pandas as pd

from suite.errors import ConfigError
from suite.judge.registry import DERIVED, REGISTRY, Check, Claim, load_registry
from suite.judge.stats import MIN_SEEDS_FOR_SEED_INTERVAL, interval, wilson
from suite.schema.rows import faithful_rows, ok_rows

__all__ = ["REGISTRY", "Check", "Claim", "load_registry", "check_claims", "stopped_by_cut", "CELL_KEYS"]

COMBINE_ORDER = {"FAIL": 0, "INCONCLUSIVE": 1, "NOT-RUN": 2, "PASS": 3}
CELL_KEYS = ["task", "distance", "model", "lambda_target", "protocol"]


def _line(index) -> str:
    """Where a row sits in runs.csv (the header is line 1)."""
    return f"runs.csv line {int(index) + 2}"


def _refuse_duplicates(runs: pd.DataFrame) -> None:
    """A cell stored twice would count its seed twice and narrow the interval."""
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


def _failed_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """Faithful cells that stopped with an error: never seeds, but they keep a claim from passing."""
    if runs.empty or "status" not in runs.columns:
        return runs.iloc[:0]
    failed = runs[runs["status"] == "failed"]
    return failed[failed["faithful_model"].fillna(False).astype(bool)]


def _matching(runs: pd.DataFrame, claim: Claim) -> pd.DataFrame:
    if runs.empty:
        return runs
    mask = pd.Series(True, index=runs.index)
    for key, want in claim.select.columns().items():
        if key not in runs.columns:
            raise ConfigError(f"claim {claim.id}: runs.csv has no column '{key}'")
        mask &= runs[key].isin(want)
    return runs[mask]


def _column(rows: pd.DataFrame, metric: str) -> pd.Series | None:
    if metric in DERIVED:
        return DERIVED[metric](rows) if "usage" in rows.columns else None
    return rows[metric].astype(float) if metric in rows.columns else None


def _measured(faithful: pd.DataFrame, registry: list[Claim]) -> set[str]:
    """Metrics the run measured at all; one that is empty everywhere is 'not measured', not an error."""
    metrics = {ch.metric for c in registry for ch in c.checks + ([c.success] if c.success else [])}
    return {m for m in metrics if (col := _column(faithful, m)) is not None and col.notna().any()}


def _refuse_nan(rows: pd.DataFrame, claim: Claim, measured: set[str]) -> None:
    for ch in claim.checks:
        if ch.metric in measured and (empty := _column(rows, ch.metric).isna()).any():
            raise ConfigError(f"{_line(empty.idxmax())}: {ch.metric} is empty or NaN in an ok row "
                              f"(claim {claim.id}); a finished cell must have every metric the run measured")


def stopped_by_cut(g: pd.DataFrame) -> bool:
    """Did a profile's epoch cap end any seed of this cell before it solved the task?"""
    if "epoch_cap" not in g or g["epoch_cap"].isna().all():
        return False
    hit = g["epoch_cap"].notna() & (g["epochs_phase1"] >= g["epoch_cap"]) & ~g["phase2_ran"].astype(bool)
    return bool((hit & (g["val_accuracy"] <= 0.99)).any())


def _judge(g: pd.DataFrame, ch: Check, measured: set[str]):
    """(interval or None, typical verdict, note) of one check on one cell."""
    if ch.metric not in measured:
        return None, "NOT-RUN", ""
    acc = ch.metric == "accuracy"
    m = interval(ch.metric, _column(g, ch.metric), g["test_correct"] if acc else None, g["test_total"] if acc else None)
    verdict = ch.decide(m.mean, m.low, m.high)
    if not acc and m.n < MIN_SEEDS_FOR_SEED_INTERVAL and verdict != "INCONCLUSIVE":
        return m, "INCONCLUSIVE", f"{ch.metric}: {m.n} seed(s), fewer than {MIN_SEEDS_FOR_SEED_INTERVAL} (no interval)"
    if verdict == "FAIL" and stopped_by_cut(g):
        return m, "INCONCLUSIVE", f"{ch.metric}: a seed was stopped by the profile's epoch cap before solving"
    return m, verdict, ""


def _seeds_meeting(g: pd.DataFrame, checks: list[Check]) -> int:
    """How many seeds of one cell meet every check (the achievable reading)."""
    held = pd.Series(True, index=g.index)
    for ch in checks:
        held &= _column(g, ch.metric).map(ch.holds)
    return int(held.sum())


def _achievable(cells: list, claim: Claim, measured: set[str]) -> tuple[str, int, int]:
    """(verdict, seeds meeting every check, seeds) of the cell with the lowest success rate."""
    if any(ch.metric not in measured for ch in claim.checks):
        return "NOT-RUN", 0, 0
    rates = [(_seeds_meeting(g, claim.checks), len(g), g) for _, g, _ in cells]
    k, n, g = min(rates, key=lambda r: r[0] / r[1])
    if k:
        return "PASS", k, n
    return ("INCONCLUSIVE" if stopped_by_cut(g) else "FAIL"), k, n


def _missing_cells(rows: pd.DataFrame, claim: Claim) -> list[str]:
    """Listed select values (e.g. distance [254, 510]) with no row: the claim needs every one."""
    out = []
    for key, want in claim.select.columns().items():
        if len(want) > 1:
            out += [f"{key}={v}" for v in want if not (rows[key] == v).any()]
    return out


def _seed_success(g: pd.DataFrame, claim: Claim) -> str:
    out = []
    if claim.success is not None:
        s = claim.success
        out.append(f"{_seeds_meeting(g, [s])}/{len(g)} seeds {s.metric} {s.comparator} {s.threshold:g}")
    if len(claim.checks) > 1 and all(ch.metric in g.columns for ch in claim.checks):
        out.append(f"{_seeds_meeting(g, claim.checks)}/{len(g)} seeds meet every check")
    return "; ".join(out)


def _not_run(base: dict, failed: int) -> dict:
    verdict, note = ("INCONCLUSIVE", f"{failed} failed cell(s), no seed finished") if failed else \
        ("NOT-RUN", "no faithful cell of this claim in the run")
    return {**base, "measured": None, "low": None, "high": None, "interval": "", "n_seeds": 0, "seed_success": "",
            "typical": verdict, "achievable": verdict, "achievable_seeds": "", "seed_success_low": None,
            "seed_success_high": None, "verdict": verdict, "details": "", "note": note}


def _check_claim(c: Claim, faithful: pd.DataFrame, failed_all: pd.DataFrame, profile: dict, measured: set[str]) -> dict:
    rows = _matching(faithful, c)
    failed = len(_matching(failed_all, c))
    base = {"claim_id": c.id, "source": c.source, "claim": c.claim, "published": c.published,
            "comparator": " and ".join(ch.text() for ch in c.checks), "reading": c.reading}
    if rows.empty:
        return _not_run(base, failed)
    _refuse_nan(rows, c, measured)
    cells = []
    for _, g in rows.groupby(CELL_KEYS, sort=True):
        checks = [(ch, *_judge(g, ch, measured)) for ch in c.checks]
        verdicts = [v for _, _, v, _ in checks]
        verdict = min(verdicts, key=COMBINE_ORDER.get)
        if "NOT-RUN" in verdicts and "FAIL" not in verdicts:
            verdict = "NOT-RUN"
        cells.append((verdict, g, checks))
    typical, g, checks = min(cells, key=lambda x: COMBINE_ORDER[x[0]])
    achievable, k, n = _achievable(cells, c, measured)
    notes = [note for _, _, _, note in checks if note]
    missing = _missing_cells(rows, c)
    if missing:
        typical = "INCONCLUSIVE" if typical != "FAIL" else typical
        achievable = "INCONCLUSIVE" if achievable == "PASS" else achievable
        notes.append(f"cells not in this run: {', '.join(missing)}")
    if failed:
        typical = "INCONCLUSIVE" if typical == "PASS" else typical
        achievable = "INCONCLUSIVE" if achievable == "FAIL" else achievable
        notes.append(f"{failed} failed cell(s)")
    if profile.get("name") not in c.profiles or not profile.get("decides_claims", True):
        typical = "INCONCLUSIVE" if typical != "NOT-RUN" else typical
        achievable = "INCONCLUSIVE" if achievable != "NOT-RUN" else achievable
        if typical != "NOT-RUN":
            notes.append(f"profile '{profile.get('name')}' cannot decide this claim "
                         f"(decided by: {', '.join(c.profiles)})")
    unmeasured = [ch.metric for ch, m, _, _ in checks if m is None]
    if unmeasured:
        notes.append(f"not measured in this run: {', '.join(unmeasured)}")
    caps = sorted({int(x) for x in g["epoch_cap"].dropna()}) if "epoch_cap" in g else []
    if caps:
        notes.append(f"cut: epoch cap {caps} on the baseline / phase-1 budget")
    if len(cells) > 1:
        notes.append(f"{len(cells)} cells; the worst is shown (d={g['distance'].iloc[0]})")
    first = checks[0][1]
    low, high = wilson(k, n) if n else (None, None)
    details = "; ".join(f"{ch.text()}: " + ("not measured" if m is None else
                                             f"{m.mean:.4f} [{m.low:.4f}, {m.high:.4f}] {m.kind} -> {v}")
                        for ch, m, v, _ in checks)
    return {**base, "measured": None if first is None else first.mean, "low": None if first is None else first.low,
            "high": None if first is None else first.high, "interval": "" if first is None else first.kind,
            "n_seeds": int(g["seed"].nunique()), "seed_success": _seed_success(g, c), "typical": typical,
            "achievable": achievable, "achievable_seeds": f"{k}/{n}" if n else "", "seed_success_low": low,
            "seed_success_high": high, "verdict": typical if c.reading == "typical" else achievable,
            "details": details, "note": "; ".join(notes)}


COLUMNS = ["claim_id", "source", "claim", "published", "comparator", "measured", "low", "high", "interval", "n_seeds",
           "seed_success", "reading", "typical", "achievable", "achievable_seeds", "seed_success_low",
           "seed_success_high", "verdict", "details", "note"]


def check_claims(runs: pd.DataFrame, profile: dict, registry: list[Claim]) -> pd.DataFrame:
    """One row per claim (COLUMNS): both readings, the verdict its reading picks, the first check's
    measurement and interval, the seeds' success rate with its Wilson interval, notes."""
    _refuse_duplicates(runs)
    faithful = faithful_rows(runs)
    measured = _measured(faithful, registry)
    failed = _failed_rows(runs)
    return pd.DataFrame([_check_claim(c, faithful, failed, profile, measured) for c in registry], columns=COLUMNS)
