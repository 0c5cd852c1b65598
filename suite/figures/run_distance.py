"""The run figures over distance (the original's main table): accuracy, and attention usage of
Routed, ours (filled, mean and the verdicts' 95% interval) beside the published values (hollow)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from suite.figures.common import title
from suite.figures.run_data import Run, main_rows, series_keys
from suite.figures.sources import published_points
from suite.figures.style import (GREY, PUBLISHED_MARKER, REFERENCE_LINE, SINGLE_COLUMN_IN, USAGE_FLOOR,
                                 new_figure, series_styles)
from suite.judge.stats import Interval, interval

CHANCE = 0.01  # assoc_recall: one of 100 values


def _accuracy(cell: pd.DataFrame) -> Interval | None:
    """The accuracy interval the claims' verdicts use: Wilson over test examples below 3 seeds."""
    return interval("accuracy", cell["accuracy"], cell["test_correct"], cell["test_total"])


def _legend_label(label: str, ns) -> str:
    """A series' name with its seed counts, or 'not run' where only the published value is shown."""
    if not ns:
        return f"{label} (not run)"
    lo, hi = min(ns), max(ns)
    return f"{label} (n={lo})" if lo == hi else f"{label} (n={lo}–{hi})"


def _log2_distance_axis(ax, distances) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(distances, [str(int(d)) for d in distances])
    ax.minorticks_off()
    ax.set_xlabel("distance (tokens)")


def _errorbar(ax, x, s: Interval, colour, marker, clip=(0.0, 1.0), **kw):
    y = min(max(s.mean, clip[0]), clip[1])
    err = [[max(y - max(s.low, clip[0]), 0.0)], [max(min(s.high, clip[1]) - y, 0.0)]]
    return ax.errorbar([x], [y], yerr=err, color=colour, marker=marker, linestyle="none", **kw)


def _dodge(i: int, k: int, step: float = 0.09) -> float:
    """A factor on a log2 axis that spreads k series around each distance."""
    return 2 ** ((i - (k - 1) / 2) * step)


def _series(ax, g, i: int, k: int, style, summarise, clip, published, seed_dots: str | None = None) -> None:
    """One series over distance: mean and interval per distance (dodged), a thin line through
    the means, hollow published markers beside them, and its legend entry with seed counts."""
    label, colour, marker = style
    xs, ys, ns = [], [], []
    for d, cell in g.groupby("distance", sort=True):
        s = summarise(cell)
        if s is None:
            continue
        x = d * _dodge(i, k)
        _errorbar(ax, x, s, colour, marker, clip=clip, zorder=3)
        if seed_dots and s.n > 1:
            ax.plot([x] * len(cell), cell[seed_dots], linestyle="none", marker=".", markersize=2,
                    color=colour, alpha=0.5, zorder=2)
        xs.append(x)
        ys.append(max(s.mean, clip[0]))
        ns.append(s.n)
    if xs:
        ax.plot(xs, ys, color=colour, linewidth=0.8, alpha=0.7)
    if published is not None:
        ax.plot([d * _dodge(i, k) * 2 ** 0.05 for d, _ in published], [v for _, v in published],
                linestyle="none", marker=marker, color=colour, **PUBLISHED_MARKER)
    ax.plot([], [], color=colour, marker=marker, label=_legend_label(label, ns))


def _frame(run: Run, routed_only: bool):
    """(rows, their series, styles, distances, published or None, note) of a distance figure."""
    rows, note, pub = main_rows(run.runs)
    shown = rows[rows["model"] == "routed"] if routed_only else rows
    shown = shown.assign(_key=series_keys(shown))
    published = published_points() if pub else None
    pub_keys = {k for _, k in published if not routed_only or k[0] == "routed"} if pub else set()
    styles = series_styles(set(shown["_key"]) | pub_keys)
    distances = sorted(set(rows["distance"].astype(int)) | ({d for d, _ in published} if pub else set()))
    return rows, shown, styles, distances, published, note


def _published_of(published, distances, key, which: int):
    if published is None:
        return None
    return [(d, published[(d, key)][which]) for d in distances if (d, key) in published]


def accuracy_vs_distance(run: Run):
    """Main table, accuracy (claims T1-attn, T1-conv, T1-r01, T1-r05): the original published
    AttnOnly and Routed λ→0.5 near 100% out to 2046, ConvOnly at chance, Routed λ→0.1
    collapsing beyond 510. Ours (filled, mean and 95% interval over seeds) beside published
    (hollow)."""
    _, rows, styles, distances, published, note = _frame(run, routed_only=False)
    fig = new_figure(SINGLE_COLUMN_IN, 3.0)
    ax = fig.add_subplot()
    for i, key in enumerate(styles):
        _series(ax, rows[rows["_key"] == key], i, len(styles), styles[key], _accuracy, (0.0, 1.0),
                _published_of(published, distances, key, 0), seed_dots="accuracy")
    if published is not None:
        ax.axhline(CHANCE, **REFERENCE_LINE)
        ax.text(distances[0], CHANCE + 0.02, "chance", color=GREY, fontsize=6)
        ax.plot([], [], linestyle="none", marker="o", color=GREY, label="published", **PUBLISHED_MARKER)
    _log2_distance_axis(ax, distances)
    ax.set_ylim(-0.03, 1.05)
    ax.set_ylabel("test accuracy")
    fig.legend(loc="outside lower center", ncols=2)
    title(ax, "Accuracy vs distance", note)
    return fig


def usage_vs_distance(run: Run):
    """Main table, attention usage of Routed: how much of the attention budget the router
    keeps, against one routed position per sequence per layer and one whole layer."""
    rows, routed, styles, distances, published, note = _frame(run, routed_only=True)
    fig = new_figure(SINGLE_COLUMN_IN, 3.0)
    ax = fig.add_subplot()
    for i, key in enumerate(styles):
        _series(ax, routed[routed["_key"] == key], i, len(styles), styles[key],
                lambda cell: interval("usage", cell["usage"]), (USAGE_FLOOR, 1.0),
                _published_of(published, distances, key, 1))
    ref = routed if len(routed) else rows
    offset = float((ref["seq_len"] - ref["distance"]).median())
    grid = np.geomspace(distances[0] / 1.2, distances[-1] * 1.2, 64)
    ax.plot(grid, 1.0 / (grid + offset), color=GREY, linewidth=0.8, linestyle=":",
            label="one position per sequence per layer (1/seq_len)")
    for n_layers in sorted(set(ref["n_layers"].dropna().astype(int))):
        ax.axhline(1.0 / n_layers, **REFERENCE_LINE)
        ax.text(distances[0] / 1.15, 1.0 / n_layers * 1.12, f"one whole layer (1/{n_layers})", color=GREY, fontsize=6)
    if published is not None:
        ax.plot([], [], linestyle="none", marker="o", color=GREY, label="published", **PUBLISHED_MARKER)
    if routed.empty:
        note = "; ".join(x for x in (note, "no routed cells in this run") if x)
    _log2_distance_axis(ax, distances)
    ax.set_yscale("log")
    ax.set_ylim(USAGE_FLOOR * 0.7, 1.5)
    ax.set_ylabel("attention usage (fraction)")
    fig.legend(loc="outside lower center", ncols=2)
    title(ax, "Attention usage of Routed vs distance", note)
    return fig
