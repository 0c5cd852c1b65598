"""Figures of one results run, drawn only from its files, into <run dir>/figures/ (PDF and PNG).

Each figure bears on a claim of the original (its function's docstring says which). Every
number comes from runs.csv, history.csv, routing.csv (read through the results store, failed
cells left out) or a latency benchmark CSV; the published values are suite/data/published.csv.
Error bars are the verdicts' own intervals (suite.judge.stats.interval). Inputs are checked
before anything is drawn, so a missing column fails the whole call with one line and leaves
the figures folder as it was; a missing optional file skips only its figure.
"""
from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from suite.errors import ConfigError
from suite.figures.style import (DOUBLE_COLUMN_IN, EXECUTION_LINES, GREY, OKABE_ITO, PUBLISHED_MARKER, REFERENCE_LINE,
                         SAVINGS, SERIES, SINGLE_COLUMN_IN, SPARE, new_figure, save, series_key, series_styles,
                         style)
from suite.judge.published import key, load_published
from suite.judge.stats import Interval, interval
from suite.run.store import HISTORY, ROUTING, RUNS, RunStore
from suite.schema.rows import faithful_rows, ok_rows

LATENCY = "latency.csv"  # a benchmark's output (results/<version>/bench/), not a run file
FIGURES = ("accuracy_vs_distance", "usage_vs_distance", "savings", "routing_map", "training_curves", "scaling")
TASK = "assoc_recall"
CHANCE = 0.01  # assoc_recall: one of 100 values
#: the publicised savings (claims H-savings-*): 1 - published usage of these (distances, lambda)
HEADLINE_SAVINGS = (((126,), 0.5), ((254, 510), 0.1))
MAX_ROUTED_CURVES = 4
MAX_BASELINE_CURVES = 6
MAX_ROUTING_PANELS = 4
USAGE_FLOOR = 1e-4  # log axis: a usage of 0 is drawn here

#: figure -> (file, columns it cannot be drawn without)
NEEDS = {
    "accuracy_vs_distance": (RUNS, ("model", "distance", "lambda_target", "seed", "protocol", "faithful_model",
                                    "accuracy", "test_correct", "test_total")),
    "usage_vs_distance": (RUNS, ("model", "distance", "lambda_target", "seed", "protocol", "faithful_model",
                                 "usage", "seq_len", "n_layers")),
    "savings": (RUNS, ("model", "distance", "lambda_target", "seed", "protocol", "faithful_model", "usage")),
    "routing_map": (ROUTING, ("model", "distance", "lambda_target", "seed", "layer", "position", "attention_rate")),
    "training_curves": (HISTORY, ("config_hash", "model", "distance", "lambda_target", "seed", "phase", "epoch",
                                  "lambda", "val_accuracy", "usage")),
    "scaling": (LATENCY, ("model", "execution", "seq_len", "median_ms", "macs")),
}


def _published() -> dict:
    """(distance, series key) -> (accuracy, usage or None)."""
    return {(d, (model, lam)): (c.accuracy, c.usage) for (d, model, lam), c in load_published().items()}


def _published_savings() -> list[tuple[float, str]]:
    """(saving, legend label) of each publicised headline, from the published usage."""
    cells = load_published()
    out = []
    for distances, lam in HEADLINE_SAVINGS:
        saved = {round(1.0 - cells[key(d, "routed", lam)].usage, 6) for d in distances}
        if len(saved) != 1:
            raise ConfigError(f"published values: usage of Routed λ→{lam:g} differs over d={distances}")
        where = f"d={distances[0]}, λ→{lam:g}" if len(distances) == 1 else f"d={', '.join(map(str, distances))}"
        value = saved.pop()
        out.append((value, f"published {100 * value:g}% ({where})"))
    return out


PUBLISHED = _published()
PUBLISHED_SAVINGS = _published_savings()


