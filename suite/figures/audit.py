"""Figures of the audit of the savings claim ("0.3% attention usage = 99.7% compute savings" at
distance 126), drawn from the audit's tables (runs, controls, routing, analysis) as DataFrames.

Each function here writes one figure, `name`.pdf and `name`.png (the registry's file name unless
given), into `out_dir` and returns the written paths, or writes nothing and returns [] when its
input has nothing to draw. The drawing is the registry's `draw` (suite/figures/registry.py), so
tests can read the figure back. Each docstring says which question its figure answers. Published
values and claims are read when a figure is drawn; `published` / `claims` may be passed in.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from suite.figures import sources
from suite.figures.audit_controls import CONTROLS, pareto_frontier
from suite.figures.audit_layers import COUNT_FLOOR, WHOLE_LAYER
from suite.figures.common import write
from suite.figures.maps import MAX_MAPS
from suite.figures.panels import MAX_PANELS
from suite.figures.registry import BY_NAME
from suite.figures.style import USAGE_FLOOR

__all__ = ["CONTROLS", "COUNT_FLOOR", "MAX_MAPS", "MAX_PANELS", "PUBLISHED_SAVING", "USAGE_FLOOR", "WHOLE_LAYER",
           "attention_counts", "controls_bars", "pareto_audit", "pareto_frontier", "per_layer_usage", "routing_maps",
           "savings_readings", "seed_strip"]


def __getattr__(name: str):
    """PUBLISHED_SAVING (1 - published usage of Routed λ→0.5 at 126), read when asked for."""
    if name == "PUBLISHED_SAVING":
        return sources.headline_saving()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _write(figure: str, inputs: tuple, out_dir: Path, name: str | None) -> list[Path]:
    spec = BY_NAME[figure]
    return write(spec.draw, inputs, out_dir, name or spec.stem)


def savings_readings(runs: pd.DataFrame, out_dir: Path, name: str | None = None,
                     published: dict | None = None) -> list[Path]:
    """Does 1 − usage describe what is executed? The three readings of compute saved (notional,
    executed FLOPs, measured latency) of each seed of one routed cell group, their mean, and the
    published 99.7%."""
    return _write("savings_readings", (runs, published), out_dir, name)


def per_layer_usage(runs: pd.DataFrame, out_dir: Path, name: str | None = None) -> list[Path]:
    """Is a 25% plateau one whole layer? Each routed row's usage as a stack of its layers' usage
    (each / n_layers, so the stack is the model's usage), against 1/n_layers; a star marks a row
    with a layer at ≥ 95% attention."""
    return _write("per_layer_usage", (runs,), out_dir, name)


def seed_strip(runs: pd.DataFrame, out_dir: Path, name: str | None = None, claims: list | None = None) -> list[Path]:
    """What do the seeds really do? Accuracy and usage (log) of each seed of the routed rows,
    with the mean and its 95% interval, against the claim's thresholds (accuracy 0.98, usage
    0.5%) and one position in one layer."""
    return _write("seed_strip", (runs, claims), out_dir, name)


def controls_bars(controls: pd.DataFrame, out_dir: Path, name: str | None = None) -> list[Path]:
    """Does the learned placement beat trivial placements at the same budget? Per (task, distance,
    tier), the mean test accuracy over seeds of each control (learned, random, last, oracle, one
    whole layer, ConvOnly, AttnOnly), each seed a dot, each bar labelled with its mean usage."""
    return _write("controls_bars", (controls,), out_dir, name)


def attention_counts(analysis: pd.DataFrame, out_dir: Path, name: str | None = None) -> list[Path]:
    """Is 0.3% less than one query per layer? The mean number of positions per test sequence
    that each layer sends to attention, per routed cell (log scale), against one position."""
    return _write("attention_counts", (analysis,), out_dir, name)


def pareto_audit(points: pd.DataFrame, out_dir: Path, name: str | None = None, title: str = "") -> list[Path]:
    """Accuracy against executed compute for the λ sweep, the baselines and the controls: each
    series' mean over seeds with the seed range, and the upper-left frontier of the means
    (what no other series beats on both compute and accuracy)."""
    return _write("pareto_audit", (points, title), out_dir, name)


def routing_maps(routing: pd.DataFrame, runs: pd.DataFrame, out_dir: Path, name: str | None = None) -> list[Path]:
    """Where does each seed attend, not only the best one? The attention rate per layer and
    position of every routed cell (up to 24, by λ then seed), titled with the cell's usage."""
    return _write("routing_maps", (routing, runs), out_dir, name)
