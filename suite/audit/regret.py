"""Router regret: does the learned router beat the controls at equal or lower budget? Controls are
decision swaps of the same trained models and fixed routers trained from scratch, matched on task,
distance and tier (the row's `tier` column: a full-size fixed-router control is 'faithful')."""
from __future__ import annotations

import pandas as pd

from suite.audit.common import LEARNED, MARGIN, SCRATCH, SOLVED, SWAPS, epochs_trained, model_keys, router_of
from suite.judge.stats import t_interval
from suite.schema.rows import ok_rows

GROUP = ["task", "distance", "tier"]


def scratch_controls(runs: pd.DataFrame) -> pd.DataFrame:
    """Trained-from-scratch control cells (fixed routers) as control rows named 'trained: <router>'."""
    if runs.empty:
        return runs
    r = runs[(runs["model"] == "routed")].copy()
    r["router"] = [router_of(x) for x in r.to_dict("records")]
    r = r[r["router"].isin(SCRATCH)]
    r["control"] = "trained: " + r["router"]
    return r


#: how a regret interval is computed, as the report names it
INTERVAL = "paired t interval"


def regret_verdict(learned: float, control: float, low: float | None, high: float | None) -> str:
    """The verdict an interval of the paired regret (control − learned, per seed) can support. A
    learned router below SOLVED has solved nothing, so beating a control there says nothing about
    routing; an interval reaching across 0 (or beyond the TIE margin) decides nothing."""
    if learned < SOLVED:
        return "NEITHER SOLVES" if control < SOLVED else "CONTROL BETTER" if low is not None and low > 0 else \
            "UNDECIDED"
    if low is None or high is None:
        return "UNDECIDED"
    if -MARGIN <= low and high <= MARGIN:
        return "TIE"
    return "LEARNED BETTER" if high < 0 else "CONTROL BETTER" if low > 0 else "UNDECIDED"


def _pairs(g: pd.DataFrame, ctl: pd.DataFrame, swap: bool) -> pd.Series:
    """Per pair, control accuracy − learned accuracy: a swap pairs with its own model (config hash);
    a control trained from scratch pairs with the learned model of the same seed (same test set)."""
    on = "config_hash" if swap else "seed"
    theirs = ctl.groupby(on)["accuracy"].mean()
    mine = g.groupby(on)["accuracy"].mean()
    both = mine.index.intersection(theirs.index)
    return theirs[both] - mine[both]


def _group(task, distance, t, router, members, swaps, scratch, runs) -> dict:
    """The regret row of one group of distinct models (the λ targets in `members` share them)."""
    cols = ["accuracy", "usage", "macs_forward_executed"]
    lams = sorted(lam for lam, _ in members)
    lam, g = min(members, key=lambda m: m[0])
    mean = g[cols].mean()
    same = (swaps["task"] == task) & (swaps["distance"] == distance) & (swaps["tier"] == t) \
        & (swaps["lambda_target"] == lam) & (swaps["router"] == router)
    cands = swaps[same].groupby("control")[cols].mean().assign(kind="swap")
    s = scratch[(scratch["task"] == task) & (scratch["distance"] == distance) & (scratch["tier"] == t)] \
        if len(scratch) else scratch
    if len(s):
        cands = pd.concat([cands, s.groupby("control")[cols].mean().assign(kind="scratch")])
    within = cands[cands["usage"] <= mean["usage"] + 1e-9]
    row = {"task": task, "distance": int(distance), "tier": t, "router": router, "lambda_target": lam,
           "lambdas": ", ".join(f"{x:g}" for x in lams), "models": int(g["model_key"].nunique()), "seeds": len(g),
           "learned_accuracy": mean["accuracy"], "learned_usage": mean["usage"],
           "learned_macs": mean["macs_forward_executed"], "learned_epochs": epochs_trained(runs, g["config_hash"])}
    if "protocol" in g.columns:
        row["protocol"] = "+".join(sorted(map(str, g["protocol"].unique())))
    if within.empty:
        return {**row, "verdict": "NO CONTROL AT THIS BUDGET"}
    best = within.sort_values(["accuracy", "macs_forward_executed"], ascending=[False, True]).iloc[0]
    swap = best["kind"] == "swap"
    ctl = swaps[same & (swaps["control"] == best.name)] if swap else s[s["control"] == best.name]
    d = _pairs(g, ctl, swap)
    low, high = t_interval(list(d)) if len(d) >= 2 else (None, None)
    if low is not None:  # a difference of two accuracies lies in [-1, 1]
        low, high = max(low, -1.0), min(high, 1.0)
    return {**row, "best_control": best.name, "control_kind": best["kind"], "control_accuracy": best["accuracy"],
            "control_usage": best["usage"], "control_macs": best["macs_forward_executed"],
            "control_epochs": None if swap else epochs_trained(runs, ctl["config_hash"]),
            "accuracy_regret": best["accuracy"] - mean["accuracy"], "pairs": len(d), "regret_low": low,
            "regret_high": high, "interval": f"{INTERVAL} over {len(d)} seeds" if low is not None else "none",
            "macs_ratio": mean["macs_forward_executed"] / best["macs_forward_executed"],
            "verdict": regret_verdict(mean["accuracy"], best["accuracy"], low, high)}