# -- reading ------------------------------------------------------------------------------------
@dataclass
class Run:
    """A run's files as read, and the figures that cannot be drawn from them (and why)."""
    path: Path
    runs: pd.DataFrame
    history: pd.DataFrame | None = None
    routing: pd.DataFrame | None = None
    latency: pd.DataFrame | None = None
    latency_path: Path | None = None
    skipped: dict = field(default_factory=dict)  # figure -> why


def _table(store: RunStore, name: str) -> pd.DataFrame | None:
    """A per-cell table of the run, None when the run has none, one line when it cannot be read."""
    if not (store.path / name).is_file():
        return None
    try:
        return store.table(name)
    except pd.errors.EmptyDataError:
        raise ConfigError(f"{name}: '{store.path / name}' is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ConfigError(f"{name}: cannot parse '{store.path / name}' ({str(e).strip().splitlines()[0]})") from None


def _latency(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ConfigError(f"latency csv: '{path}' is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ConfigError(f"latency csv: cannot parse '{path}' ({str(e).strip().splitlines()[0]})") from None


def load_run(run_dir, latency_csv=None) -> Run:
    """Read a run's files and check every figure's columns before anything is drawn. `runs`
    holds the cells that finished: a failed cell has no metrics to draw."""
    store = RunStore.open(run_dir)
    path = store.path
    if not (path / RUNS).is_file():
        raise ConfigError(f"run dir: '{path}' has no {RUNS} (no cell finished yet)")
    run = Run(path, ok_rows(store.runs()))
    if run.runs.empty:
        raise ConfigError(f"{RUNS}: '{path / RUNS}' has no finished cell")
    run.history, run.routing = _table(store, HISTORY), _table(store, ROUTING)
    if latency_csv is not None:
        run.latency_path = Path(latency_csv)
        if not run.latency_path.is_file():
            raise ConfigError(f"latency-csv: '{run.latency_path}' is not a file")
    elif (path / LATENCY).is_file():
        run.latency_path = path / LATENCY
    elif (path.parent / "bench" / LATENCY).is_file():  # results/<version>/bench/ (nox -s bench)
        run.latency_path = path.parent / "bench" / LATENCY
    if run.latency_path is not None:
        run.latency = _latency(run.latency_path)

    frames = {RUNS: run.runs, HISTORY: run.history, ROUTING: run.routing, LATENCY: run.latency}
    for figure, (file, columns) in NEEDS.items():
        df = frames[file]
        if df is None:
            run.skipped[figure] = (f"no latency benchmark CSV (pass --latency-csv or put {LATENCY} in {path})"
                                   if file == LATENCY else f"no {file} in {path}")
            continue
        for col in columns:
            if col not in df.columns:
                shown = "latency csv" if file == LATENCY else file
                raise ConfigError(f"{shown}: missing column '{col}' needed by the {figure} figure")
        if df.empty:
            run.skipped[figure] = f"{run.latency_path if file == LATENCY else path / file} has no rows"
    if "routing_map" not in run.skipped and run.routing[run.routing["model"] == "routed"].empty:
        run.skipped["routing_map"] = f"{ROUTING} has no routed rows"
    return run


def _main_rows(runs: pd.DataFrame) -> tuple[pd.DataFrame, str, bool]:
    """(rows, note, published applies): faithful assoc_recall rows; every row if none are faithful."""
    rows, notes, pub = runs, [], True
    if "task" in runs.columns:
        if (runs["task"] == TASK).any():
            rows = runs[runs["task"] == TASK]
        else:
            pub = False
            notes.append(f"task {', '.join(sorted(map(str, runs['task'].unique())))}: no published values")
    faithful = faithful_rows(rows)
    faithful = faithful[faithful["protocol"] == "faithful"]
    if faithful.empty:
        protocols = ", ".join(sorted(map(str, rows["protocol"].unique())))
        notes.append(f"no faithful cells: all {len(rows)} rows shown (protocol {protocols})")
        return rows, "; ".join(notes), pub
    return faithful, "; ".join(notes), pub


def _accuracy(cell: pd.DataFrame) -> Interval | None:
    """The accuracy interval the claims' verdicts use: Wilson over test examples below 3 seeds."""
    return interval("accuracy", cell["accuracy"], cell["test_correct"], cell["test_total"])


def _keys(df: pd.DataFrame) -> pd.Series:
    return pd.Series([series_key(m, lam) for m, lam in zip(df["model"], df["lambda_target"])], index=df.index,
                     dtype=object)


def _legend_label(label: str, ns) -> str:
    """A series' name with its seed counts, or 'not run' where only the published value is shown."""
    if not ns:
        return f"{label} (not run)"
    lo, hi = min(ns), max(ns)
    return f"{label} (n={lo})" if lo == hi else f"{label} (n={lo}–{hi})"


def _title(ax, text: str, note: str = "", width: int = 52) -> None:
    ax.set_title(textwrap.fill(text + (f" — {note}" if note else ""), width), loc="left")


def _log2_distance_axis(ax, distances) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(distances, [str(int(d)) for d in distances])
    ax.minorticks_off()
    ax.set_xlabel("distance (tokens)")


def _errorbar(ax, x, s, colour, marker, clip=(0.0, 1.0), **kw):
    mean, lo, hi = s.mean, s.low, s.high
    y = min(max(mean, clip[0]), clip[1])
    err = [[max(y - max(lo, clip[0]), 0.0)], [max(min(hi, clip[1]) - y, 0.0)]]
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


# -- figures ------------------------------------------------------------------------------------
def accuracy_vs_distance(run: Run):
    """Main table, accuracy (claims T1-attn, T1-conv, T1-r01, T1-r05): the original published
    AttnOnly and Routed λ→0.5 near 100% out to 2046, ConvOnly at chance, Routed λ→0.1
    collapsing beyond 510. Ours (filled, mean and 95% interval over seeds) beside published
    (hollow)."""
    rows, note, pub = _main_rows(run.runs)
    rows = rows.assign(_key=_keys(rows))
    keys = set(rows["_key"]) | ({k for _, k in PUBLISHED} if pub else set())
    styles = series_styles(keys)
    distances = sorted(set(rows["distance"].astype(int)) | ({d for d, _ in PUBLISHED} if pub else set()))
    fig = new_figure(SINGLE_COLUMN_IN, 3.0)
    ax = fig.add_subplot()
    for i, key in enumerate(styles):
        published = [(d, PUBLISHED[(d, key)][0]) for d in distances if (d, key) in PUBLISHED] if pub else None
        _series(ax, rows[rows["_key"] == key], i, len(styles), styles[key],
                _accuracy,
                (0.0, 1.0), published, seed_dots="accuracy")
    if pub:
        ax.axhline(CHANCE, **REFERENCE_LINE)
        ax.text(distances[0], CHANCE + 0.02, "chance", color=GREY, fontsize=6)
        ax.plot([], [], linestyle="none", marker="o", color=GREY, label="published", **PUBLISHED_MARKER)
    _log2_distance_axis(ax, distances)
    ax.set_ylim(-0.03, 1.05)
    ax.set_ylabel("test accuracy")
    fig.legend(loc="outside lower center", ncols=2)
    _title(ax, "Accuracy vs distance", note)
    return fig


def usage_vs_distance(run: Run):
    """Main table, attention usage of Routed: how much of the attention budget the router
    keeps, against one routed position per sequence per layer and one whole layer."""
    rows, note, pub = _main_rows(run.runs)
    routed = rows[rows["model"] == "routed"]
    routed = routed.assign(_key=_keys(routed))
    keys = set(routed["_key"]) | ({k for _, k in PUBLISHED if k[0] == "routed"} if pub else set())
    styles = series_styles(keys)
    distances = sorted(set(rows["distance"].astype(int)) | ({d for d, _ in PUBLISHED} if pub else set()))
    fig = new_figure(SINGLE_COLUMN_IN, 3.0)
    ax = fig.add_subplot()
    for i, key in enumerate(styles):
        published = [(d, PUBLISHED[(d, key)][1]) for d in distances if (d, key) in PUBLISHED] if pub else None
        _series(ax, routed[routed["_key"] == key], i, len(styles), styles[key],
                lambda cell: interval("usage", cell["usage"]), (USAGE_FLOOR, 1.0), published)
    ref = routed if len(routed) else rows
    offset = float((ref["seq_len"] - ref["distance"]).median())
    grid = np.geomspace(distances[0] / 1.2, distances[-1] * 1.2, 64)
    ax.plot(grid, 1.0 / (grid + offset), color=GREY, linewidth=0.8, linestyle=":",
            label="one position per sequence per layer (1/seq_len)")
    for n_layers in sorted(set(ref["n_layers"].dropna().astype(int))):
        ax.axhline(1.0 / n_layers, **REFERENCE_LINE)
        ax.text(distances[0] / 1.15, 1.0 / n_layers * 1.12, f"one whole layer (1/{n_layers})", color=GREY, fontsize=6)
    if pub:
        ax.plot([], [], linestyle="none", marker="o", color=GREY, label="published", **PUBLISHED_MARKER)
    if routed.empty:
        note = "; ".join(x for x in (note, "no routed cells in this run") if x)
    _log2_distance_axis(ax, distances)
    ax.set_yscale("log")
    ax.set_ylim(USAGE_FLOOR * 0.7, 1.5)
    ax.set_ylabel("attention usage (fraction)")
    fig.legend(loc="outside lower center", ncols=2)
    _title(ax, "Attention usage of Routed vs distance", note)
    return fig


def savings(run: Run):
    """The compute-savings claim (99.7% at d=126 with λ→0.5, 75% at 254 and 510), read three
    ways: notional (1 − usage, as published), executed FLOPs and measured latency."""
    rows, note, pub = _main_rows(run.runs)
    routed = rows[rows["model"] == "routed"]
    readings = {"notional": ("savings_notional", 1.0 - routed["usage"])}
    for name, col in (("executed", "savings_executed"), ("latency", "savings_latency")):
        readings[name] = (col, routed[col] if col in routed.columns else None)
    groups = sorted(routed.groupby(["distance", "lambda_target"]).groups)
    fig = new_figure(SINGLE_COLUMN_IN if len(groups) <= 4 else DOUBLE_COLUMN_IN, 3.0)
    ax = fig.add_subplot()
    width = 0.26
    lows, handles = [0.0], []
    for j, (name, (metric, values)) in enumerate(readings.items()):
        label, colour = SAVINGS[name]
        handles.append(Patch(facecolor=colour, edgecolor="black", linewidth=0.4,
                             label=label if values is not None else f"{label} — not measured"))
        for gi, (d, lam) in enumerate(groups):
            x = gi + (j - 1) * width
            cell = (routed["distance"] == d) & (routed["lambda_target"] == lam)
            s = None if values is None else interval(metric, values[cell])
            if s is None:
                ax.text(x, 0.02, "not measured", rotation=90, ha="center", va="bottom", fontsize=5.5, color=GREY)
                continue
            mean, lo, hi = s.mean, s.low, s.high
            ax.bar([x], [mean], width=width * 0.92, color=colour, edgecolor="black", linewidth=0.4)
            if hi > lo:
                ax.errorbar([x], [mean], yerr=[[mean - lo], [hi - mean]], color="black", linestyle="none",
                            linewidth=0.8)
            lows.append(lo)
    for value, label in PUBLISHED_SAVINGS if pub else ():
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
    _title(ax, "Compute savings of Routed", note)
    return fig


def routing_map(run: Run):
    """Where Routed attends: the attention rate per layer and position of the headline cell
    (λ→0.5 at the smallest distance, seed 0), behind the usage claims."""
    r = run.routing[run.routing["model"] == "routed"]
    lams = sorted(set(r["lambda_target"].astype(float)))
    lam = 0.5 if 0.5 in lams else lams[-1]
    r = r[r["lambda_target"].astype(float) == lam]
    d = int(r["distance"].min())
    r = r[r["distance"] == d]
    seed = 0 if (r["seed"] == 0).any() else int(r["seed"].min())
    r = r[r["seed"] == seed]
    cells = sorted(r.groupby("config_hash").groups) if "config_hash" in r.columns else [None]
    shown = cells[:MAX_ROUTING_PANELS]
    protocols = {}
    if "config_hash" in run.runs.columns and "protocol" in run.runs.columns:
        protocols = dict(zip(run.runs["config_hash"], run.runs["protocol"]))
    fig = new_figure(DOUBLE_COLUMN_IN, 0.9 + 1.1 * len(shown))
    axes = fig.subplots(len(shown), 1, squeeze=False)[:, 0]
    image = None
    for ax, cell in zip(axes, shown):
        g = r if cell is None else r[r["config_hash"] == cell]
        grid = g.pivot_table(index="layer", columns="position", values="attention_rate", aggfunc="mean")
        grid = grid.reindex(columns=range(int(grid.columns.min()), int(grid.columns.max()) + 1))
        n_layers, n_pos = grid.shape
        image = ax.imshow(grid.to_numpy(dtype=float), aspect="auto", origin="lower", vmin=0.0, vmax=1.0,
                          interpolation="nearest", extent=(grid.columns[0] - 0.5, grid.columns[-1] + 0.5,
                                                           -0.5, n_layers - 0.5))
        ax.set_yticks(range(n_layers), [str(int(x)) for x in grid.index])
        ax.set_ylabel("layer")
        mean = float(np.nanmean(grid.to_numpy(dtype=float)))
        extra = f", {protocols[cell]}" if cell in protocols else ""
        ax.set_title(f"Routed λ→{lam:g}, d={d}, seed {seed}{extra}: mean attention rate {mean:.3f}", loc="left")
    axes[-1].set_xlabel("position")
    fig.colorbar(image, ax=list(axes), label="attention rate", shrink=0.9)
    if len(cells) > len(shown):
        fig.suptitle(f"first {len(shown)} of {len(cells)} cells", fontsize=6)
    return fig


def training_curves(run: Run):
    """The two-phase curriculum at work: phase 1 learns the task with attention free, phase 2
    raises λ and usage falls while validation accuracy should hold."""
    h = run.history.assign(_key=_keys(run.history))
    # seed 0 first, then the headline (smallest distance, largest lambda) first
    cells = h.drop_duplicates("config_hash").assign(_lam=lambda df: -df["lambda_target"].astype(float))
    cells = cells.sort_values(["seed", "distance", "_lam", "model", "config_hash"])
    routed = cells[cells["model"] == "routed"]
    baseline = cells[cells["model"] != "routed"]
    panels = [("routed", c) for c in routed["config_hash"][:MAX_ROUTED_CURVES]]
    if len(baseline):
        panels.append(("baselines", None))
    ncols = 1 if len(panels) == 1 else 2
    nrows = -(-len(panels) // ncols)
    fig = new_figure(SINGLE_COLUMN_IN if ncols == 1 else DOUBLE_COLUMN_IN, 1.9 * nrows + 0.2)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for ax, (kind, cell) in zip(axes, panels):
        if kind == "baselines":
            shown = baseline.iloc[:MAX_BASELINE_CURVES]
            styles = series_styles(shown["_key"])
            for _, c in shown.iterrows():
                g = h[h["config_hash"] == c["config_hash"]].sort_values(["phase", "epoch"])
                label, colour, marker = styles[c["_key"]]
                ax.plot(np.arange(1, len(g) + 1), g["val_accuracy"], color=colour, marker=marker, markersize=2.5,
                        label=f"{label} d={int(c['distance'])} s{int(c['seed'])}")
            more = f" (first {len(shown)} of {len(baseline)})" if len(baseline) > len(shown) else ""
            ax.set_title(f"Baselines: validation accuracy{more}", loc="left")
            ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=5.5)
        else:
            g = h[h["config_hash"] == cell].sort_values(["phase", "epoch"])
            c = g.iloc[0]
            x = np.arange(1, len(g) + 1)
            ax.plot(x, g["val_accuracy"], color="black", label="val accuracy")
            ax.plot(x, g["usage"], color=OKABE_ITO["vermillion"], linestyle="--", label="usage")
            twin = ax.twinx()
            twin.spines["right"].set_visible(True)
            twin.plot(x, g["lambda"], color=OKABE_ITO["bluish_green"], linestyle=":", label="λ (right axis)")
            top = float(np.nanmax(g["lambda"])) if g["lambda"].notna().any() else 0.0
            twin.set_ylim(0, top * 1.1 if top > 0 else 1.0)
            twin.set_ylabel("λ")
            n1 = int((g["phase"] == 1).sum())
            if (g["phase"] == 2).any():
                ax.axvline(n1 + 0.5, **REFERENCE_LINE)
                ax.text(n1 + 0.7, 0.5, "phase 2", color=GREY, fontsize=6, rotation=90, va="center")
            ax.set_title(f"Routed λ→{c['lambda_target']:g}, d={int(c['distance'])}, seed {int(c['seed'])}",
                         loc="left")
            if ax is axes[0]:
                handles = ax.get_legend_handles_labels()
                extra = twin.get_legend_handles_labels()
                fig.legend(handles[0] + extra[0], handles[1] + extra[1], loc="outside lower center", ncols=3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(-0.03, 1.05)
        ax.set_xlabel("epoch" if kind == "baselines" else "epoch (phase 1, then phase 2)")
        ax.set_ylabel("fraction")
    if len(routed) > MAX_ROUTED_CURVES:
        fig.suptitle(f"first {MAX_ROUTED_CURVES} of {len(routed)} routed cells", fontsize=6)
    return fig


def scaling(run: Run):
    """Why notional savings need not be real: forward FLOPs and measured latency against
    sequence length for each model and execution (dense Routed runs both branches)."""
    lat = run.latency.copy()
    if "usage" not in lat.columns:
        lat["usage"] = np.nan
    lat = lat[(lat["seq_len"] > 0)]
    if "batching" in lat.columns:  # one call per batch, as every run measures it
        lat = lat[lat["batching"] == "whole"]
    keys = sorted({(m, e, None if pd.isna(u) else float(u))
                   for m, e, u in zip(lat["model"], lat["execution"], lat["usage"])},
                  key=lambda k: (str(k[0]), str(k[1]), -1.0 if k[2] is None else k[2]))
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
    where = []
    for col in ("device", "batch"):
        if col in lat.columns:
            vals = sorted(map(str, lat[col].dropna().unique()))
            if vals:
                where.append(f"{col} {', '.join(vals)}")
    lengths = sorted(set(lat["seq_len"].astype(int)))
    for ax, ylabel, title in ((ax_flops, "forward MACs", "Compute"), (ax_ms, "median latency (ms)", "Latency")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(lengths, [str(n) for n in lengths])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("sequence length")
        ax.set_ylabel(ylabel)
        _title(ax, title, "; ".join(where) if ax is ax_ms else "")
    ax_flops.legend(loc="upper left", fontsize=5.5)
    return fig


DRAW = {"accuracy_vs_distance": accuracy_vs_distance, "usage_vs_distance": usage_vs_distance, "savings": savings,
        "routing_map": routing_map, "training_curves": training_curves, "scaling": scaling}


def render_figures(run_dir, out_dir=None, latency_csv=None) -> list[Path]:
    """Draw every figure the run's files allow into `out_dir` (default <run dir>/figures/);
    returns the files written (PDF and PNG per figure). Skipped figures are named on stderr."""
    run = load_run(run_dir, latency_csv)
    out = Path(out_dir) if out_dir is not None else run.path / "figures"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in FIGURES:
        if name in run.skipped:
            print(f"note: {name} skipped: {run.skipped[name]}", file=sys.stderr)
            continue
        with style():
            fig = DRAW[name](run)
        written += save(fig, out, name)
    return written
