"""Figures of the audit of the savings claim ("0.3% attention usage = 99.7% compute savings" at
distance 126), drawn from the audit's tables (runs, controls, routing, analysis) as DataFrames.

Each public function draws one figure and writes `name`.pdf and `name`.png into `out_dir`
(returning the written paths), or writes nothing and returns [] when its input has nothing to
draw. The drawing itself is `_draw_<name>(...) -> Figure | None`, so tests can read the figure
back. Every function's docstring says which question its figure answers.
"""
from __future__ import annotations

import json
import math
import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from suite.judge.published import key as published_key, load_published
from suite.figures.style import (DOUBLE_COLUMN_IN, GREY, OKABE_ITO, REFERENCE_LINE, SAVINGS, SERIES,
                                 SINGLE_COLUMN_IN, SPARE, new_figure, save, style)
from suite.audit.routing import FULL_LAYER
from suite.judge.claims import load_registry
from suite.judge.stats import interval

#: the headline's publicised saving, 1 - published usage of Routed lambda->0.5 at 126 (published.csv)
PUBLISHED_SAVING = 1.0 - load_published()[published_key(126, "routed", 0.5)].usage
#: the headline claim's thresholds, as the registry states them
_HEADLINE = {c.metric: c.threshold for c in next(c for c in load_registry() if c.id == "T1-r05-126").checks}
CLAIM_ACCURACY, CLAIM_USAGE = _HEADLINE["accuracy"], _HEADLINE["usage"]
#: a layer at or above this usage attends (nearly) everywhere: the plateau is a whole layer
WHOLE_LAYER = FULL_LAYER
USAGE_FLOOR = 1e-4   # log axis: a usage of 0 is drawn here
COUNT_FLOOR = 0.01   # log axis: attention positions per sequence below this are drawn here
MAX_PANELS = 8
MAX_MAPS = 24
MAX_MAP_COLUMNS = 4
#: the controls, in the order they are drawn
CONTROLS = ("learned", "random", "last", "oracle", "one_layer", "conv", "attn")
#: control -> (label, colour, marker). The swaps act on the trained routed model: "all conv" and
#: "all attention" are its gates forced, not the ConvOnly/AttnOnly baselines (which keep their colours)
CONTROL_STYLES = {
    "learned": ("learned router", OKABE_ITO["vermillion"], "D"),
    "random": ("random positions", OKABE_ITO["sky_blue"], "P"),
    "last": ("last positions", OKABE_ITO["bluish_green"], "^"),
    "oracle": ("scored positions", OKABE_ITO["reddish_purple"], "v"),
    "one_layer": ("same count, one layer", OKABE_ITO["yellow"], "h"),
    "conv": ("all conv", SERIES[("conv", None)][1], SERIES[("conv", None)][2]),
    "attn": ("all attention", SERIES[("attn", None)][1], SERIES[("attn", None)][2]),
}
#: the three savings readings -> marker (colours and labels from style.SAVINGS)
SAVINGS_MARKERS = {"notional": "o", "executed": "s", "latency": "D"}
SAVINGS_COLUMNS = {"notional": "savings_notional", "executed": "savings_executed", "latency": "savings_latency"}
#: one colour and hatch per layer (hatches keep layers apart in grey scale)
LAYER_COLOURS = [OKABE_ITO[c] for c in ("blue", "orange", "bluish_green", "vermillion", "reddish_purple",
                                        "sky_blue", "yellow", "black")]
LAYER_HATCHES = ["", "////", "....", "xxxx", "\\\\\\\\", "++++", "oooo", "----"]
#: markers for pareto series that are not in SERIES, used after SPARE
EXTRA_MARKERS = ["<", ">", "*", "p", "d", "H", "8", "1", "2", "3", "4"]

_USAGE_LAYER = re.compile(r"^usage_layer_(\d+)$")
_COUNT_LAYER = re.compile(r"^attention_positions_per_sequence_layer_(\d+)$")


# -- helpers ------------------------------------------------------------------------------------
def _title(ax, text: str, note: str = "", width: int = 52) -> None:
    ax.set_title(textwrap.fill(text + (f" — {note}" if note else ""), width), loc="left")


def _is_nan(v) -> bool:
    try:
        return v is None or math.isnan(float(v))
    except (TypeError, ValueError):
        return False