def regret(controls: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per group of distinct learned models (task, distance, tier, router; λ targets whose cells are
    one phase-1 model count once): the learned router's mean accuracy and executed MACs against the
    best control whose mean usage is at most the learned one's (decision swaps of the same models,
    and routers trained from scratch on the same task), with a paired interval of the regret."""
    if controls.empty:
        return pd.DataFrame()
    learned = controls[controls["control"] == "learned"].copy()
    learned["model_key"] = model_keys(learned, runs)
    swaps = controls[controls["control"].isin(SWAPS)]
    scratch = scratch_controls(runs)
    groups: dict = {}
    for (task, distance, t, lam, router), g in learned.groupby(GROUP + ["lambda_target", "router"]):
        groups.setdefault((task, distance, t, router, frozenset(g["model_key"])), []).append((lam, g))
    out = [_group(task, distance, t, router, members, swaps, scratch, runs)
           for (task, distance, t, router, _), members in groups.items()]
    return pd.DataFrame(out)


def pareto_points(controls: pd.DataFrame, runs: pd.DataFrame, task, distance, t) -> pd.DataFrame:
    """Every series on one (task, distance, tier): the λ sweep, AttnOnly, ConvOnly, swaps (of the
    λ→0.5 models) and trained controls; one point per seed."""
    r = ok_rows(runs)
    pts = []
    if len(r):
        r = r[(r["task"] == task) & (r["distance"] == distance) & (r["tier"] == t)]
        for _, x in r.iterrows():
            if x["model"] == "attn":
                name = "AttnOnly"
            elif x["model"] == "conv":
                name = "ConvOnly"
            elif router_of(x) in LEARNED:
                name = f"Routed {router_of(x)} λ→{x['lambda_target']:g}" if router_of(x) != "gumbel" \
                    else f"Routed λ→{x['lambda_target']:g}"
            else:
                name = f"trained: {router_of(x)}"
            pts.append({"series": name, "accuracy": x["accuracy"], "macs_forward_executed": x["macs_forward_executed"],
                        "seed": x["seed"]})
    c = controls[(controls["task"] == task) & (controls["distance"] == distance) & (controls["tier"] == t)
                 & (controls["lambda_target"] == 0.5) & controls["control"].isin(SWAPS)] if len(controls) else controls
    for _, x in c.iterrows():
        pts.append({"series": f"swap: {x['control']}", "accuracy": x["accuracy"],
                    "macs_forward_executed": x["macs_forward_executed"], "seed": x["seed"]})
    return pd.DataFrame(pts).drop_duplicates() if pts else pd.DataFrame()
