"""The run figure of training: the two-phase curriculum per routed cell (validation accuracy,
usage and λ per epoch) and the baselines' validation accuracy."""
from __future__ import annotations

import numpy as np
from matplotlib.ticker import MaxNLocator

from suite.figures.run_data import Run, series_keys
from suite.figures.style import (DOUBLE_COLUMN_IN, GREY, OKABE_ITO, REFERENCE_LINE, SINGLE_COLUMN_IN, new_figure,
                                 series_styles)

MAX_ROUTED_CURVES = 4
MAX_BASELINE_CURVES = 6


def _baselines(ax, h, baseline) -> None:
    """The baselines' validation accuracy per epoch, one line per cell (the first few)."""
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


def _routed(fig, ax, g, legend: bool) -> None:
    """One routed cell: accuracy and usage per epoch, λ on the right axis, the phase boundary."""
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
    ax.set_title(f"Routed λ→{c['lambda_target']:g}, d={int(c['distance'])}, seed {int(c['seed'])}", loc="left")
    if legend:
        handles, labels = ax.get_legend_handles_labels()
        extra, extra_labels = twin.get_legend_handles_labels()
        fig.legend(handles + extra, labels + extra_labels, loc="outside lower center", ncols=3)


def training_curves(run: Run):
    """The two-phase curriculum at work: phase 1 learns the task with attention free, phase 2
    raises λ and usage falls while validation accuracy should hold."""
    h = run.history.assign(_key=series_keys(run.history))
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
            _baselines(ax, h, baseline)
        else:
            _routed(fig, ax, h[h["config_hash"] == cell].sort_values(["phase", "epoch"]), legend=ax is axes[0])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(-0.03, 1.05)
        ax.set_xlabel("epoch" if kind == "baselines" else "epoch (phase 1, then phase 2)")
        ax.set_ylabel("fraction")
    if len(routed) > MAX_ROUTED_CURVES:
        fig.suptitle(f"first {MAX_ROUTED_CURVES} of {len(routed)} routed cells", fontsize=6)
    return fig
