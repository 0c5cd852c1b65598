"""Drawing helpers every figure module shares, each written once: titles, panel grids, heat maps
of attention rates, seed spreads and ranges, the 'not measured' mark, and writing a figure."""
from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from suite.figures.style import GREY, save, style


def is_nan(v) -> bool:
    """True for None and NaN (pandas' empty cells); False for text and numbers."""
    try:
        return v is None or math.isnan(float(v))
    except (TypeError, ValueError):
        return False


def percent(u) -> str:
    """A fraction as a percent with three significant digits; 'n/a' when missing."""
    return "n/a" if is_nan(u) else f"{100 * float(u):.3g}%"


def title(ax, text: str, note: str = "", width: int = 52) -> None:
    """A left-aligned axes title, with its note after a dash, wrapped to `width` characters."""
    ax.set_title(textwrap.fill(text + (f" — {note}" if note else ""), width), loc="left")


def panel_grid(fig: Figure, n: int, max_cols: int = 4) -> list:
    """n axes in rows of at most `max_cols`; the unused cells of the last row are removed."""
    ncols = min(max_cols, n)
    nrows = -(-n // ncols)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        fig.delaxes(ax)
    return list(axes[:n])


def spread(k: int, width: float) -> np.ndarray:
    """Offsets that spread k seed dots around a bar's centre (never wider apart than k=4 would)."""
    return (np.arange(k) - (k - 1) / 2) * (width / max(k, 4))


def seed_range(values: pd.Series) -> tuple[float, list[list[float]]]:
    """(mean, error-bar arms) spanning the values' range; max(0, .) because a mean of equal values
    can round past them."""
    mean = float(values.mean())
    return mean, [[max(0.0, mean - float(values.min()))], [max(0.0, float(values.max()) - mean)]]


def not_measured(ax, x: float) -> None:
    """The mark of a reading a run did not measure, standing where its bar or dots would be."""
    ax.text(x, 0.02, "not measured", rotation=90, ha="center", va="bottom", fontsize=5.5, color=GREY)


def heat_map(ax, rows: pd.DataFrame):
    """One cell's attention rate per layer (rows) and position (columns), 0 to 1, missing positions
    blank. Returns (image, layer x position grid)."""
    grid = rows.pivot_table(index="layer", columns="position", values="attention_rate", aggfunc="mean")
    grid = grid.reindex(columns=range(int(grid.columns.min()), int(grid.columns.max()) + 1))
    n_layers = grid.shape[0]
    image = ax.imshow(grid.to_numpy(dtype=float), aspect="auto", origin="lower", vmin=0.0, vmax=1.0,
                      interpolation="nearest", extent=(grid.columns[0] - 0.5, grid.columns[-1] + 0.5,
                                                       -0.5, n_layers - 0.5))
    ax.set_yticks(range(n_layers), [str(int(v)) for v in grid.index])
    return image, grid


def rate_colourbar(fig: Figure, image, axes) -> None:
    """The one colour bar that heat maps of attention rate share."""
    fig.colorbar(image, ax=list(axes), label="attention rate", shrink=0.9)


def write(draw, args: tuple, out_dir: Path, name: str) -> list[Path]:
    """Draw in the house style and write `name`.pdf and .png into out_dir; [] and nothing written
    (not even the folder) when `draw` returns None (nothing to draw)."""
    with style():
        fig = draw(*args)
    if fig is None:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return save(fig, out_dir, name)
