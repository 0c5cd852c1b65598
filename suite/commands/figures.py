"""`python -m suite figures`: draw a stored run's figures (PDF + PNG) into <run dir>/figures/."""
from __future__ import annotations

from suite.figures.draw import render_figures
from suite.pipeline.options import Command
from suite.run.store import RunStore


def add_arguments(p) -> None:
    p.add_argument("run_dirs", nargs="*", help="run folders (default: the newest under --results-dir)")
    p.add_argument("--latency-csv", default=None)
    p.add_argument("--results-dir", default="results")


def run(a) -> int:
    dirs = a.run_dirs or [RunStore.newest(a.results_dir).path]
    for run_dir in dirs:
        for path in render_figures(run_dir, latency_csv=a.latency_csv):
            print(path)
    return 0


COMMAND = Command("figures", "draw a results run's figures (PDF + PNG) into <run dir>/figures/", add_arguments, run)