def _routed(runs: pd.DataFrame) -> pd.DataFrame:
    """The finished routed rows (every row where the table has no model/status column)."""
    if runs is None or runs.empty:
        return pd.DataFrame() if runs is None else runs
    rows = runs
    if "model" in rows.columns:
        rows = rows[rows["model"] == "routed"]
    if "status" in rows.columns:
        rows = rows[rows["status"].fillna("ok") == "ok"]
    return rows


def _tier(row) -> str:
    """'faithful' or 'mini': the tier column where there is one, else faithful_model."""
    if "tier" in row.index and isinstance(row["tier"], str) and row["tier"]:
        return row["tier"]
    v = row.get("faithful_model")
    if _is_nan(v):
        return "?"
    if isinstance(v, str):
        return "faithful" if v.strip().lower() in ("true", "1", "yes") else "mini"
    return "faithful" if bool(v) else "mini"


def _router(row) -> str:
    v = row.get("router")
    return "" if _is_nan(v) else str(v)


def _seed(row) -> int | None:
    v = row.get("seed")
    return None if _is_nan(v) else int(v)


def _lam(row) -> float | None:
    v = row.get("lambda_target")
    return None if _is_nan(v) else round(float(v), 6)


def _panel_key(row, with_lambda: bool = True) -> tuple:
    """(task, distance, tier[, lambda]) of a row; missing parts are '?', -1, None."""
    task = row.get("task")
    task = "?" if _is_nan(task) else str(task)
    d = row.get("distance")
    d = -1 if _is_nan(d) else int(d)
    key = (task, d, _tier(row))
    return key + (_lam(row),) if with_lambda else key


def _panel_name(key: tuple) -> str:
    task, d, tier = key[:3]
    name = f"{task} d={d} {tier}" if d >= 0 else f"{task} {tier}"
    if len(key) > 3 and key[3] is not None:
        name += f" λ→{key[3]:g}"
    return name


def _sort_key(key: tuple) -> tuple:
    return tuple(-math.inf if k is None else k for k in key)


def _panels(df: pd.DataFrame, with_lambda: bool = True) -> tuple[list[tuple], list[tuple], dict]:
    """(shown panel keys, panel keys left out, key -> rows), at most MAX_PANELS shown."""
    keys = [_panel_key(r, with_lambda) for _, r in df.iterrows()]
    groups = {k: df[[x == k for x in keys]] for k in dict.fromkeys(keys)}
    ordered = sorted(groups, key=_sort_key)
    return ordered[:MAX_PANELS], ordered[MAX_PANELS:], groups


