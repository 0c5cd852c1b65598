"""The look of every figure in one place: fonts, sizes, colours, markers, widths, saving.

Colours are Okabe-Ito (distinguishable with the common colour-vision deficiencies) and every
series also has its own marker, so the figures survive grey-scale printing. Nothing here touches
matplotlib's global state: `style()` is an rc context, figures are built with `new_figure()`
(an Agg canvas, no pyplot, no display), and `save()` writes PDF and PNG with fixed metadata so
the same input renders to the same PNG bytes.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from suite.core.io import atomic_file

SINGLE_COLUMN_IN = 3.3
DOUBLE_COLUMN_IN = 6.9
PNG_DPI = 300

#: Okabe-Ito, by name
OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7",
}
GREY = "#7F7F7F"

#: series key (model, lambda_target or None) -> (label, colour, marker); routed cells with
#: another lambda get the spares (`series_styles`)
SERIES = {
    ("attn", None): ("AttnOnly", OKABE_ITO["blue"], "o"),
    ("conv", None): ("ConvOnly", OKABE_ITO["orange"], "s"),
    ("routed", 0.1): ("Routed λ→0.1", OKABE_ITO["bluish_green"], "^"),
    ("routed", 0.5): ("Routed λ→0.5", OKABE_ITO["vermillion"], "D"),
}
SPARE = [(OKABE_ITO["reddish_purple"], "v"), (OKABE_ITO["sky_blue"], "P"), (OKABE_ITO["black"], "X"),
         (OKABE_ITO["yellow"], "h")]

#: the three readings of compute savings
SAVINGS = {
    "notional": ("notional (1 − usage)", OKABE_ITO["sky_blue"]),
    "executed": ("executed FLOPs", OKABE_ITO["blue"]),
    "latency": ("measured latency", OKABE_ITO["reddish_purple"]),
}

#: the three savings readings -> marker where they are drawn as points
SAVINGS_MARKERS = {"notional": "o", "executed": "s", "latency": "D"}

#: audit control -> (label, colour, marker). The swaps act on the trained routed model: "all conv"
#: and "all attention" are its gates forced, not the ConvOnly/AttnOnly baselines (same colours)
CONTROL_STYLES = {
    "learned": ("learned router", OKABE_ITO["vermillion"], "D"),
    "random": ("random positions", OKABE_ITO["sky_blue"], "P"),
    "last": ("last positions", OKABE_ITO["bluish_green"], "^"),
    "oracle": ("scored positions", OKABE_ITO["reddish_purple"], "v"),
    "one_layer": ("same count, one layer", OKABE_ITO["yellow"], "h"),
    "conv": ("all conv", SERIES[("conv", None)][1], SERIES[("conv", None)][2]),
    "attn": ("all attention", SERIES[("attn", None)][1], SERIES[("attn", None)][2]),
}

#: one colour and hatch per layer (hatches keep layers apart in grey scale)
LAYER_COLOURS = [OKABE_ITO[c] for c in ("blue", "orange", "bluish_green", "vermillion", "reddish_purple",
                                        "sky_blue", "yellow", "black")]
LAYER_HATCHES = ["", "////", "....", "xxxx", "\\\\\\\\", "++++", "oooo", "----"]
#: markers for series outside SERIES once SPARE is used up
EXTRA_MARKERS = ["<", ">", "*", "p", "d", "H", "8", "1", "2", "3", "4"]

#: latency-benchmark execution -> line style
EXECUTION_LINES = {"sdpa": "-", "dense": "--", "sparse": ":"}

#: log axes of usage: a usage of 0 is drawn here
USAGE_FLOOR = 1e-4

PUBLISHED_MARKER = {"markerfacecolor": "none", "markeredgewidth": 1.0}
REFERENCE_LINE = {"color": GREY, "linewidth": 0.8, "linestyle": "--"}

RC = {
    "font.family": "sans-serif",
    # bundled with matplotlib, so the output does not depend on the machine's fonts
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 6.5,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "grid.linewidth": 0.4,
    "grid.alpha": 0.4,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "errorbar.capsize": 2,
    "legend.frameon": False,
    "image.cmap": "viridis",
    "pdf.fonttype": 42,  # TrueType in the PDF: text stays text
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
    "figure.dpi": 100,
}

#: fixed metadata: no software version, no timestamps
PNG_METADATA = {"Software": None}
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}


def style():
    """The house style as a context: build and save figures inside it."""
    return matplotlib.rc_context(RC)


def series_key(model: str, lambda_target=None) -> tuple:
    """The series a runs.csv row belongs to: baselines by model, routed by model and lambda."""
    return (model, None) if model != "routed" else (model, round(float(lambda_target), 6))


def series_styles(keys) -> dict:
    """(label, colour, marker) per series key; keys outside SERIES get the spares, in sorted order."""
    out, spare = {}, 0
    for key in sorted(set(keys), key=_order):
        if key in SERIES:
            out[key] = SERIES[key]
        else:
            colour, marker = SPARE[spare % len(SPARE)]
            spare += 1
            model, lam = key
            out[key] = (f"Routed λ→{lam:g}" if lam is not None else str(model), colour, marker)
    return out


def _order(key) -> tuple:
    """Baselines first (attn, conv, others), then routed by lambda."""
    model, lam = key
    rank = {"attn": 0, "conv": 1}.get(model, 3 if model == "routed" else 2)
    return (rank, -1.0 if lam is None else lam, str(model))


def layer_style(k: int) -> dict:
    """Face colour and hatch of layer k's bars."""
    return {"color": LAYER_COLOURS[k % len(LAYER_COLOURS)], "hatch": LAYER_HATCHES[k % len(LAYER_HATCHES)]}


def new_figure(width: float = SINGLE_COLUMN_IN, height: float | None = None) -> Figure:
    """A figure on an Agg canvas; not registered with pyplot, so nothing leaks or pops up."""
    fig = Figure(figsize=(width, height if height is not None else width * 0.72), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write `name`.pdf (vector) and `name`.png (PNG_DPI); each appears whole or not at all."""
    out_dir = Path(out_dir)
    written = []
    with style():
        for fmt, kwargs in (("pdf", {"metadata": PDF_METADATA}),
                            ("png", {"metadata": PNG_METADATA, "dpi": PNG_DPI})):
            path = out_dir / f"{name}.{fmt}"
            with atomic_file(path, "wb") as f:
                fig.savefig(f, format=fmt, **kwargs)
            written.append(path)
    return written
