"""The audit's comparison figures: the learned router against trivial placements at the same
budget (controls), and accuracy against executed compute with its Pareto frontier."""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from suite.figures.common import panel_grid, percent, seed_range, spread, title
from suite.figures.panels import lam, left_out, panels, router
from suite.figures.style import (CONTROL_STYLES, DOUBLE_COLUMN_IN, EXTRA_MARKERS, GREY, OKABE_ITO, SERIES,
                                 SINGLE_COLUMN_IN, SPARE, new_figure)

#: the controls, in the order they are drawn
CONTROLS = ("learned", "random", "last", "oracle", "one_layer", "conv", "attn")


def _controls_note(g: pd.DataFrame) -> str:
    """The λ (pooled where several) and routers of a panel's rows."""
    lams = sorted({lam(r) for _, r in g.iterrows()} - {None})
    routers = sorted({router(r) for _, r in g.iterrows()} - {""})
    note = []
    if lams:
        note.append("λ→" + ", ".join(f"{v:g}" for v in lams) + (" pooled" if len(lams) > 1 else ""))
    if routers:
        note.append("router " + ", ".join(routers))
    return "; ".join(note)


def draw_controls_bars(controls: pd.DataFrame) -> Figure | None:
    """Per (task, distance, tier), a bar of mean accuracy per control, seeds as dots, mean usage above."""
    if controls is None or controls.empty or "control" not in controls.columns:
        return None
    rows = controls[controls["control"].isin(CONTROLS)]
    if rows.empty:
        return None
    other = sorted(set(map(str, controls["control"].dropna())) - set(CONTROLS))
    shown, left, groups = panels(rows, with_lambda=False)
    n = len(shown)
    fig = new_figure(SINGLE_COLUMN_IN if n == 1 else DOUBLE_COLUMN_IN, 0.9 + 2.0 * (-(-n // min(2, n))))
    axes = panel_grid(fig, n, max_cols=2)
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
            ax.plot(x + spread(k, 0.45), acc.to_numpy(), marker=marker, color="black", markerfacecolor="white",
                    markeredgewidth=0.6, markersize=3, linestyle="none", gid=f"seeds:{control}")
            usage = c["usage"].astype(float).mean() if "usage" in c.columns else float("nan")
            ax.text(x, min(max(mean, float(acc.max()) if k else 0.0), 1.0) + 0.02, percent(usage),
                    ha="center", va="bottom", fontsize=5, rotation=90 if len(present) > 5 else 0,
                    gid=f"usage:{control}")
        ax.set_xticks(range(len(present)), [CONTROL_STYLES[c][0].replace(" ", "\n", 1) for c in present],
                      fontsize=5.5)
        ax.set_xlim(-0.6, len(present) - 0.4)
        ax.set_ylim(0.0, 1.22)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.set_ylabel("test accuracy")
        title(ax, key.name, _controls_note(g), width=44)
    notes = [n for n in (left_out(len(shown), left),
                         f"not shown: {', '.join(other)}" if other else "",
                         "bar: mean over seeds; dot: one seed; text: mean attention usage") if n]
    fig.suptitle("\n".join(notes), fontsize=6)
    return fig


def _pareto_styles(names: list[str]) -> dict[str, tuple[str, str]]:
    """series name -> (colour, marker): the house SERIES by label, then distinct spares."""
    known = {label: (colour, marker) for label, colour, marker in SERIES.values()}
    used_markers = {known[n][1] for n in names if n in known}
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


def draw_pareto_audit(points: pd.DataFrame, title_text: str = "") -> Figure | None:
    """Each series' mean (executed MMAC, accuracy) with the seed range, and the frontier of the means."""
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
        (mx, xerr), (my, yerr) = seed_range(g["_x"]), seed_range(g["_y"])
        means[name] = (mx, my)
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
    title(ax, title_text or "Accuracy vs executed compute")
    return fig
