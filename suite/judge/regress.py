"""Regression verdicts: a candidate router against the original router and the baselines, task by
task, on the same seeds (same data streams, same initial weights outside the router).

Seed success decides (seed outcomes are bimodal: a seed solves the task or collapses). A seed
succeeds when its held-out test accuracy is >= 0.98, the registry's reading of a published "100%"
(claims.md); a candidate cell that failed (an exception, a plugin's exit) is a failed seed. Per
task and reference, k/n candidate seeds against j/m reference seeds (suite.judge.equivalence):
  WORSE / BETTER  one-sided Fisher exact test, p <= 0.05;
  SAME            equivalence shown by two one-sided tests: the 90% interval of the difference in
                  success rates lies inside +-0.25;
  INCONCLUSIVE    otherwise, with how many more seeds per side, at the observed rates, would decide.
Accuracy and usage are described beside it (mean and bootstrap interval, suite.judge.stats), never
deciding it. Cost is executed forward MACs, as before: paired differences by seed with a 95% t
interval, SAME within 1% of the reference's mean, BETTER / WORSE beyond 0 on that side, else
INCONCLUSIVE (latency, 10%, is shown and decides nothing).

Every difference is candidate minus reference: a positive success or accuracy difference is
the candidate doing better, a positive cost difference the candidate costing more.
A candidate cell that never attends (usage 0) or always attends (usage 1) is flagged degenerate
beside its task; it decides nothing by itself.

Overall, against the original router (as `asv compare` treats a slower benchmark):
  WORSE         a candidate cell failed (raised, exited, its worker died) where the reference's
                cell of the same seed trained; or seed success WORSE on any task, or executed
                MACs WORSE on a task where seed success is not BETTER; or no candidate cell at all;
  INCONCLUSIVE  not WORSE, but on some task the seeds cannot tell: seed success INCONCLUSIVE, or
                executed MACs INCONCLUSIVE where seed success is not BETTER;
  BETTER        none of the above, and on some task MACs BETTER with success SAME or BETTER, or
                success BETTER with MACs SAME or BETTER;
  SAME          otherwise.
Exit code: 1 when WORSE, else 0 (INCONCLUSIVE is not shown to be worse; read the table).
"""
from __future__ import annotations

import json
import math

import pandas as pd
from pydantic import BaseModel, ConfigDict

from suite.judge.equivalence import SuccessComparison, compare_success
from suite.judge.stats import interval, t_interval
from suite.schema.rows import ok_rows

#: a seed solves a task at this held-out accuracy: the registry's reading of "100%" (claims.md)
SOLVED = 0.98
#: cost metric -> margin relative to the reference's mean (only executed MACs enter the overall verdict)
COSTS = {"macs_forward_executed": 0.01, "latency_ms_model": 0.10}
CELL = ["task", "distance"]
ORIGINAL = "gumbel"
STRICT = ConfigDict(frozen=True, extra="forbid")


