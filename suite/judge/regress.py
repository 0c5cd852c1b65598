"""Regression verdicts: a candidate router against the original router and the baselines, cell by
cell, paired by seed (same seed, same data streams, same initial weights outside the router).

Per metric, the paired differences candidate - reference (oriented so that positive is better)
get a 95% Student t interval over seeds (a single seed: the point). The metric's verdict:
  SAME          the whole interval lies within +-margin (no difference that matters);
  BETTER        the interval lies above 0 (and not within the margin);
  WORSE         the interval lies below 0 (and not within the margin);
  INCONCLUSIVE  otherwise (it straddles 0 and leaves the margin).
Margins: accuracy 0.01, usage 0.01, executed MACs 1% and latency 10% of the reference's mean.

Overall, against the original router (as `asv compare` treats a slower benchmark):
  WORSE         accuracy WORSE on any cell the original router solves (mean accuracy >= 0.9), or
                executed MACs WORSE on any cell where accuracy is not BETTER;
  INCONCLUSIVE  not WORSE, but on some cell the seeds cannot tell: accuracy INCONCLUSIVE where the
                original router solves the task, or executed MACs INCONCLUSIVE;
  BETTER        none of the above, and on some cell MACs BETTER with accuracy SAME or BETTER, or
                accuracy BETTER with MACs SAME or BETTER;
  SAME          otherwise.
Exit code: 1 when WORSE, else 0 (INCONCLUSIVE is not shown to be worse; read the table).
"""
from __future__ import annotations

import json
import math

import pandas as pd

from suite.judge.stats import t_interval
from suite.schema.rows import ok_rows

#: metric -> (higher is better, margin, margin is relative to the reference's mean)
METRICS = {"accuracy": (True, 0.01, False), "usage": (False, 0.01, False),
           "macs_forward_executed": (False, 0.01, True), "latency_ms_model": (False, 0.10, True)}
SOLVED = 0.9
CELL = ["task", "distance"]


def metric_verdict(diffs: list[float], margin: float) -> tuple[float, float, float, str]:
    """(mean, low, high, verdict) of oriented paired differences (positive = candidate better)."""
    diffs = [d for d in diffs if not math.isnan(d)]
    if not diffs:
        return math.nan, math.nan, math.nan, "INCONCLUSIVE"
    mean = sum(diffs) / len(diffs)
    low, high = t_interval(diffs)
    if -margin <= low and high <= margin:
        return mean, low, high, "SAME"
    if low > 0:
        return mean, low, high, "BETTER"
    if high < 0:
        return mean, low, high, "WORSE"
    return mean, low, high, "INCONCLUSIVE"


def compare(candidate: pd.DataFrame, reference: pd.DataFrame, against: str) -> pd.DataFrame:
    """One row per (task, distance, metric): the candidate against one reference, paired by seed."""
    out = []
    for (task, distance), cand in candidate.groupby(CELL, sort=True):
        ref = reference[(reference["task"] == task) & (reference["distance"] == distance)]
        pairs = cand.merge(ref, on="seed", suffixes=("", "_ref"))
        for metric, (higher, margin, relative) in METRICS.items():
            if metric not in pairs or pairs.empty:
                continue
            sign = 1.0 if higher else -1.0
            ref_mean = float(pairs[f"{metric}_ref"].mean())
            m = margin * abs(ref_mean) if relative else margin
            diffs = (sign * (pairs[metric] - pairs[f"{metric}_ref"])).astype(float).tolist()
            mean, low, high, verdict = metric_verdict(diffs, m)
            out.append({"task": task, "distance": int(distance), "against": against, "metric": metric,
                        "candidate": float(pairs[metric].mean()), "reference": ref_mean,
                        "difference": sign * mean, "low": sign * (low if sign > 0 else high),
                        "high": sign * (high if sign > 0 else low), "n_seeds": len(pairs), "verdict": verdict,
                        "reference_solves": bool(pairs["accuracy_ref"].mean() >= SOLVED)})
    return pd.DataFrame(out)


def overall(table: pd.DataFrame, against: str = "gumbel") -> tuple[str, list[str]]:
    """The overall verdict against the original router, and the reasons, by the rule above."""
    t = table[table["against"] == against]
    reasons, better, unsure = [], [], []
    for (task, distance), g in t.groupby(CELL, sort=True):
        v = dict(zip(g["metric"], g["verdict"]))
        acc, macs = v.get("accuracy", "INCONCLUSIVE"), v.get("macs_forward_executed", "INCONCLUSIVE")
        where = f"{task} d={distance}"
        if acc == "WORSE" and bool(g["reference_solves"].iloc[0]):
            reasons.append(f"{where}: accuracy WORSE where the original router solves the task")
        if macs == "WORSE" and acc != "BETTER":
            reasons.append(f"{where}: executed MACs WORSE without better accuracy")
        if (macs == "BETTER" and acc in ("SAME", "BETTER")) or (acc == "BETTER" and macs in ("SAME", "BETTER")):
            better.append(where)
        if acc == "INCONCLUSIVE" and bool(g["reference_solves"].iloc[0]):
            unsure.append(f"{where}: accuracy INCONCLUSIVE where the original router solves the task")
        if macs == "INCONCLUSIVE" and acc != "BETTER":
            unsure.append(f"{where}: executed MACs INCONCLUSIVE")
    if reasons:
        return "WORSE", reasons
    if unsure:
        return "INCONCLUSIVE", unsure
    if better:
        return "BETTER", [f"{w}: better at no loss" for w in better]
    return "SAME", ["no difference beyond the margins"]


ORIGINAL = "gumbel"


def series(runs: pd.DataFrame, router: str, router_kwargs: dict) -> dict[str, pd.DataFrame]:
    """Rows of the candidate and of each reference, by model and router."""
    rows = ok_rows(runs)
    kwargs = rows["router_kwargs"].fillna("{}").replace("", "{}") if "router_kwargs" in rows else "{}"
    routers = rows["router"].fillna(ORIGINAL) if "router" in rows else ORIGINAL
    routed = rows["model"] == "routed"
    want = json.dumps(router_kwargs, sort_keys=True)
    return {"candidate": rows[routed & (routers == router) & (kwargs == want)],
            "gumbel": rows[routed & (routers == ORIGINAL) & (kwargs == "{}")],
            "attn": rows[rows["model"] == "attn"], "conv": rows[rows["model"] == "conv"]}
