"""The audit's figures: each figure a finding asks for (by key) drawn from the audit's inputs,
returned as file names per key for `AuditFindings.with_figures`."""
from __future__ import annotations

from pathlib import Path

from suite.audit.common import SWAPS
from suite.audit.findings import AuditFindings
from suite.audit.inputs import AuditInputs
from suite.audit.regret import pareto_points
from suite.figures import audit as figs
from suite.figures.style import style


def _pareto(inputs: AuditInputs, out: Path) -> list[Path]:
    paths, runs, controls = [], inputs.pareto_runs(), inputs.controls
    for (task, d, t), _ in inputs.table.groupby(["task", "distance", "tier"]):
        points = pareto_points(controls, runs, task, d, t)
        if len(points):
            paths += figs.pareto_audit(points, out, name=f"audit_pareto_{task}_{d}_{t}", title=f"{task} d={d} ({t} tier)")
    return paths


def _maps(group, out: Path) -> list[Path]:
    return figs.routing_maps(group.routing, group.runs, out, name=group.name) if group is not None else []


def _layers(inputs: AuditInputs, out: Path) -> list[Path]:
    h, mini = inputs.headline, inputs.mini_routed()
    paths = figs.per_layer_usage(h, out, name="audit_layers_headline") if len(h) else []
    return paths + (figs.per_layer_usage(mini, out, name="audit_layers_mini") if len(mini) else [])


DRAW = {
    "savings": lambda i, out: figs.savings_readings(i.headline, out),
    "layers": _layers,
    "seeds": lambda i, out: figs.seed_strip(i.headline, out),
    "controls": lambda i, out: figs.controls_bars(i.controls[i.controls["control"].isin(("learned",) + SWAPS)], out),
    "counts": lambda i, out: figs.attention_counts(i.headline_analysed(), out),
    "pareto": _pareto,
    "maps_headline": lambda i, out: _maps(i.headline_maps(), out),
    "maps_groups": lambda i, out: [p for g in i.map_groups() for p in _maps(g, out)],
}


def draw(findings: AuditFindings, inputs: AuditInputs, out: Path) -> dict[str, list[str]]:
    """Every figure `findings` asks for, in out/; file names per figure key."""
    out.mkdir(parents=True, exist_ok=True)
    keys = [f.key for p in [*findings.points, *findings.sections] for f in p.figures]
    with style():
        return {k: [Path(p).name for p in DRAW[k](inputs, out)] for k in dict.fromkeys(keys)}