class Magnitude(BaseModel):
    """A metric over one side's seeds: description beside the verdict."""
    model_config = STRICT
    mean: float
    low: float
    high: float
    kind: str

    def text(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


class FailedCell(BaseModel):
    """A candidate cell that produced no result, and whether the reference's cell of its seed did."""
    model_config = STRICT
    seed: int
    error: str
    reference_ok: bool


class CostComparison(BaseModel):
    """Paired differences candidate - reference of one cost metric."""
    model_config = STRICT
    metric: str
    candidate: float
    reference: float
    difference: float
    low: float
    high: float
    n_seeds: int
    verdict: str


class TaskComparison(BaseModel):
    """One task against one reference: the record regress.csv holds and REGRESS.md renders."""
    model_config = STRICT
    task: str
    distance: int
    against: str
    success: SuccessComparison
    accuracy: Magnitude | None
    ref_accuracy: Magnitude | None
    usage: Magnitude | None
    ref_usage: Magnitude | None
    costs: dict[str, CostComparison]
    failed: list[FailedCell] = []
    never: int = 0               # candidate seeds with usage exactly 0 (the router never attends)
    always: int = 0              # ... exactly 1 (it always attends)

    def degenerate(self) -> str:
        """'' or what makes the candidate's routing degenerate here, in seeds."""
        n = self.success.n - len(self.failed)
        parts = [f"never attends in {k}/{n} seeds" for k in [self.never] if k] + \
                [f"always attends in {k}/{n} seeds" for k in [self.always] if k]
        return "; ".join(parts)

    def cost(self, metric: str) -> str:
        return self.costs[metric].verdict if metric in self.costs else "INCONCLUSIVE"

    def row(self) -> dict:
        s = self.success
        out = {"task": self.task, "distance": self.distance, "against": self.against,
               "successes": s.successes, "n_seeds": s.n, "ref_successes": s.ref_successes, "ref_n_seeds": s.ref_n,
               "success_difference": s.difference, "success_low": s.low, "success_high": s.high,
               "p_worse": s.p_worse, "p_better": s.p_better, "success_verdict": s.verdict,
               "more_seeds": s.more, "more_verdict": s.more_verdict, "failed_cells": len(self.failed),
               "degenerate": self.degenerate()}
        for name in ("accuracy", "ref_accuracy", "usage", "ref_usage"):
            m = getattr(self, name)
            out.update({f"{name}_mean": m.mean if m else math.nan, f"{name}_low": m.low if m else math.nan,
                        f"{name}_high": m.high if m else math.nan})
        for metric, c in self.costs.items():
            out.update({f"{metric}_difference": c.difference, f"{metric}_low": c.low, f"{metric}_high": c.high,
                        f"{metric}_verdict": c.verdict})
        return out


def metric_verdict(diffs: list[float], margin: float, lower_better: bool = False) -> tuple[float, float, float, str]:
    """(mean, low, high, verdict) of paired differences candidate - reference; BETTER when the
    interval lies above 0 (below 0 for a cost: `lower_better`), SAME within +-margin."""
    diffs = [d for d in diffs if not math.isnan(d)]
    if not diffs:
        return math.nan, math.nan, math.nan, "INCONCLUSIVE"
    mean = sum(diffs) / len(diffs)
    low, high = t_interval(diffs)
    if -margin <= low and high <= margin:
        return mean, low, high, "SAME"
    if low > 0:
        return mean, low, high, "WORSE" if lower_better else "BETTER"
    if high < 0:
        return mean, low, high, "BETTER" if lower_better else "WORSE"
    return mean, low, high, "INCONCLUSIVE"


def _magnitude(metric: str, df: pd.DataFrame) -> Magnitude | None:
    if metric not in df or df.empty:
        return None
    i = interval(metric, df[metric].astype(float))
    return None if i is None else Magnitude(mean=i.mean, low=i.low, high=i.high, kind=i.kind)


def _cost(metric: str, pairs: pd.DataFrame) -> CostComparison:
    margin = COSTS[metric] * abs(float(pairs[f"{metric}_ref"].mean()))
    diffs = (pairs[metric] - pairs[f"{metric}_ref"]).astype(float).tolist()
    mean, low, high, verdict = metric_verdict(diffs, margin, lower_better=True)
    return CostComparison(metric=metric, candidate=float(pairs[metric].mean()),
                          reference=float(pairs[f"{metric}_ref"].mean()), difference=mean, low=low, high=high,
                          n_seeds=len(pairs), verdict=verdict)


def compare(candidate: pd.DataFrame, reference: pd.DataFrame, against: str,
            failed: pd.DataFrame | None = None) -> list[TaskComparison]:
    """One record per (task, distance): the candidate's ok rows (and its failed cells, each a failed
    seed) against one reference's ok rows."""
    failed = failed if failed is not None else candidate.iloc[:0]
    out = []
    cells = sorted({(t, int(d)) for df in (candidate, failed) for t, d in zip(df["task"], df["distance"])})
    for task, distance in cells:
        at = lambda df: df[(df["task"] == task) & (df["distance"] == distance)]
        cand, ref, lost = at(candidate), at(reference), at(failed)
        lost = lost[~lost["seed"].isin(cand["seed"])].drop_duplicates("seed")
        errors = lost["error"] if "error" in lost else pd.Series("", index=lost.index)
        failures = [FailedCell(seed=int(sd), error=str(e) if isinstance(e, str) else "(no error recorded)",
                               reference_ok=bool((ref["seed"] == sd).any())) for sd, e in zip(lost["seed"], errors)]
        usage = cand["usage"].astype(float) if "usage" in cand else pd.Series(dtype=float)
        k = int((cand["accuracy"].astype(float) >= SOLVED).sum())
        j = int((ref["accuracy"].astype(float) >= SOLVED).sum())
        pairs = cand.merge(ref, on="seed", suffixes=("", "_ref"))
        costs = {m: _cost(m, pairs) for m in COSTS if m in pairs and not pairs.empty}
        out.append(TaskComparison(task=task, distance=distance, against=against,
                                  success=compare_success(k, len(cand) + len(lost), j, len(ref)),
                                  accuracy=_magnitude("accuracy", cand), ref_accuracy=_magnitude("accuracy", ref),
                                  usage=_magnitude("usage", cand), ref_usage=_magnitude("usage", ref), costs=costs,
                                  failed=failures, never=int((usage == 0).sum()), always=int((usage == 1).sum())))
    return out


def table(comparisons: list[TaskComparison], verdict: str) -> pd.DataFrame:
    """regress.csv: one row per (task, distance, reference), with the overall verdict."""
    df = pd.DataFrame([c.row() for c in comparisons]).assign(overall=verdict)
    return df.astype({"more_seeds": "Int64"}) if not df.empty else df


def overall(comparisons: list[TaskComparison], against: str = ORIGINAL) -> tuple[str, list[str]]:
    """The overall verdict against the original router, and the reasons with their numbers."""
    reasons, better, unsure = [], [], []
    mine = [c for c in comparisons if c.against == against]
    if not mine:
        return "WORSE", [f"no candidate cell to compare with {against}: nothing trained or failed"]
    for c in mine:
        s, macs, where = c.success, c.cost("macs_forward_executed"), f"{c.task} d={c.distance}"
        m = c.costs.get("macs_forward_executed")
        cost = (f"executed MACs {m.candidate:.4g} vs {m.reference:.4g}, difference {m.difference:+.4g} "
                f"[{m.low:+.4g}, {m.high:+.4g}]" if m else "executed MACs not measured")
        lost = [f for f in c.failed if f.reference_ok]
        if lost:
            reasons.append(f"{where}: {len(lost)} candidate cell(s) failed where {against}'s trained (seed "
                           f"{lost[0].seed}: {lost[0].error})")
        if s.verdict == "WORSE":
            reasons.append(f"{where}: seed success WORSE ({s.counts()} seeds solve it, one-sided p = {s.p_worse:.2g})")
        if macs == "WORSE" and s.verdict != "BETTER":
            reasons.append(f"{where}: executed MACs WORSE without better seed success ({cost}; seed success "
                           f"{s.verdict}, {s.counts()})")
        if (macs == "BETTER" and s.verdict in ("SAME", "BETTER")) or (s.verdict == "BETTER" and macs in ("SAME", "BETTER")):
            better.append(f"{where}: better at no loss (seed success {s.verdict}, {s.counts()}, p better = "
                          f"{s.p_better:.2g}; {cost}, {macs})")
        if s.verdict == "INCONCLUSIVE":
            unsure.append(f"{where}: seed success INCONCLUSIVE ({s.counts()}); {s.more_text()}")
        if macs == "INCONCLUSIVE" and s.verdict != "BETTER":
            unsure.append(f"{where}: executed MACs INCONCLUSIVE ({cost})")
    if reasons:
        return "WORSE", reasons
    if unsure:
        return "INCONCLUSIVE", unsure
    if better:
        return "BETTER", better
    return "SAME", ["no difference beyond the margins: " + "; ".join(
        f"{c.task} d={c.distance} seed success {c.success.counts()}, difference {c.success.difference:+.2f} "
        f"[{c.success.low:+.2f}, {c.success.high:+.2f}]" for c in mine)]


def _router(rows: pd.DataFrame, router: str, router_kwargs: dict) -> pd.Series:
    kwargs = rows["router_kwargs"].fillna("{}").replace("", "{}") if "router_kwargs" in rows else "{}"
    routers = rows["router"].fillna(ORIGINAL) if "router" in rows else ORIGINAL
    return (rows["model"] == "routed") & (routers == router) & (kwargs == json.dumps(router_kwargs, sort_keys=True))


def series(runs: pd.DataFrame, router: str, router_kwargs: dict) -> dict[str, pd.DataFrame]:
    """Ok rows of the candidate and of each reference, by model and router."""
    rows = ok_rows(runs)
    return {"candidate": rows[_router(rows, router, router_kwargs)], "gumbel": rows[_router(rows, ORIGINAL, {})],
            "attn": rows[rows["model"] == "attn"], "conv": rows[rows["model"] == "conv"]}


def failed_candidate(runs: pd.DataFrame, router: str, router_kwargs: dict) -> pd.DataFrame:
    """The candidate's failed cells: a result against it (design.md), never dropped."""
    if runs.empty or "status" not in runs:
        return runs.iloc[:0]
    rows = runs[runs["status"] == "failed"]
    return rows[_router(rows, router, router_kwargs)]
