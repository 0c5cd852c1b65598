"""The plan of a profile before any cell trains: it fits the device, its routers pass the gate,
and an upper bound of each cell's time from a step measured on this machine."""
from __future__ import annotations

import dataclasses
import json
import os

import torch

from baselines import ROUTERS

from suite import __version__
from suite.compute.memory import check_fits, training_bytes
from suite.run.executor import Executor, parallel_estimate
from suite.run.gate import check_router
from suite.run.profiles import Cell, Profile
from suite.run.throughput import median_seconds
from suite.run.trainer import Trainer


def default_profile(device: torch.device) -> str:
    return "paper" if device.type == "cuda" else "cpu"


def check_profile_fits(profile: Profile, device: torch.device, concurrent: int = 1) -> None:
    """The memory estimate of the profile's largest cell, times the cells that share the device at
    once under the executor, checked before any cell is built."""
    need, worst = 0, None
    for cell in profile.cells:
        task = cell.build_task()
        n = training_bytes(cell.model, cell.model_config(), task.seq_len,
                           cell.build_protocol().batch_size(task.seq_len), profile.test_sequences)
        if n > need:
            need, worst = n, cell
    if worst is not None:
        what = f"profile {profile.name} cell {worst.describe()}"
        if concurrent > 1:
            what += f" x {concurrent} cells at once on {device}"
        check_fits(what, need * concurrent, device)


def gate_routers(profile: Profile, device: torch.device) -> None:
    """The router gate (suite/run/gate.py) once per routed (model config, length), before any cell."""
    seen = set()
    for cell in profile.cells:
        if cell.model == "routed":
            key = (cell.model_config(), cell.build_task().seq_len)
            if key not in seen:
                seen.add(key)
                check_router(*key, device)


# -- planning --------------------------------------------------------------------------------------
def max_epochs(cell: Cell) -> int:
    p = cell.build_protocol()
    if cell.model != "routed":
        return p.capped(p.baseline_max_epochs)
    return p.capped(p.phase1_max_epochs) + p.phase2_epochs


def step_seconds(cell: Cell, device: torch.device, cache: dict) -> float:
    """Measured time of one training step of this cell's model and length (1 warm-up, 2 timed).
    A plugin router is timed as the original router of the same size: its training code runs only
    in its cells (in a worker, under regress), never here, where its faults (an os._exit) would
    end the command."""
    task = cell.build_task()
    key = (cell.model, task.seq_len, json.dumps(cell.model_overrides, sort_keys=True))
    if key not in cache:
        cfg = cell.model_config()
        if cell.model == "routed" and cfg.router not in ROUTERS:
            cfg = dataclasses.replace(cfg, router="gumbel", router_kwargs={})
        cache[key] = _measure(cell, task, cfg, device)
    return cache[key]


def _measure(cell: Cell, task, cfg, device: torch.device) -> float:
    tr = Trainer(task, cell.model, lambda_target=cell.lambda_target, seed=0, protocol=cell.build_protocol(),
                 model_config=cfg, device=device, progress=False)
    tr.model.train()
    return median_seconds(lambda: tr.step(cell.lambda_target), device, repeats=2, warmup=1)


def estimate(profile: Profile, device: torch.device, done: set = frozenset()) -> list[float | None]:
    """Upper bound of seconds per cell: every epoch of its budget, evaluation at ~1/3 of a step.
    Stored cells (in `done`) are not timed: None."""
    cache, out = {}, []
    for cell in profile.cells:
        if cell.config_hash(profile.test_sequences) in done:
            out.append(None)
            continue
        p = cell.build_protocol()
        s = step_seconds(cell, device, cache)
        per_epoch = s * (p.steps_per_epoch + p.eval_batches / 3)
        test = s / 3 * profile.test_sequences / p.batch_size(cell.build_task().seq_len)
        out.append(max_epochs(cell) * per_epoch + test)
    return out


def plan_text(profile: Profile, device: torch.device, bounds: list[float | None], done: set,
              executor: Executor | None = None) -> str:
    lines = [f"Profile {profile.name} ({profile.source}): {profile.description}",
             f"Device: {device}; suite {__version__}; torch {torch.__version__}; "
             f"{len(profile.cells)} cells, held-out test set {profile.test_sequences} sequences per cell"]
    if executor is not None:
        lines.append(f"Executor: {executor.describe()}")
    protocols = sorted({c.protocol for c in profile.cells})
    lines.append(f"Protocols: {', '.join(protocols)} (suite/run/protocol.py)")
    for cut in profile.cuts:
        lines.append(f"CUT: {cut}")
    lines.append("")
    width = max([62] + [len(c.describe()) for c in profile.cells])
    lines.append(f"{'#':>3}  {'cell':<{width}} {'max epochs':>10} {'<= min':>8}")
    for i, (cell, b) in enumerate(zip(profile.cells, bounds), 1):
        minutes = f"{b / 60:>8.1f}" if b is not None else f"{'-':>8}"
        mark = "  (stored)" if cell.config_hash(profile.test_sequences) in done else ""
        lines.append(f"{i:>3}  {cell.describe():<{width}} {max_epochs(cell):>10} {minutes}{mark}")
    todo = sum(b for c, b in zip(profile.cells, bounds) if c.config_hash(profile.test_sequences) not in done)
    lines.append("")
    bound = duration(todo)
    lines.append(f"Estimated duration: at most {bound} of training and evaluation for the cells still to run "
                 f"(every cell running its whole epoch budget, from a measured step time; cells that solve "
                 f"early stop sooner; compute readings and figures add a few seconds per cell)")
    slots = executor.slots() if executor is not None else 1
    left = [b for c, b in zip(profile.cells, bounds) if c.config_hash(profile.test_sequences) not in done]
    if slots > 1 and len(left) > 1:
        threads = f"{executor.threads} thread(s)" if executor.threads else "this process's threads"
        wall = parallel_estimate(left, slots) * executor.contention()
        shared = (f"; times {executor.contention():.2f} for {slots} x {executor.threads} threads on "
                  f"{os.cpu_count()} cores" if executor.contention() > 1 else "")
        lines.append(f"With up to {min(slots, len(left))} cells in parallel: an estimated {duration(wall)} of wall "
                     f"time (an estimate, not a bound: the per-cell bounds above, measured at {threads} on this "
                     f"machine, taken by the first free worker in plan order{shared}; workers sharing a device or "
                     f"memory bandwidth run slower than alone, other machines of a cluster at their own speed)")
    return "\n".join(lines)


def duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"
