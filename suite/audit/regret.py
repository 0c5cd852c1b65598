"""Router regret: does the learned router beat the controls at equal or lower budget? Controls are
decision swaps of the same trained models and fixed routers trained from scratch, matched on task,
distance and tier (the row's `tier` column: a full-size fixed-router control is 'faithful')."""
from __future__ import annotations

import pandas as pd

from suite.audit.common import LEARNED, MARGIN, SCRATCH, SOLVED, SWAPS, router_of
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


def regret(controls: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per learned cell group (task, distance, tier, lambda): the learned router's mean accuracy
    and executed MACs against the best control whose mean usage is at most the learned one's
    (decision swaps of the same models, and routers trained from scratch on the same task)."""
    if controls.empty:
        return pd.DataFrame()
    learned = controls[controls["control"] == "learned"]
    cols = ["accuracy", "usage", "macs_forward_executed"]
    swaps = controls[controls["control"].isin(SWAPS)]
    scratch = scratch_controls(runs)
    out = []
    for key, g in learned.groupby(GROUP + ["lambda_target", "router"]):
        task, distance, t, lam, router = key
        mean = g[cols].mean()
        same = (swaps["task"] == task) & (swaps["distance"] == distance) & (swaps["tier"] == t) \
            & (swaps["lambda_target"] == lam) & (swaps["router"] == router)
        cands = swaps[same].groupby("control")[cols].mean()
        if len(scratch):
            s = scratch[(scratch["task"] == task) & (scratch["distance"] == distance) & (scratch["tier"] == t)]
            cands = pd.concat([cands, s.groupby("control")[cols].mean()])
        within = cands[cands["usage"] <= mean["usage"] + 1e-9]
        row = {"task": task, "distance": int(distance), "tier": t, "router": router, "lambda_target": lam,
               "seeds": len(g), "learned_accuracy": mean["accuracy"], "learned_usage": mean["usage"],
               "learned_macs": mean["macs_forward_executed"]}
        if "protocol" in g.columns:
            row["protocol"] = "+".join(sorted(map(str, g["protocol"].unique())))
        if len(within):
            best = within.sort_values(["accuracy", "macs_forward_executed"], ascending=[False, True]).iloc[0]
            row.update({"best_control": best.name, "control_accuracy": best["accuracy"],
                        "control_usage": best["usage"], "control_macs": best["macs_forward_executed"],
                        "accuracy_regret": best["accuracy"] - mean["accuracy"],
                        "macs_ratio": mean["macs_forward_executed"] / best["macs_forward_executed"]})
            row["verdict"] = ("LEARNED BETTER" if mean["accuracy"] > best["accuracy"] + MARGIN else
                              "CONTROL BETTER" if best["accuracy"] > mean["accuracy"] + MARGIN else
                              # equal at chance is no tie between two solutions
                              "NEITHER SOLVES" if max(mean["accuracy"], best["accuracy"]) < SOLVED else "TIE")
        else:
            row["verdict"] = "NO CONTROL AT THIS BUDGET"
        out.append(row)
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
