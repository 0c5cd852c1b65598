"""The audit tables' rows read as typed values in one place: the panel a row belongs to (task,
distance, tier from the `tier` column, λ), its router and seed, its per-layer usage, and how a
figure splits rows into at most MAX_PANELS panels and names the ones left out."""
from __future__ import annotations

import json
import math
import re
import textwrap
from dataclasses import dataclass

import pandas as pd

from suite.figures.common import is_nan

MAX_PANELS = 8
USAGE_LAYER = re.compile(r"^usage_layer_(\d+)$")
COUNT_LAYER = re.compile(r"^attention_positions_per_sequence_layer_(\d+)$")


@dataclass(frozen=True)
class Panel:
    """A group of rows drawn together: one cell group, missing parts as '?', -1 and None."""
    task: str
    distance: int
    tier: str
    lam: float | None = None

    @property
    def name(self) -> str:
        out = f"{self.task} d={self.distance} {self.tier}" if self.distance >= 0 else f"{self.task} {self.tier}"
        return out + (f" λ→{self.lam:g}" if self.lam is not None else "")

    @property
    def order(self) -> tuple:
        return self.task, self.distance, self.tier, -math.inf if self.lam is None else self.lam


def routed(runs: pd.DataFrame | None) -> pd.DataFrame:
    """The finished routed rows (every row where the table has no model/status column)."""
    if runs is None:
        return pd.DataFrame()
    rows = runs
    if "model" in rows.columns:
        rows = rows[rows["model"] == "routed"]
    if "status" in rows.columns:
        rows = rows[rows["status"].fillna("ok") == "ok"]
    return rows


def text_of(row, column: str, missing: str = "") -> str:
    v = row.get(column)
    return missing if is_nan(v) or v is pd.NA or v == "" else str(v)


def router(row) -> str:
    return text_of(row, "router")


def seed(row) -> int | None:
    v = row.get("seed")
    return None if is_nan(v) else int(v)


def lam(row) -> float | None:
    v = row.get("lambda_target")
    return None if is_nan(v) else round(float(v), 6)


def panel_of(row, with_lambda: bool = True) -> Panel:
    """The panel of a row; the tier is the row's `tier` column (read_runs always fills it)."""
    d = row.get("distance")
    return Panel(text_of(row, "task", "?"), -1 if is_nan(d) else int(d), text_of(row, "tier", "?"),
                 lam(row) if with_lambda else None)


def panels(df: pd.DataFrame, with_lambda: bool = True) -> tuple[list[Panel], list[Panel], dict]:
    """(shown panels, panels left out, panel -> rows), at most MAX_PANELS shown, in panel order."""
    keys = [panel_of(r, with_lambda) for _, r in df.iterrows()]
    groups = {k: df[[x == k for x in keys]] for k in dict.fromkeys(keys)}
    ordered = sorted(groups, key=lambda p: p.order)
    return ordered[:MAX_PANELS], ordered[MAX_PANELS:], groups


def left_out(shown: int, left: list[Panel], what: str = "panels") -> str:
    """The note naming the panels a figure could not show; '' when it shows them all."""
    if not left:
        return ""
    names = ", ".join(p.name for p in left)
    return textwrap.fill(f"first {shown} of {shown + len(left)} {what}; not shown: {names}", 110)


def cell_note(rows: pd.DataFrame) -> str:
    """The cell group the rows come from, where it is one."""
    keys = {panel_of(r) for _, r in rows.iterrows()}
    return next(iter(keys)).name if len(keys) == 1 else f"{len(keys)} cells pooled"


def row_order(g: pd.DataFrame) -> pd.DataFrame:
    """Rows of a panel by (router, seed, config_hash)."""
    return g.assign(_r=[router(r) for _, r in g.iterrows()],
                    _s=[(-1 if seed(r) is None else seed(r)) for _, r in g.iterrows()],
                    _h=g["config_hash"].astype(str) if "config_hash" in g.columns else "") \
        .sort_values(["_r", "_s", "_h"], kind="stable")


def tick_labels(g: pd.DataFrame) -> list[str]:
    """Seed numbers; with the router above where a panel holds more than one router."""
    routers = {router(r) for _, r in g.iterrows()}
    out = []
    for _, r in g.iterrows():
        s = "?" if seed(r) is None else str(seed(r))
        out.append(f"{router(r) or '—'}\n{s}" if len(routers) > 1 else s)
    return out


def layer_usages(row) -> list[float]:
    """A row's per-layer usage: the usage_layer_<k> columns (up to n_layers), else the
    usage_per_layer JSON list; [] when neither is there."""
    n = row.get("n_layers")
    n = None if is_nan(n) else int(n)
    cols = sorted((int(m.group(1)), c) for c in row.index if (m := USAGE_LAYER.match(str(c))))
    values = [row[c] for k, c in cols if n is None or k < n]
    if n is None:  # the table's widest depth: trailing empties belong to shallower models
        while values and is_nan(values[-1]):
            values.pop()
    if values and not any(is_nan(v) for v in values) and (n is None or len(values) == n):
        return [float(v) for v in values]
    raw = row.get("usage_per_layer")
    if isinstance(raw, str) and raw.strip():
        try:
            parsed = json.loads(raw)
        except ValueError:
            return []
        if isinstance(parsed, list) and parsed and not any(is_nan(v) for v in parsed):
            return [float(v) for v in parsed]
    return []


def count_columns(df: pd.DataFrame) -> list[tuple[int, str]]:
    """(layer, column) of the analysis table's attention-positions-per-sequence columns."""
    return sorted((int(m.group(1)), c) for c in df.columns if (m := COUNT_LAYER.match(str(c))))
