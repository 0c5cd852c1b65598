"""One cell: train and evaluate it, and return its typed result (the run row, its history and
routing rows, the weights to keep) for the store."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict

from suite.compute.readings import compute_columns
from suite.judge.stats import wilson
from suite.run.devices import precision
from suite.run.phase1 import cell_phase1_key
from suite.run.profiles import Cell, Profile
from suite.run.protocol import Protocol, adopt
from suite.run.provenance import data_fingerprint, device_name, utc_now
from suite.run.trainer import Trainer, evaluate


class CellResult(BaseModel):
    """What one cell hands the store: its runs.csv row, history.csv rows, routing.csv rows (None
    when not measured) and the weights to keep (None unless the profile keeps routed models)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)
    row: dict[str, Any]
    history: list[dict[str, Any]] = []
    routing: list[dict[str, Any]] | None = None
    checkpoint: dict[str, Any] | None = None


def cell_columns(cell: Cell, profile: Profile, env: dict, run_id: str) -> dict:
    """What a row says about its cell and machine, whether it trained or failed."""
    task, protocol, cfg = cell.build_task(), cell.build_protocol(), cell.model_config()
    return {
        "run_id": run_id, "config_hash": cell.config_hash(profile.test_sequences), "label": cell.label,
        "task": cell.task, "distance": cell.distance, "seq_len": task.seq_len,
        "task_params": json.dumps(task.params(), sort_keys=True),
        "model": cell.model, "lambda_target": cell.lambda_target, "seed": cell.seed,
        "protocol": cell.protocol, "protocol_hash": protocol.digest(), "epoch_cap": cell.epoch_cap,
        "cuts": " | ".join(profile.cuts), "profile": profile.name,
        "model_config": json.dumps(cell.model_overrides, sort_keys=True), "faithful_model": cell.faithful_model,
        "tier": cell.tier,
        "router": cfg.router if cell.model == "routed" else "",
        "router_kwargs": json.dumps(cfg.router_kwargs, sort_keys=True) if cell.model == "routed" else "",
        "router_source_hash": cell.router_source_hash(), "precision": protocol.precision,
        "d_model": cfg.d_model, "n_layers": cfg.n_layers, "n_heads": cfg.n_heads, "kernel_size": cfg.kernel_size,
        "test_sequences": profile.test_sequences,
        "data_fingerprint": data_fingerprint(task, cell.seed, 4),
        "suite_version": env["suite_version"], "git_sha": env["git_sha"], "torch_version": env["torch"],
        "device": env["device_name"], "threads": env.get("torch_threads"), "finished_at": utc_now(),
    }


def failed_row(cell: Cell, profile: Profile, env: dict, run_id: str, error: Exception) -> "CellResult":
    """The row of a cell that stopped: identity and provenance, the error, no metrics."""
    return CellResult(row={**cell_columns(cell, profile, env, run_id), "status": "failed", "error": str(error)})


def run_cell(cell: Cell, profile: Profile, device: torch.device, env: dict, run_id: str, progress: bool,
             *, phase1_dir: Path | None = None):
    """Train and evaluate one cell into a CellResult. With `phase1_dir`,
    a routed curriculum cell continues from `phase1_dir/<phase1 key>.pt` when another cell (another
    lambda target) already wrote it, and writes it otherwise (suite/run/phase1.py)."""
    task = cell.build_task()
    protocol = cell.build_protocol()
    cfg = cell.model_config()
    key = cell.config_hash(profile.test_sequences)
    p1_key = cell_phase1_key(cell, device)
    p1_path = Path(phase1_dir) / f"{p1_key}.pt" if phase1_dir is not None and p1_key is not None else None
    trainer = Trainer(task, cell.model, lambda_target=cell.lambda_target, seed=cell.seed, protocol=protocol,
                      model_config=cfg, device=device, progress=progress, desc=f"  {cell.model} d={cell.distance} ",
                      phase1_checkpoint=p1_path)
    result = trainer.run()
    bs = protocol.batch_size(task.seq_len)
    test_set = [b.to(device) for b in task.fixed_set("test", cell.seed, profile.test_sequences, bs)]
    with precision(protocol.precision, device):
        acc, per_layer = evaluate(result.model, test_set)
        if result.usage_model is not None:  # routed, phase 1 never solved: usage of the last epoch
            _, per_layer = evaluate(result.usage_model, test_set)
    total = sum(int(b.mask.sum()) for b in test_set)  # scored targets only (!= IGNORE)
    correct = int(round(acc * total))
    low, high = wilson(correct, total)
    usage = sum(per_layer) / len(per_layer)
    compute, routing = compute_columns(cell.model, result.model_for_usage, cfg, task, test_set, usage, device,
                                       protocol, result)
    row = {
        **cell_columns(cell, profile, env, run_id), "status": "ok", "error": None,
        "params": result.params,
        "accuracy": acc, "accuracy_low": low, "accuracy_high": high, "test_correct": correct, "test_total": total,
        "usage": usage, "usage_per_layer": json.dumps([round(u, 6) for u in per_layer]),
        **{f"usage_layer_{i}": u for i, u in enumerate(per_layer)},
        "val_accuracy": result.accuracy, "val_usage": result.usage,
        "epochs_phase1": result.epochs_phase1, "epochs_phase2": result.epochs_phase2,
        "phase2_ran": result.phase2_ran, "seconds": round(result.seconds, 2), **compute,
        "phase1_reused": result.phase1_reused, "phase1_key": p1_key,
    }
    history = [{"run_id": run_id, "config_hash": key, "task": cell.task, "distance": cell.distance,
                "model": cell.model, "lambda_target": cell.lambda_target, "seed": cell.seed,
                "phase": h.phase, "epoch": h.epoch, "lambda": h.lam, "train_loss": h.train_loss,
                "train_accuracy": h.train_acc, "val_accuracy": h.val_acc, "usage": h.usage,
                **{f"usage_layer_{i}": u for i, u in enumerate(h.usage_per_layer)}, "seconds": round(h.seconds, 3)}
               for h in result.history]
    ident = {"run_id": run_id, "config_hash": key, "model": cell.model, "distance": cell.distance,
             "lambda_target": cell.lambda_target, "seed": cell.seed}
    routing = [{**ident, **r} for r in routing] if routing else None
    checkpoint = None
    if profile.save_models and cell.model == "routed":
        checkpoint = {"config_hash": key, "model": cell.model, "model_config": cell.model_overrides,
                      "state": cpu_state(result.model),
                      "usage_state": cpu_state(result.usage_model) if result.usage_model is not None else None}
    return CellResult(row=row, history=history, routing=routing, checkpoint=checkpoint)


def cpu_state(model) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def cell_job(cell: Cell, profile: Profile, device: torch.device, env: dict, run_id: str, progress: bool,
             protocol: Protocol | None = None, **cell_kwargs):
    """One cell as an executor's job, wherever it runs: the row names the machine and thread count
    of the worker that trained it (a Ray cluster's other node, a worker at K threads). `protocol`:
    the driver's rules for the cell's protocol name, so a worker process trains under the same."""
    if protocol is not None:
        adopt(protocol)
    env = {**env, "device_name": device_name(device), "torch_threads": torch.get_num_threads()}
    return run_cell(cell, profile, device, env, run_id, progress, **cell_kwargs)
