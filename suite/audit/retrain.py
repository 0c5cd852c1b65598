"""What a group of faithful models is when it retrains headline cells: the headline's seeds under
another machine, thread count or revision, whose own models kept no weights. A regret or swap line
about such a group speaks for the retrains, never for the headline's models."""
from __future__ import annotations

import json

import pandas as pd

from suite.audit.common import Limits
from suite.audit.routing import routing_mode


def _machine(rows: pd.DataFrame) -> str:
    threads = sorted({int(t) for t in rows["threads"].dropna()}) if "threads" in rows.columns else []
    devices = sorted({str(d).split(" x")[0] for d in rows.get("device", pd.Series(dtype=str)).dropna()})
    shas = sorted({str(s)[:7] for s in rows.get("git_sha", pd.Series(dtype=str)).dropna()})
    t = "/".join(map(str, threads)) or "?"
    return f"{t} thread{'s' * (t != '1')} on {', '.join(devices) or '?'}, git {', '.join(shas) or '?'}"


def retrain_note(learned: pd.DataFrame, headline: pd.DataFrame, runs: pd.DataFrame, limits: Limits) -> str:
    """'' unless every model of `learned` (controls.csv rows) retrains a headline cell (same config
    hash, another run); then what the group is, how its models differ from the headline's, and the
    headline's own accuracies."""
    if learned.empty or headline is None or headline.empty:
        return ""
    mine = set(learned["config_hash"])
    h = headline[headline["config_hash"].isin(mine)].sort_values("seed")
    if len(h) != len(mine) or set(learned["run_id"]) & set(h["run_id"]):
        return ""
    r = runs[runs["config_hash"].isin(mine) & runs["run_id"].isin(set(learned["run_id"]))] \
        if runs is not None and len(runs) else pd.DataFrame()
    theirs = {k: routing_mode(json.loads(u), limits.published_usage).label
              for k, u in zip(h["config_hash"], h["usage_per_layer"])}
    other = sum(routing_mode(json.loads(u), limits.published_usage).label != theirs[k]
                for k, u in zip(learned["config_hash"], learned["usage_per_layer"]))
    seeds = ", ".join(str(int(s)) for s in h["seed"])
    return (f"these {len(h)} models are the {', '.join(sorted(set(learned['run_id'])))} retrains of headline seeds "
            f"{seeds} (trained at {_machine(r) if len(r) else '?'}; the headline's at {_machine(h)}), in another "
            f"routing mode than the headline's run of the same cell in {other} of {len(h)} (point 4); the headline's "
            f"own seeds {seeds} scored {', '.join(f'{a:.3f}' for a in h['accuracy'])} and kept no weights, so "
            "nothing is known about swaps of the headline's own models")