def _grid(fig: Figure, n: int, max_cols: int = 4):
    ncols = min(max_cols, n)
    nrows = -(-n // ncols)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        fig.delaxes(ax)
    return list(axes[:n])


def _left_out(shown: int, left: list[tuple], what: str = "panels") -> str:
    if not left:
        return ""
    names = ", ".join(_panel_name(k) for k in left)
    return textwrap.fill(f"first {shown} of {shown + len(left)} {what}; not shown: {names}", 110)


def _layer_usages(row) -> list[float]:
    """A row's per-layer usage: the usage_layer_<k> columns (up to n_layers), else the
    usage_per_layer JSON list; [] when neither is there."""
    n = row.get("n_layers")
    n = None if _is_nan(n) else int(n)
    cols = sorted((int(m.group(1)), c) for c in row.index if (m := _USAGE_LAYER.match(str(c))))
    values = [row[c] for k, c in cols if n is None or k < n]
    if n is None:  # the table's widest depth: trailing empties belong to shallower models
        while values and _is_nan(values[-1]):
            values.pop()
    if values and not any(_is_nan(v) for v in values) and (n is None or len(values) == n):
        return [float(v) for v in values]
    raw = row.get("usage_per_layer")
    if isinstance(raw, str) and raw.strip():
        try:
            parsed = json.loads(raw)
        except ValueError:
            return []
        if isinstance(parsed, list) and parsed and not any(_is_nan(v) for v in parsed):
            return [float(v) for v in parsed]
    return []


def _row_order(g: pd.DataFrame) -> pd.DataFrame:
    """Rows of a panel by (router, seed, config_hash)."""
    return g.assign(_r=[_router(r) for _, r in g.iterrows()],
                    _s=[(-1 if _seed(r) is None else _seed(r)) for _, r in g.iterrows()],
                    _h=g["config_hash"].astype(str) if "config_hash" in g.columns else "") \
        .sort_values(["_r", "_s", "_h"], kind="stable")


def _tick_labels(g: pd.DataFrame) -> list[str]:
    """Seed numbers; with the router above where a panel holds more than one router."""
    routers = {_router(r) for _, r in g.iterrows()}
    out = []
    for _, r in g.iterrows():
        seed = _seed(r)
        s = "?" if seed is None else str(seed)
        out.append(f"{_router(r) or '—'}\n{s}" if len(routers) > 1 else s)
    return out


def _percent(u) -> str:
    if _is_nan(u):
        return "n/a"
    return f"{100 * float(u):.3g}%"


# -- 1. savings readings ------------------------------------------------------------------------
def _draw_savings_readings(runs: pd.DataFrame) -> Figure | None:
    rows = _routed(runs)
    if rows is None or rows.empty:
        return None
    fig = new_figure(SINGLE_COLUMN_IN, 2.9)
    ax = fig.add_subplot()
    lows, handles = [0.0], []
    for x, (reading, column) in enumerate(SAVINGS_COLUMNS.items()):
        label, colour = SAVINGS[reading]
        marker = SAVINGS_MARKERS[reading]
        if column in rows.columns and rows[column].notna().any():
            values = rows[column]
        elif reading == "notional" and "usage" in rows.columns:
            values = 1.0 - rows["usage"]
        else:
            values = None
        per_seed = None
        if values is not None:
            seeds = rows["seed"] if "seed" in rows.columns else pd.Series(range(len(rows)), index=rows.index)
            per_seed = pd.DataFrame({"seed": seeds, "v": values.astype(float)}).dropna().groupby("seed")["v"].mean()
        if per_seed is None or per_seed.empty:
            ax.text(x, 0.02, "not measured", rotation=90, ha="center", va="bottom", fontsize=5.5, color=GREY)
            handles.append(Line2D([], [], color=colour, marker=marker, linestyle="none",
                                  label=f"{label} — not measured"))
            continue
        k = len(per_seed)
        offsets = (np.arange(k) - (k - 1) / 2) * (0.5 / max(k, 4))
        xs = x + offsets
        ax.plot(xs, per_seed.to_numpy(), color=colour, marker=marker, linestyle="none", alpha=0.85,
                markeredgecolor="black", markeredgewidth=0.3, gid=f"seeds:{reading}")
        mean = float(per_seed.mean())
        ax.hlines(mean, x - 0.3, x + 0.3, color="black", linewidth=1.2, gid=f"mean:{reading}")
        ax.text(x + 0.32, mean, f"{100 * mean:.1f}%", va="center", fontsize=5.5, color="black")
        lows.append(float(per_seed.min()))
        handles.append(Line2D([], [], color=colour, marker=marker, linestyle="none", label=f"{label} (n={k} seeds)"))
    handles.append(ax.axhline(PUBLISHED_SAVING, label=f"published {100 * PUBLISHED_SAVING:g}%", gid="published",
                              **REFERENCE_LINE))
    handles.append(Line2D([], [], color="black", linewidth=1.2, label="mean over seeds"))
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_xticks(range(len(SAVINGS_COLUMNS)), [SAVINGS[r][0].replace(" ", "\n", 1) for r in SAVINGS_COLUMNS])
    ax.set_xlim(-0.6, len(SAVINGS_COLUMNS) - 0.3)
    ax.set_ylim(min(lows) - 0.08, 1.08)
    ax.set_ylabel("compute saved vs AttnOnly (fraction)")
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=5.5)
    _title(ax, "Savings: notional vs executed", _cell_note(rows))
    return fig


def _cell_note(rows: pd.DataFrame) -> str:
    """The cell group the rows come from, where it is one."""
    keys = {_panel_key(r) for _, r in rows.iterrows()}
    return _panel_name(next(iter(keys))) if len(keys) == 1 else f"{len(keys)} cells pooled"


def savings_readings(runs: pd.DataFrame, out_dir: Path, name: str = "audit_savings") -> list[Path]:
    """Does 1 − usage describe what is executed? The three readings of compute saved (notional,
    executed FLOPs, measured latency) of each seed of one routed cell group, their mean, and the
    published 99.7%."""
    return _save(_draw_savings_readings, (runs,), out_dir, name)


