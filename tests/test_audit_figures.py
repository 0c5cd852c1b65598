"""The audit's figures from small hand-made tables: each writes its PDF and PNG (nothing when its
input is empty), and what it draws is read back from the figure and checked against the tables."""
import json
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import AxesImage

from suite.figures import audit
from suite.figures.registry import BY_NAME, figures
from suite.figures.audit import (CONTROLS, COUNT_FLOOR, MAX_PANELS, PUBLISHED_SAVING, USAGE_FLOOR, attention_counts,
                                 controls_bars, pareto_audit, pareto_frontier, per_layer_usage, routing_maps,
                                 savings_readings, seed_strip)
from suite.figures.style import style
from suite.judge.published import key as published_key, load_published
from suite.judge.registry import load_registry
from suite.judge.stats import interval

SEEDS = (0, 1, 2)
N_LAYERS = 4
SEQ_LEN = 128


def runs_frame(distances=(126,), lambdas=(0.5,), seeds=SEEDS, tiers=("faithful",), whole=((126, 0.5, 1),),
               latency=True):
    """Routed rows plus one baseline row; seed 1 of (126, 0.5) has layer 2 at 100% (a 25% plateau)."""
    rows = []
    for tier in tiers:
        for d in distances:
            for lam in lambdas:
                for seed in seeds:
                    layers = [0.001 * (seed + 1), 0.002, 0.004 * (seed + 1), 0.0]
                    if (d, lam, seed) in whole:
                        layers[2] = 1.0
                    usage = sum(layers) / N_LAYERS
                    rows.append({
                        "run_id": "r", "config_hash": f"h-{tier}-{d}-{lam:g}-{seed}", "task": "assoc_recall",
                        "distance": d, "seq_len": d + 2, "model": "routed", "router": "gumbel",
                        "router_kwargs": "{}", "lambda_target": lam, "seed": seed, "protocol": "faithful",
                        "faithful_model": tier == "faithful", "tier": tier, "n_layers": N_LAYERS, "status": "ok",
                        "accuracy": 0.99 - 0.01 * seed, "usage": usage, "usage_per_layer": json.dumps(layers),
                        **{f"usage_layer_{k}": u for k, u in enumerate(layers)},
                        "macs_forward_executed": 2.0e9, "macs_forward_attn_ref": 1.8e9,
                        "savings_notional": 1 - usage, "savings_executed": -0.1 - 0.01 * seed,
                        "savings_latency": (-0.5 + 0.1 * seed) if latency else np.nan})
    base = dict(rows[0], config_hash="h-attn", model="attn", router=np.nan, lambda_target=0.0, usage=1.0,
                **{f"usage_layer_{k}": 1.0 for k in range(N_LAYERS)})
    return pd.DataFrame(rows + [base])


def controls_frame(seeds=SEEDS):
    rows = []
    for d in (126, 254):
        for seed in seeds:
            for i, control in enumerate(reversed(CONTROLS + ("one_layer_0",))):
                acc = min(1.0, 0.1 * i + 0.05 * seed)
                rows.append({"run_id": "r", "config_hash": f"h-{d}-{seed}", "task": "assoc_recall", "distance": d,
                             "tier": "faithful", "router": "gumbel", "lambda_target": 0.5, "seed": seed,
                             "control": control, "accuracy": acc, "test_correct": int(acc * 1000),
                             "test_total": 1000, "usage": 0.003 * (i + 1), "usage_per_layer": "[]",
                             "macs_forward_executed": 1e9, "note": ""})
    return pd.DataFrame(rows)


def analysis_frame(n_groups=2, seeds=SEEDS, n_layers=3):
    rows = []
    for gi in range(n_groups):
        for seed in seeds:
            row = {"run_id": "r", "config_hash": f"h{gi}-{seed}", "task": "assoc_recall", "distance": 126 + gi,
                   "tier": "mini", "router": "gumbel", "lambda_target": 0.5, "seed": seed, "usage": 0.003}
            for k in range(n_layers):
                row[f"attention_positions_per_sequence_layer_{k}"] = [0.0, 0.005, 0.5, 3.0][(k + seed) % 4]
            rows.append(row)
    return pd.DataFrame(rows)


def routing_frame(runs):
    rows = []
    for _, r in runs[runs["model"] == "routed"].iterrows():
        for layer in range(N_LAYERS):
            for pos in range(6):
                rows.append({"run_id": "r", "config_hash": r["config_hash"], "model": "routed",
                             "distance": r["distance"], "lambda_target": r["lambda_target"], "seed": r["seed"],
                             "layer": layer, "position": pos, "attention_rate": r[f"usage_layer_{layer}"]})
    return pd.DataFrame(rows)


