"""The routing analysis of every stored routed model the audit reads: decision swaps and the
per-layer precision and recall from a model's kept weights, else from its stored attention rates.
Written cell by cell into controls.csv and routing_analysis.csv of the audit run."""
from __future__ import annotations

import json
import math

import pandas as pd
import torch
from tqdm.auto import tqdm

from baselines import ModelConfig, build_model
from tasks import IGNORE, make_task

from suite.audit.common import LEARNED, Limits, router_of
from suite.audit.routing import routing_analysis, routing_mode, whole_layer_test
from suite.audit.swaps import decision_swaps
from suite.core.io import write_csv
from suite.run.protocol import get_protocol
from suite.run.store import ROUTING, RunStore
from suite.schema.rows import ok_rows

CONTROLS, ANALYSIS = "controls.csv", "routing_analysis.csv"


def test_set(row, device):
    task = make_task(row["task"], **json.loads(row["task_params"]))
    bs = get_protocol(row["protocol"]).batch_size(task.seq_len)
    return task, [b.to(device) for b in task.fixed_set("test", int(row["seed"]), int(row["test_sequences"]), bs)]


def ident(row, source: RunStore) -> dict:
    """The columns that name a cell in controls.csv and routing_analysis.csv; the tier is the row's."""
    return {"run_id": source.path.name, "config_hash": row["config_hash"], "task": row["task"],
            "distance": int(row["distance"]), "tier": str(row["tier"]), "router": router_of(row),
            "lambda_target": float(row["lambda_target"]), "seed": int(row["seed"]), "protocol": row["protocol"]}


def whole_layer_flat(per_layer, limits: Limits | None = None) -> dict:
    """The plateau test's columns (`plateau_label`: its own three words) and the routing mode
    (`mode`: the four written rules of `routing_mode`, the names AUDIT.md uses)."""
    usage = [float(u) for u in per_layer]
    w = whole_layer_test(usage)
    return {"plateau": bool(w["plateau"]), "whole_layer": bool(w["whole_layer"]),
            "full_layers": json.dumps(list(w["full_layers"])), "plateau_label": w["label"],
            "mode": routing_mode(usage, (limits or Limits.of()).published_usage).label}


def analyse_cell(row, source: RunStore, device) -> tuple[list[dict], dict]:
    """Decision swaps (learned routers only) and the routing analysis of one stored routed model."""
    ck = source.load_checkpoint(row["config_hash"])
    model = build_model("routed", ModelConfig.from_dict(ck["model_config"]))
    model.load_state_dict(ck["state"])
    model.to(device).eval()
    _, batches = test_set(row, device)
    base = ident(row, source)
    controls = []
    if router_of(row) in LEARNED:
        for c in decision_swaps(model, batches, seed=int(row["seed"])):
            controls.append({**base, **c, "usage_per_layer": json.dumps([round(u, 6) for u in c["usage_per_layer"]])})
    per_layer = json.loads(row["usage_per_layer"])
    analysis = {**base, "source": "weights", **routing_analysis(model, batches), **whole_layer_flat(per_layer)}
    return controls, analysis


def analysis_from_rates(row, rates: pd.DataFrame, source: RunStore) -> dict | None:
    """The routing analysis of a cell whose weights were not kept, from its stored attention rates
    (routing.csv: per layer and position, the share of test sequences routed there). Exact for
    tasks whose scored positions are the same in every row; the any-layer recall needs the joint
    decisions and is left empty."""
    task = make_task(row["task"], **json.loads(row["task_params"]))
    b = task.sample(1, torch.Generator().manual_seed(0))
    if (b.targets == IGNORE).any():
        return None
    scored = [int(p) for p in b.positions]
    grid = rates.pivot_table(index="layer", columns="position", values="attention_rate", aggfunc="mean")
    out = {**ident(row, source), "source": "rates"}
    total = hits = 0.0
    for layer, r in grid.iterrows():
        at = float(r.reindex(scored).fillna(0).sum())
        all_ = float(r.sum())
        out[f"usage_layer_{int(layer)}"] = all_ / len(r)
        out[f"precision_layer_{int(layer)}"] = at / all_ if all_ > 0 else math.nan
        out[f"recall_layer_{int(layer)}"] = at / len(scored)
        out[f"attention_positions_per_sequence_layer_{int(layer)}"] = all_
        total, hits = total + all_, hits + at
    out["usage"] = total / grid.size
    out["precision_any"] = out["recall_any"] = math.nan
    out["query_share"] = hits / total if total > 0 else math.nan
    out.update(whole_layer_flat(json.loads(row["usage_per_layer"])))
    return out


def analyse(store: RunStore, sources: list[RunStore], device, progress: bool = True) -> None:
    """controls.csv and routing_analysis.csv in the audit run: every routed cell of every source,
    from its weights if kept, else from its stored rates. One cell at a time, each written at
    once, so an interruption loses at most the cell in hand and a rerun continues."""
    controls, analysis = store.table(CONTROLS), store.table(ANALYSIS)
    done = set(zip(analysis["run_id"], analysis["config_hash"])) if len(analysis) else set()
    todo = []
    for source in sources:
        runs = ok_rows(source.runs())
        if runs.empty:
            continue
        for _, row in runs[runs["model"] == "routed"].iterrows():
            if (source.path.name, row["config_hash"]) not in done:
                todo.append((source, row))
    rates_by_run = {}
    for source, row in tqdm(todo, desc="audit analysis", unit="cell", disable=not progress, dynamic_ncols=True):
        if source.model_path(row["config_hash"]).is_file():
            c, a = analyse_cell(row, source, device)
        else:
            if source.path.name not in rates_by_run:
                rates_by_run[source.path.name] = source.table(ROUTING)
            rates = rates_by_run[source.path.name]
            rates = rates[rates["config_hash"] == row["config_hash"]] if len(rates) else rates
            c, a = [], (analysis_from_rates(row, rates, source) if len(rates) else None)
        if c:
            controls = pd.concat([controls, pd.DataFrame(c)], ignore_index=True)
            write_csv(store.path / CONTROLS, controls)
        if a is not None:
            analysis = pd.concat([analysis, pd.DataFrame([a])], ignore_index=True)
            write_csv(store.path / ANALYSIS, analysis)
