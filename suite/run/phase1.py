"""Phase 1 done once: the checkpoint a routed curriculum cell writes at the end of phase 1, and
the key that says which cells may continue from it.

Under the "curriculum" schedule phase 1 trains at lambda = 0, so it does not depend on the cell's
lambda target: every lambda of a (task, model config, seed, protocol) shares one phase-1
trajectory. The Trainer saves everything the rest of the run depends on at the end of phase 1
(`phase1_checkpoint=`); a cell whose key matches continues from it with phase 2, exactly as the
cell that wrote it did. Under "constant" lambda applies from the first step, so nothing is shared.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from baselines import ModelConfig, router_source
from tasks import Task

from suite.errors import ConfigError
from suite.run.protocol import Protocol
from suite.core.io import atomic_file

#: bump when what a checkpoint holds or what phase 1 does changes: old checkpoints then never match
FORMAT = 1
#: protocol fields phase 1 never reads (the name is a label; phase 2's length and floor)
NOT_PHASE1 = ("name", "phase2_epochs", "phase2_floor")


def shares_phase1(model_name: str, protocol: Protocol) -> bool:
    """Whether a cell's phase 1 is independent of its lambda target (and so may be shared)."""
    return model_name == "routed" and protocol.schedule == "curriculum"


def phase1_identity(task: Task, model_config: ModelConfig, seed: int, protocol: Protocol,
                    device: torch.device | str) -> dict:
    """Everything phase 1 of a routed curriculum cell depends on; not the lambda target, not the
    test set. A plugin router's source file is hashed in, as in a cell's config_hash."""
    if protocol.schedule != "curriculum":
        raise ConfigError(f"phase1: the '{protocol.schedule}' schedule applies lambda in phase 1, "
                          f"so its phase 1 cannot be shared (only 'curriculum')")
    proto = {k: v for k, v in protocol.to_dict().items() if k not in NOT_PHASE1}
    out = {"format": FORMAT, "model": "routed", "task": task.name, "task_params": task.params(),
           "model_config": model_config.identity(), "seed": int(seed), "protocol": proto,
           "device_type": torch.device(device).type}
    source = router_source(model_config.router)
    if source:
        out["router_source_hash"] = hashlib.sha256(Path(source).read_bytes()).hexdigest()[:16]
    return out


def phase1_key(task: Task, model_config: ModelConfig, seed: int, protocol: Protocol,
               device: torch.device | str) -> str:
    """The hash of `phase1_identity`: cells with equal keys have the same phase 1."""
    text = json.dumps(phase1_identity(task, model_config, seed, protocol, device), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cell_phase1_key(cell, device: torch.device | str = "cpu") -> str | None:
    """A profile cell's phase-1 key, or None when its phase 1 is not shareable."""
    protocol = cell.build_protocol()
    if not shares_phase1(cell.model, protocol):
        return None
    return phase1_key(cell.build_task(), cell.model_config(), cell.seed, protocol, device)


# -- the file ---------------------------------------------------------------------------------------
def save_checkpoint(path: Path, payload: dict) -> None:
    """Write `payload` to `path` atomically (the store's `atomic_file`: a temporary in the same
    folder, flushed, then os.replace): an interrupted write leaves no file at `path`, no temporary."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "wb") as f:
        torch.save(payload, f)


def load_checkpoint(path: Path, key: str) -> dict:
    """A checkpoint written for phase-1 key `key`; one ConfigError line if it cannot be read or was
    written for another phase 1."""
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated, foreign or unreadable file
        reason = " ".join(str(e).split())[:120] or type(e).__name__
        raise ConfigError(f"phase1 checkpoint: cannot read '{path}' ({reason})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ConfigError(f"phase1 checkpoint: '{path}' is not a phase-1 checkpoint of format {FORMAT} "
                          f"(got {got!r})")
    if data.get("key") != key:
        raise ConfigError(f"phase1 checkpoint: '{path}' holds phase-1 key {data.get('key')!r}, not this "
                          f"cell's {key!r}; refusing to continue another cell's phase 1")
    return data


# -- what sharing saves ---------------------------------------------------------------------------
def phase1_savings(profile, runs=None, device: torch.device | str = "cpu", flops: bool = True) -> dict:
    """Compute that phase-1 sharing saves in `profile`.

    Before training (phase-1 lengths are not known) the cells that share a key with an earlier cell
    and the upper bound of their phase-1 epochs and training FLOPs (every shared cell running its
    whole phase-1 budget, counted at lambda 0). With `runs` (a runs.csv DataFrame) also what a run
    saved: the rows with `phase1_reused` true and the sum of their `train_flops_phase1`.
    `flops=False` skips the FLOP count (a CPU forward+backward per distinct configuration).
    """
    from suite.compute.readings import train_step_flops

    routed = curriculum = 0
    first, shared = {}, []
    for cell in profile.cells:
        if cell.model != "routed":
            continue
        routed += 1
        key = cell_phase1_key(cell, device)
        if key is None:
            continue
        curriculum += 1
        if key in first:
            shared.append(cell)
        else:
            first[key] = cell
    epochs = sum(c.build_protocol().capped(c.build_protocol().phase1_max_epochs) for c in shared)
    out = {"profile": profile.name, "routed_cells": routed, "routed_curriculum_cells": curriculum,
           "phase1_keys": len(first), "cells_sharing_phase1": len(shared),
           "phase1_epochs_saved_upper_bound": epochs,
           "phase1_steps_saved_upper_bound": sum(
               c.build_protocol().capped(c.build_protocol().phase1_max_epochs) * c.build_protocol().steps_per_epoch
               for c in shared)}
    if flops:
        def bound(cell) -> int:
            p, task = cell.build_protocol(), cell.build_task()
            per_step = train_step_flops("routed", cell.model_config(), task, p.batch_size(task.seq_len), 0.0)
            return per_step * p.steps_per_epoch * p.capped(p.phase1_max_epochs)
        saved = sum(bound(c) for c in shared)
        out["train_flops_saved_upper_bound"] = saved
        # of every routed curriculum cell's phase 1, at the same bound
        out["train_flops_phase1_upper_bound"] = saved + sum(bound(c) for c in first.values())
    if runs is not None:
        if "phase1_reused" in runs.columns:
            reused = runs[runs["phase1_reused"].fillna(False).astype(bool)]
        else:
            reused = runs.iloc[:0]
        out["rows_phase1_reused"] = int(len(reused))
        out["train_flops_saved"] = float(reused["train_flops_phase1"].fillna(0).sum()) if len(reused) else 0.0
    return out
