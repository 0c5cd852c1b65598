"""The claims registry (suite/data/claims.json) and the checker: rows -> verdicts.

Per cell (claims.md): PASS when the mean meets the comparator and the 95% interval does not
cross the threshold; FAIL when the interval lies entirely on the wrong side; otherwise
INCONCLUSIVE. NOT-RUN when the run holds no matching faithful cell. The interval is Student t
over seeds with >= 3 seeds; with fewer, Wilson over the pooled test examples for accuracy, and
other metrics (usage, savings) are INCONCLUSIVE: a point value is not evidence. Also
INCONCLUSIVE: a FAIL that a profile's epoch cap may have caused (a seed stopped by the cap
before solving), a claim over several cells of which some are missing, and any claim the
run's profile may not decide.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from suite.errors import ConfigError
from suite.judge.stats import MIN_SEEDS_FOR_SEED_INTERVAL, t_interval, wilson

REGISTRY = Path(__file__).resolve().parent.parent / "data" / "claims.json"
COMPARATORS = (">=", "<=", "within")
VERDICTS = ("PASS", "FAIL", "INCONCLUSIVE", "NOT-RUN")
CLAIM_KEYS = {"id", "source", "claim", "published", "select", "checks", "profiles", "reason", "success"}
CHECK_KEYS = {"metric", "comparator", "threshold", "tolerance"}
#: metrics derived from runs.csv columns
DERIVED = {"savings_notional": lambda df: 1.0 - df["usage"]}


@dataclass(frozen=True)
class Check:
    metric: str
    comparator: str
    threshold: float
    tolerance: float = 0.0

    def text(self) -> str:
        if self.comparator == "within":
            return f"{self.metric} within {self.threshold:g} +- {self.tolerance:g}"
        return f"{self.metric} {self.comparator} {self.threshold:g}"

    def decide(self, mean: float, low: float, high: float) -> str:
        t = self.threshold
        if self.comparator == ">=":
            return "PASS" if mean >= t and low >= t else "FAIL" if high < t else "INCONCLUSIVE"
        if self.comparator == "<=":
            return "PASS" if mean <= t and high <= t else "FAIL" if low > t else "INCONCLUSIVE"
        a, b = t - self.tolerance, t + self.tolerance
        return "PASS" if a <= low and high <= b else "FAIL" if high < a or low > b else "INCONCLUSIVE"


def _check(where: str, data: dict) -> Check:
    unknown = sorted(set(data) - CHECK_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}'; allowed: {', '.join(sorted(CHECK_KEYS))}")
    if data.get("comparator") not in COMPARATORS:
        raise ConfigError(f"{where}: unknown comparator '{data.get('comparator')}'; allowed: {', '.join(COMPARATORS)}")
    if data["comparator"] == "within" and "tolerance" not in data:
        raise ConfigError(f"{where}: comparator 'within' needs a tolerance")
    return Check(data["metric"], data["comparator"], float(data["threshold"]), float(data.get("tolerance", 0.0)))


def load_registry(path: Path = REGISTRY) -> list[dict]:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"claims file: cannot read {path} ({e})")
    claims = doc.get("claims") if isinstance(doc, dict) else None
    if not isinstance(claims, list):
        raise ConfigError(f"claims file: {path} has no 'claims' list")
    out, ids = [], set()
    for c in claims:
        where = f"claim {c.get('id', '?')}"
        unknown = sorted(set(c) - CLAIM_KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key '{unknown[0]}'; allowed: {', '.join(sorted(CLAIM_KEYS))}")
        for key in ("id", "source", "claim", "published", "select", "checks", "profiles"):
            if key not in c:
                raise ConfigError(f"{where}: missing key '{key}'")
        if c["id"] in ids:
            raise ConfigError(f"{where}: duplicate id")
        ids.add(c["id"])
        checks = [_check(f"{where} check {i}", x) for i, x in enumerate(c["checks"])]
        success = _check(f"{where} success", c["success"]) if "success" in c else None
        out.append({**c, "checks": checks, "success": success})
    return out


def _select(runs: pd.DataFrame, select: dict) -> pd.DataFrame:
    if runs.empty:
        return runs
    mask = runs["faithful_model"].astype(bool)
    for key, want in select.items():
        if key not in runs.columns:
            raise ConfigError(f"select: runs.csv has no column '{key}'")
        mask &= runs[key].isin(want if isinstance(want, list) else [want])
    return runs[mask]


def _measure(rows: pd.DataFrame, check: Check):
    """(mean, low, high, interval kind) of a check's metric over one cell's seeds, or None."""
    if check.metric in DERIVED:
        values = DERIVED[check.metric](rows)
    elif check.metric in rows.columns:
        values = rows[check.metric]
    else:
        return None
    values = values.dropna().astype(float).tolist()
    if not values:
        return None
    n = len(values)
    mean = sum(values) / n
    if n >= MIN_SEEDS_FOR_SEED_INTERVAL:
        low, high = t_interval(values)
        return mean, low, high, f"t over {n} seeds"
    if check.metric == "accuracy":
        k, total = int(rows["test_correct"].sum()), int(rows["test_total"].sum())
        low, high = wilson(k, total)
        return k / total, low, high, f"Wilson over {total} test examples ({n} seed{'s' if n > 1 else ''})"
    return mean, min(values), max(values), "point (1 seed)" if n == 1 else f"range over {n} seeds"


COMBINE_ORDER = {"FAIL": 0, "INCONCLUSIVE": 1, "NOT-RUN": 2, "PASS": 3}
CELL_KEYS = ["task", "distance", "model", "lambda_target", "protocol"]


def stopped_by_cut(g: pd.DataFrame) -> bool:
    """Did a profile's epoch cap end any seed of this cell before it solved the task?"""
    if "epoch_cap" not in g or g["epoch_cap"].isna().all():
        return False
    hit = g["epoch_cap"].notna() & (g["epochs_phase1"] >= g["epoch_cap"]) & ~g["phase2_ran"].astype(bool)
    return bool((hit & (g["val_accuracy"] <= 0.99)).any())


