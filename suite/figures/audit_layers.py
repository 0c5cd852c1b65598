"""The audit's per-layer figures: each routed row's usage as a stack of its layers (is a plateau one
whole layer?), and the attention positions per sequence each layer sends (less than one query?)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from suite.audit.routing import FULL_LAYER
from suite.figures.common import is_nan, panel_grid, percent, title
from suite.figures.panels import count_columns, layer_usages, left_out, panels, routed, row_order, tick_labels
from suite.figures.style import (DOUBLE_COLUMN_IN, GREY, REFERENCE_LINE, SINGLE_COLUMN_IN, layer_style,
                                 new_figure)

#: a layer at or above this usage attends (nearly) everywhere: the plateau is a whole layer
WHOLE_LAYER = FULL_LAYER
COUNT_FLOOR = 0.01   # log axis: attention positions per sequence below this are drawn here


def _panel_figure(n: int):
    """A figure of n panels, four to a row."""
    fig = new_figure(SINGLE_COLUMN_IN if n == 1 else DOUBLE_COLUMN_IN, 0.8 + 1.7 * (-(-n // min(4, n))))
    return fig, panel_grid(fig, n)


def _layer_patch(k: int, label: str) -> Patch:
    look = layer_style(k)
    return Patch(facecolor=look["color"], hatch=look["hatch"], edgecolor="black", linewidth=0.3, label=label)


def _stack(ax, x: int, layers: list[float], n_layers: int) -> float:
    """One row's bar: layer k's usage / n_layers stacked bottom-up; returns the top (the usage)."""
    bottom = 0.0
    for k, u in enumerate(layers):
        h = u / n_layers
        bar = ax.bar([x], [h], bottom=bottom, width=0.7, edgecolor="black", linewidth=0.3, **layer_style(k))
        bar.patches[0].set_gid(f"layer {k}")
        bottom += h
    return bottom


def draw_per_layer_usage(runs: pd.DataFrame) -> Figure | None:
    """Per panel, each routed row's layer stack against 1/n_layers, a star over a whole layer."""
    rows = routed(runs)
    if rows.empty:
        return None
    shown, left, groups = panels(rows)
    fig, axes = _panel_figure(len(shown))
    max_layers, any_whole = 0, False
    for ax, key in zip(axes, shown):
        g = row_order(groups[key])
        tops, star_x, star_y, depth = [], [], [], set()
        for x, (_, r) in enumerate(g.iterrows()):
            layers = layer_usages(r)
            nl = r.get("n_layers")
            nl = len(layers) if is_nan(nl) else int(nl)
            if not layers or nl <= 0:
                tops.append(0.0)
                ax.text(x, 0.0, "no layers", rotation=90, ha="center", va="bottom", fontsize=5, color=GREY)
                continue
            depth.add(nl)
            max_layers = max(max_layers, len(layers))
            tops.append(_stack(ax, x, layers, nl))
            if max(layers) >= WHOLE_LAYER:
                star_x.append(x)
                star_y.append(tops[-1])
        top = max([1.0 / d for d in depth] + tops + [0.05]) * 1.5
        pad = 0.06 * top
        ax.plot(star_x, [y + pad for y in star_y], marker="*", markersize=6, color="black", linestyle="none",
                gid="whole_layer")
        for x, (_, r) in enumerate(g.iterrows()):
            y = tops[x] + (2 if x in star_x else 1) * pad
            ax.text(x, y - 0.5 * pad, percent(r.get("usage")), rotation=90, ha="center", va="bottom", fontsize=5,
                    gid="usage")
        any_whole |= bool(star_x)
        for d in sorted(depth):
            ax.axhline(1.0 / d, gid="one_layer", **REFERENCE_LINE)
        ax.set_xticks(range(len(g)), tick_labels(g))
        ax.set_xlim(-0.6, len(g) - 0.4)
        ax.set_ylim(0.0, top)
        ax.set_xlabel("seed")
        ax.set_ylabel("attention usage (fraction)")
        title(ax, key.name, width=30)
    handles = [_layer_patch(k, f"layer {k} usage / n_layers") for k in range(max_layers)]
    handles.append(Line2D([], [], label="one whole layer (1/n_layers)", **REFERENCE_LINE))
    if any_whole:
        handles.append(Line2D([], [], marker="*", color="black", linestyle="none",
                              label=f"a layer ≥ {100 * WHOLE_LAYER:g}% attention"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)), fontsize=5.5)
    note = left_out(len(shown), left)
    if note:
        fig.suptitle(note, fontsize=6)
    return fig


def draw_attention_counts(analysis: pd.DataFrame) -> Figure | None:
    """Per panel, each cell's attention positions per sequence per layer (log), against one."""
    if analysis is None or analysis.empty:
        return None
    cols = count_columns(analysis)
    if not cols:
        return None
    shown, left, groups = panels(analysis)
    fig, axes = _panel_figure(len(shown))
    used_layers, below = set(), False
    top = 1.0
    for ax, key in zip(axes, shown):
        g = row_order(groups[key])
        present = [(k, c) for k, c in cols if g[c].notna().any()]
        width = 0.8 / max(len(present), 1)
        for j, (k, c) in enumerate(present):
            used_layers.add(k)
            xs = np.arange(len(g)) + (j - (len(present) - 1) / 2) * width
            values = g[c].astype(float).to_numpy()
            ok = ~np.isnan(values)
            heights = np.maximum(values[ok], COUNT_FLOOR) - COUNT_FLOOR
            bars = ax.bar(xs[ok], heights, bottom=COUNT_FLOOR, width=width * 0.92, edgecolor="black", linewidth=0.3,
                          **layer_style(k))
            for p in bars.patches:
                p.set_gid(f"layer {k}")
            low = ok & (values < COUNT_FLOOR)
            if low.any():
                below = True
                ax.plot(xs[low], np.full(low.sum(), COUNT_FLOOR * 1.25), marker="v", color=layer_style(k)["color"],
                        markeredgecolor="black", markeredgewidth=0.3, linestyle="none", markersize=3)
            if ok.any():
                top = max(top, float(np.nanmax(values)))
        ax.axhline(1.0, gid="one_query", **REFERENCE_LINE)
        ax.set_yscale("log")
        ax.set_xticks(range(len(g)), tick_labels(g))
        ax.set_xlim(-0.6, len(g) - 0.4)
        ax.set_xlabel("seed")
        ax.set_ylabel("attention positions / sequence")
        title(ax, key.name, width=30)
    for ax in axes:
        ax.set_ylim(COUNT_FLOOR, top * 2.0)
    handles = [_layer_patch(k, f"layer {k}") for k in sorted(used_layers)]
    handles.append(Line2D([], [], label="one query (1 position)", **REFERENCE_LINE))
    if below:
        handles.append(Line2D([], [], marker="v", color=GREY, linestyle="none", label=f"below {COUNT_FLOOR:g}"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(5, len(handles)), fontsize=5.5)
    note = left_out(len(shown), left)
    if note:
        fig.suptitle(note, fontsize=6)
    return fig
