"""The run figures of compute: savings of Routed read three ways (notional 1 − usage as published,
executed FLOPs, measured latency), and FLOPs and latency against sequence length."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from suite.figures.common import not_measured, title
from suite.figures.run_data import Run, main_rows
from suite.figures.sources import published_savings
from suite.figures.style import (DOUBLE_COLUMN_IN, EXECUTION_LINES, GREY, REFERENCE_LINE, SAVINGS, SERIES,
                                 SINGLE_COLUMN_IN, SPARE, new_figure)
from suite.judge.stats import interval

BAR_WIDTH = 0.26


def _bar(ax, x: float, s, colour) -> None:
    """A reading's mean as a bar with its interval."""
    ax.bar([x], [s.mean], width=BAR_WIDTH * 0.92, color=colour, edgecolor="black", linewidth=0.4)
    if s.high > s.low:
        ax.errorbar([x], [s.mean], yerr=[[s.mean - s.low], [s.high - s.mean]], color="black", linestyle="none",
                    linewidth=0.8)


def savings(run: Run):
    """The compute-savings claim (99.7% at d=126 with λ→0.5, 75% at 254 and 510), read three
    ways: notional (1 − usage, as published), executed FLOPs and measured latency."""
    rows, note, pub = main_rows(run.runs)
    routed = rows[rows["model"] == "routed"]
    readings = {"notional": ("savings_notional", 1.0 - routed["usage"])}
    for name, col in (("executed", "savings_executed"), ("latency", "savings_latency")):
        readings[name] = (col, routed[col] if col in routed.columns else None)
    groups = sorted(routed.groupby(["distance", "lambda_target"]).groups)
    fig = new_figure(SINGLE_COLUMN_IN if len(groups) <= 4 else DOUBLE_COLUMN_IN, 3.0)
    ax = fig.add_subplot()
    lows, handles = [0.0], []
    for j, (name, (metric, values)) in enumerate(readings.items()):
        label, colour = SAVINGS[name]
        handles.append(Patch(facecolor=colour, edgecolor="black", linewidth=0.4,
                             label=label if values is not None else f"{label} — not measured"))
        for gi, (d, lam) in enumerate(groups):
            x = gi + (j - 1) * BAR_WIDTH
            cell = (routed["distance"] == d) & (routed["lambda_target"] == lam)
            s = None if values is None else interval(metric, values[cell])
            if s is None:
                not_measured(ax, x)
                continue
            _bar(ax, x, s, colour)
            lows.append(s.low)
    for value, label in published_savings() if pub else ():
        handles.append(ax.axhline(value, label=label, **{**REFERENCE_LINE, "linestyle": "--" if value > 0.9 else ":"}))
    if not groups:
        ax.text(0.5, 0.5, "no routed cells in this run", transform=ax.transAxes, ha="center", color=GREY)
        ax.set_xticks([])
    else:
        ax.set_xticks(range(len(groups)), [f"d={int(d)}\nλ→{lam:g}" for d, lam in groups])
        ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_ylim(min(lows) - 0.08, 1.08)
    ax.set_ylabel("compute saved vs AttnOnly (fraction)")
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=5.5)
    title(ax, "Compute savings of Routed", note)
    return fig


def _latency_rows(latency: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple]]:
    """The benchmark rows drawn (one call per batch, as every run measures it) and their series
    (model, execution, usage or None), sorted."""
    lat = latency.copy()
    if "usage" not in lat.columns:
        lat["usage"] = np.nan
    lat = lat[(lat["seq_len"] > 0)]
    if "batching" in lat.columns:
        lat = lat[lat["batching"] == "whole"]
    keys = sorted({(m, e, None if pd.isna(u) else float(u))
                   for m, e, u in zip(lat["model"], lat["execution"], lat["usage"])},
                  key=lambda k: (str(k[0]), str(k[1]), -1.0 if k[2] is None else k[2]))
    return lat, keys


def _where(lat: pd.DataFrame) -> str:
    """The device and batch the benchmark ran with, as a title note."""
    where = []
    for col in ("device", "batch"):
        if col in lat.columns:
            vals = sorted(map(str, lat[col].dropna().unique()))
            if vals:
                where.append(f"{col} {', '.join(vals)}")
    return "; ".join(where)


def scaling(run: Run):
    """Why notional savings need not be real: forward FLOPs and measured latency against
    sequence length for each model and execution (dense Routed runs both branches)."""
    lat, keys = _latency_rows(run.latency)
    spare = iter(SPARE)
    fig = new_figure(DOUBLE_COLUMN_IN, 2.5)
    ax_flops, ax_ms = fig.subplots(1, 2)
    for model, execution, usage in keys:
        sel = (lat["model"] == model) & (lat["execution"] == execution)
        sel &= lat["usage"].isna() if usage is None else (lat["usage"] == usage)
        g = lat[sel].groupby("seq_len", sort=True).agg(macs=("macs", "median"), ms=("median_ms", "median"))
        if model == "routed" and execution == "sparse":
            colour, marker = next(spare, (GREY, "x"))
        else:
            _, colour, marker = SERIES.get((model, None), SERIES[("routed", 0.5)])
        label = f"{model} {execution}" + (f" u={usage:g}" if usage is not None else "")
        style_kw = dict(color=colour, marker=marker, linestyle=EXECUTION_LINES.get(execution, "-"), label=label)
        for ax, col in ((ax_flops, "macs"), (ax_ms, "ms")):
            ok = g[col] > 0
            ax.plot(g.index[ok], g[col][ok], **style_kw)
    lengths = sorted(set(lat["seq_len"].astype(int)))
    for ax, ylabel, text in ((ax_flops, "forward MACs", "Compute"), (ax_ms, "median latency (ms)", "Latency")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(lengths, [str(n) for n in lengths])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("sequence length")
        ax.set_ylabel(ylabel)
        title(ax, text, _where(lat) if ax is ax_ms else "")
    ax_flops.legend(loc="upper left", fontsize=5.5)
    return fig