def _judge(g: pd.DataFrame, ch: Check):
    """(measurement or None, verdict, note) of one check on one cell."""
    m = _measure(g, ch)
    if m is None:
        return None, "NOT-RUN", ""
    verdict = ch.decide(*m[:3])
    n = g["seed"].nunique()
    if ch.metric != "accuracy" and n < MIN_SEEDS_FOR_SEED_INTERVAL and verdict != "INCONCLUSIVE":
        return m, "INCONCLUSIVE", f"{ch.metric}: {n} seed(s), fewer than {MIN_SEEDS_FOR_SEED_INTERVAL} (no interval)"
    if verdict == "FAIL" and stopped_by_cut(g):
        return m, "INCONCLUSIVE", f"{ch.metric}: a seed was stopped by the profile's epoch cap before solving"
    return m, verdict, ""


def _missing_cells(rows: pd.DataFrame, select: dict) -> list[str]:
    """Listed select values (e.g. distance [254, 510]) with no row: the claim needs every one."""
    out = []
    for key, want in select.items():
        if isinstance(want, list):
            out += [f"{key}={v}" for v in want if not (rows[key] == v).any()]
    return out


def check_claims(runs: pd.DataFrame, profile: dict, registry: list[dict]) -> pd.DataFrame:
    """One row per claim: verdict, measured value and interval of its first check, seeds, notes."""
    out = []
    for c in registry:
        rows = _select(runs, c["select"])
        base = {"claim_id": c["id"], "source": c["source"], "claim": c["claim"], "published": c["published"],
                "comparator": " and ".join(ch.text() for ch in c["checks"])}
        if rows.empty:
            out.append({**base, "measured": None, "low": None, "high": None, "interval": "", "n_seeds": 0,
                        "seed_success": "", "verdict": "NOT-RUN", "details": "",
                        "note": "no faithful cell of this claim in the run"})
            continue
        cells = []
        for _, g in rows.groupby(CELL_KEYS, sort=True):
            checks = [(ch, *_judge(g, ch)) for ch in c["checks"]]
            verdicts = [v for _, _, v, _ in checks]
            verdict = min(verdicts, key=COMBINE_ORDER.get)
            if "NOT-RUN" in verdicts and "FAIL" not in verdicts:
                verdict = "NOT-RUN"
            cells.append((verdict, g, checks))
        verdict, g, checks = min(cells, key=lambda x: COMBINE_ORDER[x[0]])
        notes = [note for _, _, _, note in checks if note]
        missing = _missing_cells(rows, c["select"])
        if missing and verdict != "FAIL":
            verdict = "INCONCLUSIVE"
            notes.append(f"cells not in this run: {', '.join(missing)}")
        if verdict != "NOT-RUN" and (profile.get("name") not in c["profiles"] or not profile.get("decides_claims", True)):
            notes.append(f"profile '{profile.get('name')}' cannot decide this claim (decided by: {', '.join(c['profiles'])})")
            verdict = "INCONCLUSIVE"
        unmeasured = [ch.metric for ch, m, _, _ in checks if m is None]
        if unmeasured:
            notes.append(f"not measured in this run: {', '.join(unmeasured)}")
        caps = sorted({int(x) for x in g["epoch_cap"].dropna()}) if "epoch_cap" in g else []
        if caps:
            notes.append(f"cut: epoch cap {caps} on the baseline / phase-1 budget")
        first = checks[0][1]
        success = []
        if c["success"] is not None:
            s = c["success"]
            vals = g[s.metric].astype(float)
            ok = int(sum(s.decide(v, v, v) == "PASS" for v in vals))
            success.append(f"{ok}/{len(vals)} seeds {s.metric} {s.comparator} {s.threshold:g}")
        if len(c["checks"]) > 1 and all(ch.metric in g.columns for ch in c["checks"]):
            every = sum(all(ch.decide(v, v, v) == "PASS" for ch, v in zip(c["checks"], seed))
                        for seed in zip(*(g[ch.metric].astype(float) for ch in c["checks"])))
            success.append(f"{every}/{len(g)} seeds meet every check")
        success = "; ".join(success)
        details = "; ".join(
            f"{ch.text()}: " + ("not measured" if m is None else f"{m[0]:.4f} [{m[1]:.4f}, {m[2]:.4f}] {m[3]} -> {v}")
            for ch, m, v, _ in checks)
        if len(cells) > 1:
            notes.append(f"{len(cells)} cells; the worst is shown (d={g['distance'].iloc[0]})")
        out.append({**base, "measured": None if first is None else first[0],
                    "low": None if first is None else first[1], "high": None if first is None else first[2],
                    "interval": "" if first is None else first[3], "n_seeds": int(g["seed"].nunique()),
                    "seed_success": success, "verdict": verdict, "details": details, "note": "; ".join(notes)})
    return pd.DataFrame(out)
