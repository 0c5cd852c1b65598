"""Figures of one results run, drawn only from its files, into <run dir>/figures/ (PDF and PNG).

Each figure bears on a claim of the original (its function's docstring says which); the figure
registry (suite/figures/registry.py) names them, what each reads and what draws it. Every number
comes from runs.csv, history.csv, routing.csv (read through the results store, failed cells left
out) or a latency benchmark CSV; the published values are suite/data/published.csv, read when a
figure is drawn. Error bars are the verdicts' own intervals (suite.judge.stats.interval). Inputs
are checked before anything is drawn, so a missing column fails the whole call with one line and
leaves the figures folder as it was; a missing optional file skips only its figure.
"""
from __future__ import annotations

import sys
from pathlib import Path

from suite.figures import sources
from suite.figures.common import write
from suite.figures.maps import routing_map
from suite.figures.registry import figures
from suite.figures.run_compute import savings, scaling
from suite.figures.run_data import LATENCY, Run, check_run, read_run
from suite.figures.run_distance import accuracy_vs_distance, usage_vs_distance
from suite.figures.run_training import training_curves

__all__ = ["FIGURES", "LATENCY", "PUBLISHED", "PUBLISHED_SAVINGS", "Run", "accuracy_vs_distance", "load_run",
           "render_figures", "routing_map", "savings", "scaling", "training_curves", "usage_vs_distance"]

#: the run figures, in the order they are drawn
FIGURES = tuple(spec.name for spec in figures("run"))


def __getattr__(name: str):
    """PUBLISHED and PUBLISHED_SAVINGS, read from published.csv when asked for, not at import."""
    if name == "PUBLISHED":
        return sources.published_points()
    if name == "PUBLISHED_SAVINGS":
        return sources.published_savings()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_run(run_dir, latency_csv=None) -> Run:
    """Read a run's files and check every figure's columns before anything is drawn. `runs`
    holds the cells that finished: a failed cell has no metrics to draw."""
    return check_run(read_run(run_dir, latency_csv), figures("run"))


def render_figures(run_dir, out_dir=None, latency_csv=None) -> list[Path]:
    """Draw every figure the run's files allow into `out_dir` (default <run dir>/figures/);
    returns the files written (PDF and PNG per figure). Skipped figures are named on stderr."""
    run = load_run(run_dir, latency_csv)
    out = Path(out_dir) if out_dir is not None else run.path / "figures"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in figures("run"):
        if spec.name in run.skipped:
            print(f"note: {spec.name} skipped: {run.skipped[spec.name]}", file=sys.stderr)
            continue
        written += write(spec.draw, (run,), out, spec.stem)
    return written
