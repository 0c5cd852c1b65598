"""The audit's shared vocabulary: which routers are learned, what counts as solved or as good as,
the headline claim's thresholds (read from a registry passed in, never at import), and the small
phrases every point writes the same way."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict

import pandas as pd

from suite.judge.registry import Claim, load_registry
from suite.judge.stats import interval
from suite.run.protocol import FAITHFUL, get_protocol

#: the learned routers (the rest are fixed policies: trained-from-scratch controls)
LEARNED = ("gumbel", "threshold")
SCRATCH = ("last", "layer", "random")
SWAPS = ("random", "last", "oracle", "one_layer", "conv", "attn")
#: a group whose learned router reaches this mean accuracy has solved its task
SOLVED = 0.9
#: accuracy margin of "as good as": the regress rule's margin, doubled for seed noise in the mini tier
MARGIN = 0.02
#: which usage each table shows: two readings of one model differ where phase 1 never solved
RUNS_USAGE = ("usage: runs.csv's, by the original's rule: for a seed whose phase 1 never solved the task (phase 2 "
              "did not run, see 'phase 2 ran'), the accuracy is the best epoch's and the usage the last epoch's, two "
              "different weights; the swap, regret and precision tables measure the stored best-epoch model instead, "
              "so their usage differs there.")
STORED_USAGE = ("usage: measured on the stored model (the best epoch's weights, whose accuracy is reported) on its "
                "test set; where phase 1 never solved the task, runs.csv and the battery tables report the last "
                "epoch's usage instead.")
#: the headline claim the audit reads its thresholds from
HEADLINE_CLAIM = "T1-r05-126"


class Limits(BaseModel):
    """The headline claim's thresholds, read from the registry the audit was given."""
    model_config = ConfigDict(frozen=True)

    #: the claim's usage threshold (claims.json: <= 0.5%), the bound of its low mode
    published_usage: float
    #: the accuracy a seed needs to count as a success (the claim's 'success' check)
    success_accuracy: float

    @classmethod
    def of(cls, registry: list[Claim] | None = None) -> "Limits":
        claim = next(c for c in (registry if registry is not None else load_registry()) if c.id == HEADLINE_CLAIM)
        return cls(published_usage=next(c.threshold for c in claim.checks if c.metric == "usage"),
                   success_accuracy=claim.success.threshold)


def router_of(row) -> str:
    r = row.get("router")
    return r if isinstance(r, str) and r else "gumbel"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def fmt_interval(metric, values) -> str:
    iv = interval(metric, values)
    if iv is None:
        return "n/a"
    return f"{iv.mean:.4f} [{iv.low:.4f}, {iv.high:.4f}] ({iv.kind})"


def budget_note(protocols) -> str:
    """', <name> protocol (<b> / <p> epochs)' for each protocol among `protocols` whose epoch budget is
    not the faithful one, so a row trained longer (or shorter) never reads as the original's."""
    key = ("steps_per_epoch", "baseline_max_epochs", "phase1_max_epochs", "phase2_epochs")
    faithful = tuple(getattr(FAITHFUL, k) for k in key)
    off = []
    for name in sorted({str(x) for x in protocols if isinstance(x, str) and x}):
        p = get_protocol(name)
        if tuple(getattr(p, k) for k in key) != faithful:
            off.append(f"{name} protocol: {p.baseline_max_epochs} baseline / {p.phase1_max_epochs} phase-1 epochs "
                       f"of {p.steps_per_epoch} steps")
    return "".join(f", {o}" for o in off)


def group_protocols(df: pd.DataFrame, **where) -> list:
    """The protocol names of the rows matching `where` (none where the table has no protocol column)."""
    if "protocol" not in df.columns or df.empty:
        return []
    mask = pd.Series(True, index=df.index)
    for k, v in where.items():
        mask &= df[k] == v
    return list(df.loc[mask, "protocol"].unique())


def model_keys(rows: pd.DataFrame, runs: pd.DataFrame) -> pd.Series:
    """The trained model behind each row of `rows` (matched on config hash): where phase 2 never ran,
    a seed's λ→0.1 and λ→0.5 cells report one and the same phase-1 model, so both get its phase-1
    key; otherwise the cell's own config hash. Counting these keys counts models, not cells."""
    keys = rows["config_hash"].astype(str)
    if runs is None or runs.empty or not {"phase1_key", "phase2_ran", "config_hash"} <= set(runs.columns):
        return keys
    r = runs.drop_duplicates("config_hash").set_index("config_hash")
    shared = r["phase1_key"].where(~r["phase2_ran"].astype(bool) & r["phase1_key"].notna())
    return pd.Series([str(shared.get(k)) if isinstance(shared.get(k), str) else k for k in keys], index=rows.index)


def epochs_trained(runs: pd.DataFrame, hashes) -> float | None:
    """Mean epochs (phase 1 + phase 2) the cells with these config hashes trained, None if unknown."""
    if runs is None or runs.empty or "epochs_phase1" not in runs.columns:
        return None
    r = runs[runs["config_hash"].isin(set(hashes))]
    if r.empty:
        return None
    return float((r["epochs_phase1"].fillna(0) + r.get("epochs_phase2", 0).fillna(0)).mean())
