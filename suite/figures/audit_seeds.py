"""The audit's per-seed figures of one routed cell group: the three savings readings, and accuracy
and usage of each seed against the headline claim's thresholds."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from suite.figures.common import is_nan, not_measured, percent, spread, title
from suite.figures.panels import cell_note, routed, row_order, tick_labels
from suite.figures.sources import headline_saving, headline_thresholds
from suite.figures.style import (DOUBLE_COLUMN_IN, GREY, OKABE_ITO, REFERENCE_LINE, SAVINGS, SAVINGS_MARKERS,
                                 SINGLE_COLUMN_IN, USAGE_FLOOR, new_figure)
from suite.judge.stats import interval

SAVINGS_COLUMNS = {"notional": "savings_notional", "executed": "savings_executed", "latency": "savings_latency"}


def _per_seed(rows: pd.DataFrame, reading: str, column: str) -> pd.Series | None:
    """A reading's mean per seed (notional falls back to 1 - usage); None when not measured."""
    if column in rows.columns and rows[column].notna().any():
        values = rows[column]
    elif reading == "notional" and "usage" in rows.columns:
        values = 1.0 - rows["usage"]
    else:
        return None
    seeds = rows["seed"] if "seed" in rows.columns else pd.Series(range(len(rows)), index=rows.index)
    return pd.DataFrame({"seed": seeds, "v": values.astype(float)}).dropna().groupby("seed")["v"].mean()


def draw_savings_readings(runs: pd.DataFrame, published: dict | None = None) -> Figure | None:
    """Notional, executed and latency savings of each seed, their mean, and the published saving
    (of the `published` cells, read from published.csv when not given)."""
    rows = routed(runs)
    if rows.empty:
        return None
    saving = headline_saving(published)
    fig = new_figure(SINGLE_COLUMN_IN, 2.9)
    ax = fig.add_subplot()
    lows, handles = [0.0], []
    for x, (reading, column) in enumerate(SAVINGS_COLUMNS.items()):
        label, colour = SAVINGS[reading]
        marker = SAVINGS_MARKERS[reading]
        per_seed = _per_seed(rows, reading, column)
        if per_seed is None or per_seed.empty:
            not_measured(ax, x)
            handles.append(Line2D([], [], color=colour, marker=marker, linestyle="none",
                                  label=f"{label} — not measured"))
            continue
        k = len(per_seed)
        ax.plot(x + spread(k, 0.5), per_seed.to_numpy(), color=colour, marker=marker, linestyle="none", alpha=0.85,
                markeredgecolor="black", markeredgewidth=0.3, gid=f"seeds:{reading}")
        mean = float(per_seed.mean())
        ax.hlines(mean, x - 0.3, x + 0.3, color="black", linewidth=1.2, gid=f"mean:{reading}")
        ax.text(x + 0.32, mean, f"{100 * mean:.1f}%", va="center", fontsize=5.5, color="black")
        lows.append(float(per_seed.min()))
        handles.append(Line2D([], [], color=colour, marker=marker, linestyle="none", label=f"{label} (n={k} seeds)"))
    handles.append(ax.axhline(saving, label=f"published {100 * saving:g}%", gid="published", **REFERENCE_LINE))
    handles.append(Line2D([], [], color="black", linewidth=1.2, label="mean over seeds"))
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_xticks(range(len(SAVINGS_COLUMNS)), [SAVINGS[r][0].replace(" ", "\n", 1) for r in SAVINGS_COLUMNS])
    ax.set_xlim(-0.6, len(SAVINGS_COLUMNS) - 0.3)
    ax.set_ylim(min(lows) - 0.08, 1.08)
    ax.set_ylabel("compute saved vs AttnOnly (fraction)")
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=5.5)
    title(ax, "Savings: notional vs executed", cell_note(rows))
    return fig


def _interval_kind(s) -> str:
    if s is None:
        return "no values"
    return f"mean and {s.kind}" if s.n < 3 else f"mean and 95% {s.kind}"