def points_frame():
    rows = []
    for seed in SEEDS:
        rows += [
            {"series": "AttnOnly", "accuracy": 1.0, "macs_forward_executed": 2.0e9, "seed": seed},
            # three equal values: their float mean exceeds them, a naive range error bar goes negative
            {"series": "ConvOnly", "accuracy": 0.1, "macs_forward_executed": 1.0e8, "seed": seed},
            {"series": "Routed λ→0.5", "accuracy": 0.95 + 0.01 * seed, "macs_forward_executed": 2.1e9, "seed": seed},
            {"series": "swap: random", "accuracy": 0.5 + 0.02 * seed, "macs_forward_executed": 5.0e8, "seed": seed},
            {"series": "trained: last", "accuracy": 0.3, "macs_forward_executed": 6.0e8, "seed": seed},
        ]
    return pd.DataFrame(rows)


def draw(figure, *tables):
    """The figure as the registry draws it (what the audit's function writes), read back."""
    with style():
        return BY_NAME[figure].draw(*tables)


def seeds_line(ax, gid="seeds"):
    lines = [line for line in ax.lines if line.get_gid() == gid]
    assert len(lines) == 1, [line.get_gid() for line in ax.lines]
    return lines[0]


def stacks(ax):
    """x centre -> summed height of the stacked patches at that x."""
    out = defaultdict(float)
    for p in ax.patches:
        out[round(p.get_x() + p.get_width() / 2, 6)] += p.get_height()
    return dict(sorted(out.items()))


