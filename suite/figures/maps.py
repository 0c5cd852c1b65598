"""Where the router attends: heat maps of the attention rate per layer and position, of a run's
headline cell (run figure `routing_map`) and of every routed cell of the audit (`routing_maps`)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from suite.figures.common import heat_map, is_nan, panel_grid, percent, rate_colourbar
from suite.figures.panels import lam, seed
from suite.figures.run_data import Run
from suite.figures.style import DOUBLE_COLUMN_IN, new_figure

MAX_ROUTING_PANELS = 4
MAX_MAPS = 24
MAX_MAP_COLUMNS = 4


def routing_map(run: Run):
    """Where Routed attends: the attention rate per layer and position of the headline cell
    (λ→0.5 at the smallest distance, seed 0), behind the usage claims."""
    r = run.routing[run.routing["model"] == "routed"]
    lams = sorted(set(r["lambda_target"].astype(float)))
    lam_shown = 0.5 if 0.5 in lams else lams[-1]
    r = r[r["lambda_target"].astype(float) == lam_shown]
    d = int(r["distance"].min())
    r = r[r["distance"] == d]
    seed_shown = 0 if (r["seed"] == 0).any() else int(r["seed"].min())
    r = r[r["seed"] == seed_shown]
    cells = sorted(r.groupby("config_hash").groups) if "config_hash" in r.columns else [None]
    shown = cells[:MAX_ROUTING_PANELS]
    protocols = {}
    if "config_hash" in run.runs.columns and "protocol" in run.runs.columns:
        protocols = dict(zip(run.runs["config_hash"], run.runs["protocol"]))
    fig = new_figure(DOUBLE_COLUMN_IN, 0.9 + 1.1 * len(shown))
    axes = fig.subplots(len(shown), 1, squeeze=False)[:, 0]
    image = None
    for ax, cell in zip(axes, shown):
        image, grid = heat_map(ax, r if cell is None else r[r["config_hash"] == cell])
        ax.set_ylabel("layer")
        mean = float(np.nanmean(grid.to_numpy(dtype=float)))
        extra = f", {protocols[cell]}" if cell in protocols else ""
        ax.set_title(f"Routed λ→{lam_shown:g}, d={d}, seed {seed_shown}{extra}: mean attention rate {mean:.3f}",
                     loc="left")
    axes[-1].set_xlabel("position")
    rate_colourbar(fig, image, axes)
    if len(cells) > len(shown):
        fig.suptitle(f"first {len(shown)} of {len(cells)} cells", fontsize=6)
    return fig


def _cell_ids(r: pd.DataFrame) -> pd.Series:
    """A routing row's cell: its config_hash, else (task, distance, lambda, seed) as present."""
    if "config_hash" in r.columns:
        return r["config_hash"].astype(str)
    parts = [c for c in ("task", "distance", "lambda_target", "seed") if c in r.columns]
    return r[parts].astype(str).agg("|".join, axis=1) if parts else pd.Series("", index=r.index)


def draw_routing_maps(routing: pd.DataFrame, runs: pd.DataFrame) -> Figure | None:
    """One heat map per routed cell (up to MAX_MAPS, by λ then seed), titled with its usage."""
    if routing is None or routing.empty:
        return None
    r = routing[routing["model"] == "routed"] if "model" in routing.columns else routing
    if r.empty:
        return None
    r = r.assign(_cell=_cell_ids(r))
    first = r.drop_duplicates("_cell")
    cells = sorted(((lam(row), -1 if seed(row) is None else seed(row), row["_cell"], row)
                    for _, row in first.iterrows()),
                   key=lambda c: (-np.inf if c[0] is None else c[0], c[1], c[2]))
    shown = cells[:MAX_MAPS]
    usage = {}
    if runs is not None and not runs.empty and {"config_hash", "usage"} <= set(runs.columns):
        usage = dict(zip(runs["config_hash"].astype(str), runs["usage"]))
    varying = [(col, fmt) for col, fmt in (("task", "{}"), ("distance", "d={:.0f}"), ("lambda_target", "λ→{:g}"))
               if col in first.columns and first[col].nunique(dropna=True) > 1]
    ncols = min(MAX_MAP_COLUMNS, len(shown))
    fig = new_figure(DOUBLE_COLUMN_IN, 0.6 + 1.25 * -(-len(shown) // ncols))
    axes = panel_grid(fig, len(shown), max_cols=MAX_MAP_COLUMNS)
    image = None
    for i, (ax, (_, s, cell, row)) in enumerate(zip(axes, shown)):
        image, _ = heat_map(ax, r[r["_cell"] == cell])
        if i % ncols == 0:
            ax.set_ylabel("layer")
        if i + ncols >= len(shown):  # no panel below
            ax.set_xlabel("position")
        prefix = " ".join(fmt.format(row[col]) for col, fmt in varying if not is_nan(row[col]))
        ax.set_title(f"{prefix + chr(10) if prefix else ''}seed {'?' if s < 0 else s}: usage "
                     f"{percent(usage.get(cell))}", loc="left", fontsize=6)
    rate_colourbar(fig, image, axes)
    if len(cells) > len(shown):
        fig.suptitle(f"first {len(shown)} of {len(cells)} routed cells (by λ, seed)", fontsize=6)
    return fig