def _one_position_lines(ax, g: pd.DataFrame) -> None:
    """Usage of one position in one layer, 1/(seq_len·n_layers), per depth and length present."""
    pairs = set()
    if {"seq_len", "n_layers"} <= set(g.columns):
        pairs = {(int(a), int(b)) for a, b in zip(g["seq_len"], g["n_layers"])
                 if not is_nan(a) and not is_nan(b) and a > 0 and b > 0}
    for seq_len, n_layers in sorted(pairs):
        one = 1.0 / (seq_len * n_layers)
        ax.axhline(one, color=GREY, linewidth=0.8, linestyle=":", gid="one_position")
        ax.text(-0.55, one * 1.1, f"one position in one layer (1/({seq_len}·{n_layers}))", color=GREY,
                fontsize=5.5, va="bottom")


def draw_seed_strip(runs: pd.DataFrame, claims: list | None = None) -> Figure | None:
    """Accuracy and usage (log) of each seed with the mean and its interval, against the headline
    claim's thresholds (of `claims`, the claims registry when not given)."""
    rows = routed(runs)
    if rows.empty:
        return None
    claim_accuracy, claim_usage = headline_thresholds(claims)
    g = row_order(rows)
    labels = tick_labels(g)
    x = np.arange(len(g))
    fig = new_figure(DOUBLE_COLUMN_IN, 2.6)
    ax_acc, ax_use = fig.subplots(1, 2)
    colour, marker = OKABE_ITO["vermillion"], "D"
    for ax, metric in ((ax_acc, "accuracy"), (ax_use, "usage")):
        values = g[metric].astype(float).to_numpy() if metric in g.columns else np.full(len(g), np.nan)
        floor = USAGE_FLOOR if metric == "usage" else -math.inf
        shown = np.where(np.isnan(values), np.nan, np.maximum(values, floor))
        ax.plot(x, shown, color=colour, marker=marker, linestyle="none", markeredgecolor="black",
                markeredgewidth=0.3, gid="seeds", label="one seed")
        for xi, v, yv in zip(x, values, shown):
            if not np.isnan(v):
                text = f"{v:.3f}" if metric == "accuracy" else percent(v)
                ax.annotate(text, (xi, yv), xytext=(4, 0), textcoords="offset points", fontsize=5, va="center")
        s = interval(metric, values)
        if s is not None:
            lo = max(s.low, floor)
            ax.axhspan(lo, max(s.high, lo), color=GREY, alpha=0.18, linewidth=0, gid="interval")
            ax.axhline(max(s.mean, floor), color="black", linewidth=1.0, gid="mean")
        ax.set_xticks(x, labels)
        ax.set_xlim(-0.6, len(g) - 0.4 + 0.4)
        ax.set_xlabel("seed")
        if metric == "accuracy":
            ax.axhline(claim_accuracy, gid="claim", **REFERENCE_LINE)
            ax.text(-0.55, claim_accuracy, f"claim {claim_accuracy:g}", color=GREY, fontsize=5.5, va="bottom")
            finite = values[~np.isnan(values)]
            bottom = min([claim_accuracy - 0.02] + list(finite - 0.02) + ([s.low - 0.01] if s is not None else []))
            ax.set_ylim(max(-0.02, bottom), 1.01)
            ax.set_ylabel("test accuracy")
            title(ax, "Accuracy per seed", _interval_kind(s))
        else:
            ax.set_yscale("log")
            ax.axhline(claim_usage, gid="claim", **REFERENCE_LINE)
            ax.text(-0.55, claim_usage * 1.1, f"claim {100 * claim_usage:g}%", color=GREY, fontsize=5.5, va="bottom")
            _one_position_lines(ax, g)
            ax.set_ylim(USAGE_FLOOR * 0.7, 1.5)
            ax.set_ylabel("attention usage (fraction, log)")
            title(ax, "Usage per seed", _interval_kind(s))
    handles = [Line2D([], [], color=colour, marker=marker, linestyle="none", label="one seed"),
               Line2D([], [], color="black", linewidth=1.0, label="mean over seeds"),
               Patch(facecolor=GREY, alpha=0.18, label="interval of the mean (title)"),
               Line2D([], [], label="claim threshold", **REFERENCE_LINE)]
    fig.legend(handles=handles, loc="outside lower center", ncols=4)
    fig.suptitle(cell_note(rows), fontsize=7)
    return fig
