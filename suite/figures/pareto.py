"""The regression picture: accuracy against executed forward MACs per (task, distance), for the
candidate router, the original router and the baselines (mean over seeds, with the range)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from suite.figures.common import seed_range
from suite.figures.style import DOUBLE_COLUMN_IN, OKABE_ITO, new_figure, save, style

#: the same colours as the other figures: AttnOnly blue, ConvOnly orange, the original router vermillion
COLOURS = {"candidate": OKABE_ITO["reddish_purple"], "gumbel": OKABE_ITO["vermillion"], "attn": OKABE_ITO["blue"],
           "conv": OKABE_ITO["orange"]}
MARKERS = {"candidate": "v", "gumbel": "D", "attn": "o", "conv": "s"}


def pareto(series: dict[str, pd.DataFrame], out_dir: Path, title: str) -> list[Path]:
    """`series`: name -> rows (task, distance, seed, accuracy, macs_forward_executed)."""
    cells = sorted({(t, int(d)) for df in series.values() for t, d in zip(df["task"], df["distance"])})
    with style():
        fig = new_figure(DOUBLE_COLUMN_IN, 2.4)
        axes = fig.subplots(1, len(cells), squeeze=False)[0]
        for ax, (task, distance) in zip(axes, cells):
            for name, df in series.items():
                g = df[(df["task"] == task) & (df["distance"] == distance)]
                if g.empty:
                    continue
                (mx, xerr), (my, yerr) = seed_range(g["macs_forward_executed"] / 1e6), seed_range(g["accuracy"])
                ax.errorbar(mx, my, xerr=xerr, yerr=yerr, marker=MARKERS.get(name, "o"),
                            color=COLOURS.get(name, "black"), label=name, linestyle="none", capsize=2)
            ax.set_title(f"{task} d={distance}")
            ax.set_xlabel("executed forward MMAC / sequence")
            ax.set_ylim(-0.02, 1.02)
        axes[0].set_ylabel("test accuracy")
        axes[-1].legend(loc="lower right", fontsize="x-small")
        fig.suptitle(title, fontsize="small")
    return save(fig, out_dir, "pareto")