# -- writing, and nothing on empty input ----------------------------------------------------------------
CASES = {
    "savings_readings": lambda out, empty: savings_readings(runs_frame().iloc[:0] if empty else runs_frame(), out),
    "per_layer_usage": lambda out, empty: per_layer_usage(runs_frame().iloc[:0] if empty else runs_frame(), out),
    "seed_strip": lambda out, empty: seed_strip(runs_frame().iloc[:0] if empty else runs_frame(), out),
    "controls_bars": lambda out, empty: controls_bars(controls_frame().iloc[:0] if empty else controls_frame(), out),
    "attention_counts": lambda out, empty: attention_counts(analysis_frame().iloc[:0] if empty else analysis_frame(),
                                                            out),
    "pareto_audit": lambda out, empty: pareto_audit(points_frame().iloc[:0] if empty else points_frame(), out),
    "routing_maps": lambda out, empty: routing_maps(routing_frame(runs_frame()).iloc[:0] if empty
                                                    else routing_frame(runs_frame()), runs_frame(), out),
}
NAMES = {"savings_readings": "audit_savings", "per_layer_usage": "audit_layers", "seed_strip": "audit_seeds",
         "controls_bars": "audit_controls", "attention_counts": "audit_counts", "pareto_audit": "audit_pareto",
         "routing_maps": "audit_routing_maps"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_writes_png_and_pdf_or_nothing(case, tmp_path):
    out = tmp_path / "figs"
    assert CASES[case](out, True) == []
    assert not out.exists() or not any(out.iterdir())
    written = CASES[case](out, False)
    stem = NAMES[case]
    assert sorted(p.name for p in written) == [f"{stem}.pdf", f"{stem}.png"]
    assert sorted(p.name for p in out.iterdir()) == [f"{stem}.pdf", f"{stem}.png"]
    assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"


def test_every_audit_figure_of_the_registry_has_its_function_and_case():
    assert sorted(spec.name for spec in figures("audit")) == sorted(CASES)
    assert all(callable(getattr(audit, name)) for name in CASES)
    assert {name: BY_NAME[name].stem for name in CASES} == NAMES


def test_panels_read_the_tier_column_not_faithful_model():
    # a full-size control with a fixed router (the `paper` profile): not the original model, tier faithful
    runs = runs_frame(tiers=("faithful",)).assign(faithful_model=False, router="fixed")
    fig = draw("per_layer_usage", runs)
    assert [ax.get_title(loc="left").replace("\n", " ") for ax in fig.axes] == ["assoc_recall d=126 faithful λ→0.5"]
    mini = runs_frame(tiers=("mini",)).assign(faithful_model=True)
    assert draw("seed_strip", mini)._suptitle.get_text() == "assoc_recall d=126 mini λ→0.5"
    assert "d=126 ? λ→0.5" in draw("seed_strip", runs.drop(columns=["tier"]))._suptitle.get_text()


def test_published_values_and_claims_passed_in_are_the_ones_drawn():
    cells = load_published()
    cells[published_key(126, "routed", 0.5)] = cells[published_key(126, "routed", 0.5)].model_copy(
        update={"usage": 0.2})
    line = seeds_line(draw("savings_readings", runs_frame(), cells).axes[0], "published")
    assert tuple(line.get_ydata()) == pytest.approx((0.8, 0.8))
    claims = [c if c.id != "T1-r05-126" else c.model_copy(update={"checks": [
        ch.model_copy(update={"threshold": {"accuracy": 0.9, "usage": 0.01}.get(ch.metric, ch.threshold)}) for ch in c.checks]})
        for c in load_registry()]
    ax_acc, ax_use = draw("seed_strip", runs_frame(), claims).axes
    assert seeds_line(ax_acc, "claim").get_ydata()[0] == 0.9
    assert seeds_line(ax_use, "claim").get_ydata()[0] == 0.01


def test_baseline_rows_alone_draw_nothing(tmp_path):
    runs = runs_frame()
    baselines = runs[runs["model"] != "routed"]
    for f in (savings_readings, per_layer_usage, seed_strip):
        assert f(baselines, tmp_path) == []
    assert routing_maps(routing_frame(runs).assign(model="attn"), runs, tmp_path) == []
    assert not any(tmp_path.iterdir())


# -- 1 ------------------------------------------------------------------------------------------
def test_savings_readings_dots_means_and_published_line():
    runs = runs_frame(latency=False)
    routed = runs[runs["model"] == "routed"]
    fig = draw("savings_readings", runs)
    ax = fig.axes[0]
    for reading, col in (("notional", "savings_notional"), ("executed", "savings_executed")):
        dots = seeds_line(ax, f"seeds:{reading}")
        np.testing.assert_allclose(dots.get_ydata(), routed.sort_values("seed")[col])
        mean = [c for c in ax.collections if c.get_gid() == f"mean:{reading}"]
        assert len(mean) == 1
        np.testing.assert_allclose(mean[0].get_segments()[0][:, 1], routed[col].mean())
    # latency is all NaN: not measured, no dots
    assert not [line for line in ax.lines if line.get_gid() == "seeds:latency"]
    assert any(t.get_text() == "not measured" for t in ax.texts)
    published = seeds_line(ax, "published")
    assert tuple(published.get_ydata()) == (PUBLISHED_SAVING, PUBLISHED_SAVING)
    assert published.get_linestyle() == "--"
    assert ax.get_ylabel() == "compute saved vs AttnOnly (fraction)"
    assert ax.get_ylim()[0] < routed["savings_executed"].min()


# -- 2 ------------------------------------------------------------------------------------------
def test_per_layer_usage_stacks_are_usages_and_stars_mark_whole_layers():
    whole = ((126, 0.5, 1), (254, 0.1, 0), (254, 0.1, 2))
    runs = runs_frame(distances=(126, 254), lambdas=(0.1, 0.5), whole=whole)
    fig = draw("per_layer_usage", runs)
    assert len(fig.axes) == 4
    routed = runs[runs["model"] == "routed"]
    stars_total = 0
    for ax in fig.axes:
        d, lam = int(ax.get_title(loc="left").split("d=")[1].split()[0]), float(ax.get_title(loc="left").split("λ→")[1])
        cell = routed[(routed["distance"] == d) & (routed["lambda_target"] == lam)].sort_values("seed")
        heights = stacks(ax)
        np.testing.assert_allclose(list(heights.values()), cell["usage"])
        assert len(ax.patches) == N_LAYERS * len(cell)
        star = seeds_line(ax, "whole_layer")
        expected = [i for i, s in enumerate(cell["seed"]) if (d, lam, s) in whole]
        assert sorted(np.round(star.get_xdata()).astype(int)) == expected
        assert all(y > heights[round(float(x), 6)] for x, y in zip(star.get_xdata(), star.get_ydata()))
        stars_total += len(star.get_xdata())
        one = seeds_line(ax, "one_layer")
        assert one.get_ydata()[0] == pytest.approx(1 / N_LAYERS)
    assert stars_total == len(whole)


def test_per_layer_usage_caps_panels_and_names_the_rest():
    runs = runs_frame(distances=(126, 254, 510), lambdas=(0.1, 0.5), tiers=("faithful", "mini"), seeds=(0, 1))
    fig = draw("per_layer_usage", runs)
    assert len(fig.axes) == MAX_PANELS
    suptitle = fig._suptitle.get_text()
    assert "first 8 of 12" in suptitle
    shown = {ax.get_title(loc="left").replace("\n", " ") for ax in fig.axes}
    assert "assoc_recall d=510 mini λ→0.5" in suptitle.replace("\n", " ")
    assert not any("d=510 mini λ→0.5" in t for t in shown)


def test_per_layer_usage_falls_back_to_the_json_list():
    runs = runs_frame().drop(columns=[f"usage_layer_{k}" for k in range(N_LAYERS)])
    fig = draw("per_layer_usage", runs)
    routed = runs[runs["model"] == "routed"].sort_values("seed")
    np.testing.assert_allclose(list(stacks(fig.axes[0]).values()), routed["usage"])


# -- 3 ------------------------------------------------------------------------------------------
def test_seed_strip_one_point_per_seed_with_interval_and_references():
    runs = runs_frame(seeds=(0, 1, 2, 3))
    routed = runs[runs["model"] == "routed"].sort_values("seed").copy()
    routed.loc[routed["seed"] == 3, "usage"] = 0.0  # drawn at the floor of the log axis
    fig = draw("seed_strip", routed)
    ax_acc, ax_use = [ax for ax in fig.axes]
    acc = seeds_line(ax_acc)
    np.testing.assert_allclose(acc.get_ydata(), routed["accuracy"])
    use = seeds_line(ax_use)
    np.testing.assert_allclose(use.get_ydata(), np.maximum(routed["usage"], USAGE_FLOOR))
    assert [t.get_text() for t in ax_acc.get_xticklabels()] == ["0", "1", "2", "3"]
    assert ax_use.get_yscale() == "log" and ax_use.get_ylim()[0] < USAGE_FLOOR
    s = interval("accuracy", routed["accuracy"])
    assert seeds_line(ax_acc, "mean").get_ydata()[0] == pytest.approx(s.mean)
    band = [p for p in ax_acc.patches if p.get_gid() == "interval"]
    assert len(band) == 1
    low, high = band[0].get_y(), band[0].get_y() + band[0].get_height()
    assert (low, high) == pytest.approx((s.low, s.high)) and s.low < s.mean < s.high
    assert seeds_line(ax_acc, "claim").get_ydata()[0] == 0.98
    assert seeds_line(ax_use, "claim").get_ydata()[0] == 0.005
    assert seeds_line(ax_use, "one_position").get_ydata()[0] == pytest.approx(1 / ((126 + 2) * N_LAYERS))


# -- 4 ------------------------------------------------------------------------------------------
def test_controls_bars_in_fixed_order_at_mean_accuracy():
    controls = controls_frame()
    controls = controls[controls["control"] != "oracle"]  # an absent control leaves no bar
    fig = draw("controls_bars", controls)
    assert len(fig.axes) == 2
    expected_order = [c for c in CONTROLS if c != "oracle"]
    for ax, d in zip(fig.axes, (126, 254)):
        assert f"d={d}" in ax.get_title(loc="left")
        cell = controls[controls["distance"] == d]
        bars = [p for p in ax.patches if p.get_gid() in CONTROLS]
        assert [p.get_gid() for p in bars] == expected_order
        assert [p.get_x() + p.get_width() / 2 for p in bars] == pytest.approx(range(len(expected_order)))
        means = cell.groupby("control")["accuracy"].mean()
        assert [p.get_height() for p in bars] == pytest.approx([means[c] for c in expected_order])
        for c in expected_order:
            assert len(seeds_line(ax, f"seeds:{c}").get_xdata()) == len(SEEDS)
            usage = [t for t in ax.texts if t.get_gid() == f"usage:{c}"]
            assert usage[0].get_text() == f"{100 * cell[cell['control'] == c]['usage'].mean():.3g}%"
    assert "one_layer_0" in fig._suptitle.get_text()


# -- 5 ------------------------------------------------------------------------------------------
def test_attention_counts_panels_bars_floor_and_one_query():
    analysis = analysis_frame(n_groups=3, n_layers=3)
    fig = draw("attention_counts", analysis)
    assert len(fig.axes) == 3
    for ax, d in zip(fig.axes, (126, 127, 128)):
        cell = analysis[analysis["distance"] == d].sort_values("seed")
        assert ax.get_yscale() == "log" and ax.get_ylim()[0] == pytest.approx(COUNT_FLOOR)
        assert seeds_line(ax, "one_query").get_ydata()[0] == 1.0
        for k in range(3):
            bars = sorted((p for p in ax.patches if p.get_gid() == f"layer {k}"), key=lambda p: p.get_x())
            values = cell[f"attention_positions_per_sequence_layer_{k}"].to_numpy()
            assert [p.get_y() + p.get_height() for p in bars] == pytest.approx(np.maximum(values, COUNT_FLOOR))


def test_attention_counts_caps_at_eight_panels():
    fig = draw("attention_counts", analysis_frame(n_groups=10, seeds=(0,)))
    assert len(fig.axes) == MAX_PANELS
    assert "first 8 of 10" in fig._suptitle.get_text()


# -- 6 ------------------------------------------------------------------------------------------
def test_pareto_error_bars_never_negative_and_frontier_through_non_dominated_means():
    points = points_frame()
    conv = points[points["series"] == "ConvOnly"]["accuracy"]
    assert conv.mean() > conv.max()  # the rounding this test is about
    fig = draw("pareto_audit", points, "d=126")
    ax = fig.axes[0]
    means = {}
    for container in ax.containers:
        name = container.get_label().rsplit(" (n=", 1)[0]
        data_line, _, barcols = container.lines
        x, y = data_line.get_xdata()[0], data_line.get_ydata()[0]
        means[name] = (x, y)
        xseg, yseg = barcols[0].get_segments()[0], barcols[1].get_segments()[0]
        assert xseg[0, 0] <= x <= xseg[1, 0]
        assert yseg[0, 1] <= y <= yseg[1, 1]
        g = points[points["series"] == name]
        assert (xseg[0, 0], xseg[1, 0]) == pytest.approx((g["macs_forward_executed"].min() / 1e6,
                                                          g["macs_forward_executed"].max() / 1e6))
        assert (yseg[0, 1], yseg[1, 1]) == pytest.approx((g["accuracy"].min(), g["accuracy"].max()))
    assert set(means) == set(points["series"])
    frontier = seeds_line(ax, "frontier")
    on = list(zip(frontier.get_xdata(), frontier.get_ydata()))
    # ConvOnly (cheapest), swap: random, AttnOnly (most accurate); last and Routed are dominated
    assert on == [means["ConvOnly"], means["swap: random"], means["AttnOnly"]]
    assert frontier.get_drawstyle() == "steps-post"
    assert ax.get_xscale() == "log"  # 100 to 2100 MMAC
    assert ax.get_ylim() == pytest.approx((-0.02, 1.02))
    assert "d=126" in ax.get_title(loc="left")
    markers = [c.lines[0].get_marker() for c in ax.containers]
    assert len(set(markers)) == len(markers)


def test_pareto_frontier_ties_and_linear_axis():
    means = {"a": (1.0, 0.5), "b": (1.0, 0.5), "c": (2.0, 0.4), "d": (0.5, 0.5)}
    assert pareto_frontier(means) == ["d"]
    points = points_frame()
    points = points[points["series"].isin(["AttnOnly", "Routed λ→0.5"])]
    assert draw("pareto_audit", points).axes[0].get_xscale() == "linear"


# -- 7 ------------------------------------------------------------------------------------------
def test_routing_maps_one_image_per_cell_ordered_and_titled():
    runs = runs_frame(lambdas=(0.1, 0.5))
    routing = routing_frame(runs)
    fig = draw("routing_maps", routing, runs)
    panels = [ax for ax in fig.axes if ax.images]
    images = [im for ax in fig.axes for im in ax.images]
    assert len(images) == 6 and all(isinstance(im, AxesImage) for im in images)
    assert all(im.get_clim() == (0.0, 1.0) for im in images)
    assert len(fig.axes) == len(panels) + 1  # one shared colourbar
    routed = runs[runs["model"] == "routed"].sort_values(["lambda_target", "seed"])
    titles = [ax.get_title(loc="left") for ax in panels]
    assert titles == [f"λ→{lam:g}\nseed {s}: usage {100 * u:.3g}%"
                      for lam, s, u in zip(routed["lambda_target"], routed["seed"], routed["usage"])]
    first = routed.iloc[0]
    grid = images[0].get_array()
    assert grid.shape == (N_LAYERS, 6)
    np.testing.assert_allclose(grid[:, 0], [first[f"usage_layer_{k}"] for k in range(N_LAYERS)])


def test_routing_maps_caps_at_24():
    runs = runs_frame(lambdas=(0.1, 0.5, 0.9), seeds=tuple(range(9)))
    fig = draw("routing_maps", routing_frame(runs), runs)
    assert sum(len(ax.images) for ax in fig.axes) == 24
    assert "first 24 of 27" in fig._suptitle.get_text()
    assert max(ax.get_subplotspec().colspan.stop for ax in fig.axes if ax.images) <= 4