# -- 2. per-layer usage -------------------------------------------------------------------------
def _draw_per_layer_usage(runs: pd.DataFrame) -> Figure | None:
    rows = _routed(runs)
    if rows is None or rows.empty:
        return None
    shown, left, groups = _panels(rows)
    n = len(shown)
    ncols = min(4, n)
    fig = new_figure(SINGLE_COLUMN_IN if n == 1 else DOUBLE_COLUMN_IN, 0.8 + 1.7 * (-(-n // ncols)))
    axes = _grid(fig, n)
    max_layers, any_whole, depths = 0, False, set()
    for ax, key in zip(axes, shown):
        g = _row_order(groups[key])
        tops, star_x, star_y, depth = [], [], [], set()
        for x, (_, r) in enumerate(g.iterrows()):
            layers = _layer_usages(r)
            nl = r.get("n_layers")
            nl = len(layers) if _is_nan(nl) else int(nl)
            if not layers or nl <= 0:
                tops.append(0.0)
                ax.text(x, 0.0, "no layers", rotation=90, ha="center", va="bottom", fontsize=5, color=GREY)
                continue
            depth.add(nl)
            max_layers = max(max_layers, len(layers))
            bottom = 0.0
            for k, u in enumerate(layers):
                h = u / nl
                bar = ax.bar([x], [h], bottom=bottom, width=0.7, color=LAYER_COLOURS[k % len(LAYER_COLOURS)],
                             hatch=LAYER_HATCHES[k % len(LAYER_HATCHES)], edgecolor="black", linewidth=0.3)
                bar.patches[0].set_gid(f"layer {k}")
                bottom += h
            tops.append(bottom)
            if max(layers) >= WHOLE_LAYER:
                star_x.append(x)
                star_y.append(bottom)
        depths |= depth
        top = max([1.0 / d for d in depth] + tops + [0.05]) * 1.5
        pad = 0.06 * top
        ax.plot(star_x, [y + pad for y in star_y], marker="*", markersize=6, color="black", linestyle="none",
                gid="whole_layer")
        for x, (_, r) in enumerate(g.iterrows()):
            u = r.get("usage")
            y = tops[x] + (2 if x in star_x else 1) * pad
            ax.text(x, y - 0.5 * pad, _percent(u), rotation=90, ha="center", va="bottom", fontsize=5,
                    gid="usage")
        any_whole |= bool(star_x)
        for d in sorted(depth):
            ax.axhline(1.0 / d, gid="one_layer", **REFERENCE_LINE)
        ax.set_xticks(range(len(g)), _tick_labels(g))
        ax.set_xlim(-0.6, len(g) - 0.4)
        ax.set_ylim(0.0, top)
        ax.set_xlabel("seed")
        ax.set_ylabel("attention usage (fraction)")
        _title(ax, _panel_name(key), width=30)
    handles = [Patch(facecolor=LAYER_COLOURS[k % len(LAYER_COLOURS)], hatch=LAYER_HATCHES[k % len(LAYER_HATCHES)],
                     edgecolor="black", linewidth=0.3, label=f"layer {k} usage / n_layers") for k in range(max_layers)]
    handles.append(Line2D([], [], label="one whole layer (1/n_layers)", **REFERENCE_LINE))
    if any_whole:
        handles.append(Line2D([], [], marker="*", color="black", linestyle="none",
                              label=f"a layer ≥ {100 * WHOLE_LAYER:g}% attention"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)), fontsize=5.5)
    note = _left_out(len(shown), left)
    if note:
        fig.suptitle(note, fontsize=6)
    return fig


def per_layer_usage(runs: pd.DataFrame, out_dir: Path, name: str = "audit_layers") -> list[Path]:
    """Is a 25% plateau one whole layer? Each routed row's usage as a stack of its layers' usage
    (each / n_layers, so the stack is the model's usage), against 1/n_layers; a star marks a row
    with a layer at ≥ 95% attention."""
    return _save(_draw_per_layer_usage, (runs,), out_dir, name)


# -- 3. seeds -----------------------------------------------------------------------------------
def _draw_seed_strip(runs: pd.DataFrame) -> Figure | None:
    rows = _routed(runs)
    if rows is None or rows.empty:
        return None
    g = _row_order(rows)
    labels = _tick_labels(g)
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
                text = f"{v:.3f}" if metric == "accuracy" else _percent(v)
                ax.annotate(text, (xi, yv), xytext=(4, 0), textcoords="offset points", fontsize=5, va="center")
        s = interval(metric, values)
        if s is not None:
            lo = max(s.low, floor) if metric == "usage" else s.low
            ax.axhspan(lo, max(s.high, lo), color=GREY, alpha=0.18, linewidth=0, gid="interval")
            ax.axhline(max(s.mean, floor) if metric == "usage" else s.mean, color="black", linewidth=1.0,
                       gid="mean")
        ax.set_xticks(x, labels)
        ax.set_xlim(-0.6, len(g) - 0.4 + 0.4)
        ax.set_xlabel("seed")
        if s is None:
            kind = "no values"
        elif s.kind.startswith("t over"):
            kind = f"mean and 95% t-interval over {s.n} seeds"
        else:
            kind = f"mean and {s.kind}"
        if metric == "accuracy":
            ax.axhline(CLAIM_ACCURACY, gid="claim", **REFERENCE_LINE)
            ax.text(-0.55, CLAIM_ACCURACY, f"claim {CLAIM_ACCURACY:g}", color=GREY, fontsize=5.5, va="bottom")
            finite = values[~np.isnan(values)]
            bottom = min([CLAIM_ACCURACY - 0.02] + list(finite - 0.02) + ([s.low - 0.01] if s is not None else []))
            ax.set_ylim(max(-0.02, bottom), 1.01)
            ax.set_ylabel("test accuracy")
            _title(ax, "Accuracy per seed", kind)
        else:
            ax.set_yscale("log")
            ax.axhline(CLAIM_USAGE, gid="claim", **REFERENCE_LINE)
            ax.text(-0.55, CLAIM_USAGE * 1.1, f"claim {100 * CLAIM_USAGE:g}%", color=GREY, fontsize=5.5, va="bottom")
            pairs = set()
            if {"seq_len", "n_layers"} <= set(g.columns):
                pairs = {(int(a), int(b)) for a, b in zip(g["seq_len"], g["n_layers"])
                         if not _is_nan(a) and not _is_nan(b) and a > 0 and b > 0}
            for seq_len, n_layers in sorted(pairs):
                one = 1.0 / (seq_len * n_layers)
                ax.axhline(one, color=GREY, linewidth=0.8, linestyle=":", gid="one_position")
                ax.text(-0.55, one * 1.1, f"one position in one layer (1/({seq_len}·{n_layers}))", color=GREY,
                        fontsize=5.5, va="bottom")
            ax.set_ylim(USAGE_FLOOR * 0.7, 1.5)
            ax.set_ylabel("attention usage (fraction, log)")
            _title(ax, "Usage per seed", kind)
    handles = [Line2D([], [], color=colour, marker=marker, linestyle="none", label="one seed"),
               Line2D([], [], color="black", linewidth=1.0, label="mean over seeds"),
               Patch(facecolor=GREY, alpha=0.18, label="interval of the mean (title)"),
               Line2D([], [], label="claim threshold", **REFERENCE_LINE)]
    fig.legend(handles=handles, loc="outside lower center", ncols=4)
    fig.suptitle(_cell_note(rows), fontsize=7)
    return fig


def seed_strip(runs: pd.DataFrame, out_dir: Path, name: str = "audit_seeds") -> list[Path]:
    """What do the seeds really do? Accuracy and usage (log) of each seed of the routed rows,
    with the mean and its 95% interval, against the claim's thresholds (accuracy 0.98, usage
    0.5%) and one position in one layer."""
    return _save(_draw_seed_strip, (runs,), out_dir, name)


# -- 4. controls --------------------------------------------------------------------------------
def _draw_controls_bars(controls: pd.DataFrame) -> Figure | None:
    if controls is None or controls.empty or "control" not in controls.columns:
        return None
    rows = controls[controls["control"].isin(CONTROLS)]
    if rows.empty:
        return None
    other = sorted(set(map(str, controls["control"].dropna())) - set(CONTROLS))
    shown, left, groups = _panels(rows, with_lambda=False)
    n = len(shown)
    ncols = min(2, n)
    fig = new_figure(SINGLE_COLUMN_IN if n == 1 else DOUBLE_COLUMN_IN, 0.9 + 2.0 * (-(-n // ncols)))
    axes = _grid(fig, n, max_cols=2)
    for ax, key in zip(axes, shown):
        g = groups[key]
        present = [c for c in CONTROLS if (g["control"] == c).any()]
        for x, control in enumerate(present):
            label, colour, marker = CONTROL_STYLES[control]
            c = g[g["control"] == control]
            acc = c["accuracy"].astype(float).dropna()
            mean = float(acc.mean()) if len(acc) else 0.0
            bars = ax.bar([x], [mean], width=0.7, color=colour, edgecolor="black", linewidth=0.4, alpha=0.85)
            bars.patches[0].set_gid(control)
            k = len(acc)
            offsets = (np.arange(k) - (k - 1) / 2) * (0.45 / max(k, 4))
            ax.plot(x + offsets, acc.to_numpy(), marker=marker, color="black", markerfacecolor="white",
                    markeredgewidth=0.6, markersize=3, linestyle="none", gid=f"seeds:{control}")
            usage = c["usage"].astype(float).mean() if "usage" in c.columns else float("nan")
            ax.text(x, min(max(mean, float(acc.max()) if k else 0.0), 1.0) + 0.02, _percent(usage),
                    ha="center", va="bottom", fontsize=5, rotation=90 if len(present) > 5 else 0,
                    gid=f"usage:{control}")
        ax.set_xticks(range(len(present)), [CONTROL_STYLES[c][0].replace(" ", "\n", 1) for c in present],
                      fontsize=5.5)
        ax.set_xlim(-0.6, len(present) - 0.4)
        ax.set_ylim(0.0, 1.22)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.set_ylabel("test accuracy")
        lams = sorted({_lam(r) for _, r in g.iterrows()} - {None})
        routers = sorted({_router(r) for _, r in g.iterrows()} - {""})
        note = []
        if lams:
            note.append("λ→" + ", ".join(f"{v:g}" for v in lams) + (" pooled" if len(lams) > 1 else ""))
        if routers:
            note.append("router " + ", ".join(routers))
        _title(ax, _panel_name(key), "; ".join(note), width=44)
    notes = [n for n in (_left_out(len(shown), left),
                         f"not shown: {', '.join(other)}" if other else "",
                         "bar: mean over seeds; dot: one seed; text: mean attention usage") if n]
    fig.suptitle("\n".join(notes), fontsize=6)
    return fig


def controls_bars(controls: pd.DataFrame, out_dir: Path, name: str = "audit_controls") -> list[Path]:
    """Does the learned placement beat trivial placements at the same budget? Per (task, distance,
    tier), the mean test accuracy over seeds of each control (learned, random, last, oracle, one
    whole layer, ConvOnly, AttnOnly), each seed a dot, each bar labelled with its mean usage."""
    return _save(_draw_controls_bars, (controls,), out_dir, name)


# -- 5. attention positions per sequence --------------------------------------------------------
def _count_columns(df: pd.DataFrame) -> list[tuple[int, str]]:
    return sorted((int(m.group(1)), c) for c in df.columns if (m := _COUNT_LAYER.match(str(c))))


def _draw_attention_counts(analysis: pd.DataFrame) -> Figure | None:
    if analysis is None or analysis.empty:
        return None
    cols = _count_columns(analysis)
    if not cols:
        return None
    shown, left, groups = _panels(analysis)
    n = len(shown)
    ncols = min(4, n)
    fig = new_figure(SINGLE_COLUMN_IN if n == 1 else DOUBLE_COLUMN_IN, 0.8 + 1.7 * (-(-n // ncols)))
    axes = _grid(fig, n)
    used_layers, below = set(), False
    top = 1.0
    for ax, key in zip(axes, shown):
        g = _row_order(groups[key])
        present = [(k, c) for k, c in cols if g[c].notna().any()]
        width = 0.8 / max(len(present), 1)
        for j, (k, c) in enumerate(present):
            used_layers.add(k)
            colour = LAYER_COLOURS[k % len(LAYER_COLOURS)]
            xs = np.arange(len(g)) + (j - (len(present) - 1) / 2) * width
            values = g[c].astype(float).to_numpy()
            ok = ~np.isnan(values)
            heights = np.maximum(values[ok], COUNT_FLOOR) - COUNT_FLOOR
            bars = ax.bar(xs[ok], heights, bottom=COUNT_FLOOR, width=width * 0.92, color=colour,
                          hatch=LAYER_HATCHES[k % len(LAYER_HATCHES)], edgecolor="black", linewidth=0.3)
            for p in bars.patches:
                p.set_gid(f"layer {k}")
            low = ok & (values < COUNT_FLOOR)
            if low.any():
                below = True
                ax.plot(xs[low], np.full(low.sum(), COUNT_FLOOR * 1.25), marker="v", color=colour,
                        markeredgecolor="black", markeredgewidth=0.3, linestyle="none", markersize=3)
            if ok.any():
                top = max(top, float(np.nanmax(values)))
        ax.axhline(1.0, gid="one_query", **REFERENCE_LINE)
        ax.set_yscale("log")
        ax.set_xticks(range(len(g)), _tick_labels(g))
        ax.set_xlim(-0.6, len(g) - 0.4)
        ax.set_xlabel("seed")
        ax.set_ylabel("attention positions / sequence")
        _title(ax, _panel_name(key), width=30)
    for ax in axes:
        ax.set_ylim(COUNT_FLOOR, top * 2.0)
    handles = [Patch(facecolor=LAYER_COLOURS[k % len(LAYER_COLOURS)], hatch=LAYER_HATCHES[k % len(LAYER_HATCHES)],
                     edgecolor="black", linewidth=0.3, label=f"layer {k}") for k in sorted(used_layers)]
    handles.append(Line2D([], [], label="one query (1 position)", **REFERENCE_LINE))
    if below:
        handles.append(Line2D([], [], marker="v", color=GREY, linestyle="none", label=f"below {COUNT_FLOOR:g}"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(5, len(handles)), fontsize=5.5)
    note = _left_out(len(shown), left)
    if note:
        fig.suptitle(note, fontsize=6)
    return fig


def attention_counts(analysis: pd.DataFrame, out_dir: Path, name: str = "audit_counts") -> list[Path]:
    """Is 0.3% less than one query per layer? The mean number of positions per test sequence
    that each layer sends to attention, per routed cell (log scale), against one position."""
    return _save(_draw_attention_counts, (analysis,), out_dir, name)


# -- 6. accuracy against executed compute -------------------------------------------------------
def _pareto_styles(names: list[str]) -> dict[str, tuple[str, str]]:
    """series name -> (colour, marker): the house SERIES by label, then distinct spares."""
    known = {label: (colour, marker) for label, colour, marker in SERIES.values()}
    used_markers = {m for n in names if n in known for m in [known[n][1]]}
    spares = [(c, m) for c, m in SPARE if m not in used_markers]
    colours = list(OKABE_ITO.values())
    spares += [(colours[i % len(colours)], m) for i, m in enumerate(EXTRA_MARKERS) if m not in used_markers]
    out, i = {}, 0
    for name in names:
        if name in known:
            out[name] = known[name]
        else:
            out[name] = spares[i % len(spares)]
            i += 1
    return out


def pareto_frontier(means: dict[str, tuple[float, float]]) -> list[str]:
    """The series on the upper-left frontier of (compute, accuracy) means, by compute: none has
    another series with no more compute and no less accuracy (one of them strictly)."""
    out = []
    for name, (x, y) in means.items():
        dominated = any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for other, (x2, y2) in means.items()
                        if other != name)
        if not dominated:
            out.append(name)
    return sorted(out, key=lambda s: (means[s][0], -means[s][1]))


def _draw_pareto_audit(points: pd.DataFrame, title: str = "") -> Figure | None:
    if points is None or points.empty:
        return None
    pts = points.assign(_x=points["macs_forward_executed"].astype(float) / 1e6,
                        _y=points["accuracy"].astype(float)).dropna(subset=["_x", "_y"])
    if pts.empty:
        return None
    names = list(dict.fromkeys(map(str, pts["series"])))
    styles = _pareto_styles(names)
    fig = new_figure(SINGLE_COLUMN_IN, 3.4)
    ax = fig.add_subplot()
    means = {}
    for name in names:
        g = pts[pts["series"].astype(str) == name]
        x, y = g["_x"], g["_y"]
        mx, my = float(x.mean()), float(y.mean())
        means[name] = (mx, my)
        # the range over seeds; max(0, .): a mean of equal values can round past them
        xerr = [[max(0.0, mx - float(x.min()))], [max(0.0, float(x.max()) - mx)]]
        yerr = [[max(0.0, my - float(y.min()))], [max(0.0, float(y.max()) - my)]]
        colour, marker = styles[name]
        n = g["seed"].nunique() if "seed" in g.columns else len(g)
        ax.errorbar([mx], [my], xerr=xerr, yerr=yerr, color=colour, marker=marker, linestyle="none",
                    markeredgecolor="black", markeredgewidth=0.3, label=f"{name} (n={n})", gid=f"series:{name}")
    front = pareto_frontier(means)
    ax.step([means[s][0] for s in front], [means[s][1] for s in front], where="post", color=GREY, linewidth=0.6,
            zorder=0.5, gid="frontier", label="Pareto frontier (means)")
    xs = pts["_x"]
    if (xs > 0).all() and xs.max() > 10 * xs.min():
        ax.set_xscale("log")
    ax.set_xlabel("executed forward MMAC / sequence")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(-0.02, 1.02)
    fig.legend(loc="outside lower center", ncols=2, fontsize=5.5)
    _title(ax, title or "Accuracy vs executed compute")
    return fig


def pareto_audit(points: pd.DataFrame, out_dir: Path, name: str = "audit_pareto", title: str = "") -> list[Path]:
    """Accuracy against executed compute for the λ sweep, the baselines and the controls: each
    series' mean over seeds with the seed range, and the upper-left frontier of the means
    (what no other series beats on both compute and accuracy)."""
    return _save(_draw_pareto_audit, (points, title), out_dir, name)


# -- 7. every routing map -----------------------------------------------------------------------
def _draw_routing_maps(routing: pd.DataFrame, runs: pd.DataFrame) -> Figure | None:
    if routing is None or routing.empty:
        return None
    r = routing[routing["model"] == "routed"] if "model" in routing.columns else routing
    if r.empty:
        return None
    if "config_hash" in r.columns:
        cell_id = r["config_hash"].astype(str)
    else:  # one cell per (task, distance, lambda, seed) present
        parts = [c for c in ("task", "distance", "lambda_target", "seed") if c in r.columns]
        cell_id = r[parts].astype(str).agg("|".join, axis=1) if parts else pd.Series("", index=r.index)
    r = r.assign(_cell=cell_id)
    first = r.drop_duplicates("_cell")
    cells = sorted(((_lam(row), -1 if _seed(row) is None else _seed(row), row["_cell"], row)
                    for _, row in first.iterrows()), key=lambda c: (_sort_key((c[0],)), c[1], c[2]))
    shown = cells[:MAX_MAPS]
    usage = {}
    if runs is not None and not runs.empty and {"config_hash", "usage"} <= set(runs.columns):
        usage = dict(zip(runs["config_hash"].astype(str), runs["usage"]))
    varying = []
    for col, fmt in (("task", "{}"), ("distance", "d={:.0f}"), ("lambda_target", "λ→{:g}")):
        if col in first.columns and first[col].nunique(dropna=True) > 1:
            varying.append((col, fmt))
    ncols = min(MAX_MAP_COLUMNS, len(shown))
    nrows = -(-len(shown) // ncols)
    fig = new_figure(DOUBLE_COLUMN_IN, 0.6 + 1.25 * nrows)
    axes = _grid(fig, len(shown), max_cols=MAX_MAP_COLUMNS)
    image = None
    for i, (ax, (lam, seed, cell, row)) in enumerate(zip(axes, shown)):
        g = r[r["_cell"] == cell]
        grid = g.pivot_table(index="layer", columns="position", values="attention_rate", aggfunc="mean")
        grid = grid.reindex(columns=range(int(grid.columns.min()), int(grid.columns.max()) + 1))
        n_layers = grid.shape[0]
        image = ax.imshow(grid.to_numpy(dtype=float), aspect="auto", origin="lower", vmin=0.0, vmax=1.0,
                          interpolation="nearest", extent=(grid.columns[0] - 0.5, grid.columns[-1] + 0.5,
                                                           -0.5, n_layers - 0.5))
        ax.set_yticks(range(n_layers), [str(int(v)) for v in grid.index])
        if i % ncols == 0:
            ax.set_ylabel("layer")
        if i + ncols >= len(shown):  # no panel below
            ax.set_xlabel("position")
        prefix = " ".join(fmt.format(row[col]) for col, fmt in varying if not _is_nan(row[col]))
        s = "?" if seed < 0 else str(seed)
        ax.set_title(f"{prefix + chr(10) if prefix else ''}seed {s}: usage {_percent(usage.get(cell))}",
                     loc="left", fontsize=6)
    fig.colorbar(image, ax=axes, label="attention rate", shrink=0.9)
    if len(cells) > len(shown):
        fig.suptitle(f"first {len(shown)} of {len(cells)} routed cells (by λ, seed)", fontsize=6)
    return fig


def routing_maps(routing: pd.DataFrame, runs: pd.DataFrame, out_dir: Path,
                 name: str = "audit_routing_maps") -> list[Path]:
    """Where does each seed attend, not only the best one? The attention rate per layer and
    position of every routed cell (up to 24, by λ then seed), titled with the cell's usage."""
    return _save(_draw_routing_maps, (routing, runs), out_dir, name)


# -- saving -------------------------------------------------------------------------------------
def _save(draw, args: tuple, out_dir: Path, name: str) -> list[Path]:
    """Draw in the house style and write PDF and PNG; [] and nothing written when nothing to draw."""
    with style():
        fig = draw(*args)
    if fig is None:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return save(fig, out_dir, name)
