"""The one table of figures: each figure's name, the file it is written to, what it reads and the
function that draws it. Run figures read a run's files (the columns listed are checked before
anything is drawn); audit figures read the tables the audit passes in, in the order listed."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

from suite.figures import audit_controls, audit_layers, audit_seeds, maps, run_compute, run_distance, run_training
from suite.figures.run_data import LATENCY
from suite.run.store import HISTORY, ROUTING, RUNS

_CELL = ("model", "distance", "lambda_target", "seed", "protocol", "faithful_model")


@dataclass(frozen=True)
class FigureSpec:
    """A figure: `draw(*inputs) -> Figure` (None: nothing to draw), written as `file`.pdf/.png."""
    name: str
    job: Literal["run", "audit"]
    reads: tuple[str, ...]          # run: the run file; audit: the tables passed in
    draw: Callable
    columns: tuple[str, ...] = ()   # run figures: the columns they cannot be drawn without
    file: str = ""                  # output stem; the name when empty

    @property
    def stem(self) -> str:
        return self.file or self.name


REGISTRY = (
    FigureSpec("accuracy_vs_distance", "run", (RUNS,), run_distance.accuracy_vs_distance,
               _CELL + ("accuracy", "test_correct", "test_total")),
    FigureSpec("usage_vs_distance", "run", (RUNS,), run_distance.usage_vs_distance,
               _CELL + ("usage", "seq_len", "n_layers")),
    FigureSpec("savings", "run", (RUNS,), run_compute.savings, _CELL + ("usage",)),
    FigureSpec("routing_map", "run", (ROUTING,), maps.routing_map,
               ("model", "distance", "lambda_target", "seed", "layer", "position", "attention_rate")),
    FigureSpec("training_curves", "run", (HISTORY,), run_training.training_curves,
               ("config_hash", "model", "distance", "lambda_target", "seed", "phase", "epoch", "lambda",
                "val_accuracy", "usage")),
    FigureSpec("scaling", "run", (LATENCY,), run_compute.scaling, ("model", "execution", "seq_len", "median_ms",
                                                                   "macs")),
    FigureSpec("savings_readings", "audit", ("runs",), audit_seeds.draw_savings_readings, file="audit_savings"),
    FigureSpec("per_layer_usage", "audit", ("runs",), audit_layers.draw_per_layer_usage, file="audit_layers"),
    FigureSpec("seed_strip", "audit", ("runs",), audit_seeds.draw_seed_strip, file="audit_seeds"),
    FigureSpec("controls_bars", "audit", ("controls",), audit_controls.draw_controls_bars, file="audit_controls"),
    FigureSpec("attention_counts", "audit", ("analysis",), audit_layers.draw_attention_counts, file="audit_counts"),
    FigureSpec("pareto_audit", "audit", ("points",), audit_controls.draw_pareto_audit, file="audit_pareto"),
    FigureSpec("routing_maps", "audit", ("routing", "runs"), maps.draw_routing_maps, file="audit_routing_maps"),
)
BY_NAME = {spec.name: spec for spec in REGISTRY}


def figures(job: str) -> tuple[FigureSpec, ...]:
    """The figures of one job, in the order they are drawn."""
    return tuple(spec for spec in REGISTRY if spec.job == job)
