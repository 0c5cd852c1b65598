"""`python -m suite reproduce`: plan, train the profile's grid, store rows, check claims, report."""
from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from suite import __version__
from suite.compute.readings import compute_columns
from suite.errors import ConfigError
from suite.figures.draw import render_figures
from suite.judge.claims import check_claims, load_registry
from suite.judge.report import claims_table, main_table, not_run_line, report_markdown, verdict_counts
from suite.judge.stats import wilson
from suite.run.devices import precision
from suite.run.gate import check_router
from suite.run.phase1 import cell_phase1_key
from suite.run.memory import check_fits, training_bytes
from suite.run.profiles import Cell, Profile, load_profile, parse_profile
from suite.run.executor import Executor, ExecutorSpec, Job, JobFailed, make_executor, parallel_estimate
from suite.run.provenance import data_fingerprint, device_name, environment, utc_now
from suite.run.store import CLAIMS, REPORT, RunStore, check_results_dir, write_csv
from suite.run.trainer import NonFiniteLoss, Trainer, evaluate
from suite.schema.rows import faithful_rows

DEFAULT_RESULTS = Path("results")


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
    """Measured time of one training step of this cell's model and length (1 warm-up, 2 timed)."""
    task = cell.build_task()
    key = (cell.model, task.seq_len, json.dumps(cell.model_overrides, sort_keys=True))
    if key not in cache:
        tr = Trainer(task, cell.model, lambda_target=cell.lambda_target, seed=0, protocol=cell.build_protocol(),
                     model_config=cell.model_config(), device=device, progress=False)
        tr.model.train()
        tr.step(cell.lambda_target)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(2):
            tr.step(cell.lambda_target)
        if device.type == "cuda":
            torch.cuda.synchronize()
        cache[key] = (time.perf_counter() - t0) / 2
    return cache[key]


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
    bound = f"{todo / 60:.0f} min" if todo >= 60 else f"{todo:.0f} s"
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
        lines.append(f"With up to {min(slots, len(left))} cells in parallel: an estimated {_duration(wall)} of wall "
                     f"time (an estimate, not a bound: the per-cell bounds above, measured at {threads} on this "
                     f"machine, taken by the first free worker in plan order{shared}; workers sharing a device or "
                     f"memory bandwidth run slower than alone, other machines of a cluster at their own speed)")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


# -- one cell ---------------------------------------------------------------------------------------
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
        "device": env["device_name"], "finished_at": utc_now(),
    }


def failed_row(cell: Cell, profile: Profile, env: dict, run_id: str, error: Exception) -> dict:
    """The row of a cell that stopped: identity and provenance, the error, no metrics."""
    return {**cell_columns(cell, profile, env, run_id), "status": "failed", "error": str(error)}


def run_cell(cell: Cell, profile: Profile, device: torch.device, env: dict, run_id: str, progress: bool,
             *, phase1_dir: Path | None = None):
    """Train and evaluate one cell: (row, history rows, routing rows, checkpoint). With `phase1_dir`,
    a routed curriculum cell continues from `phase1_dir/<phase1 key>.pt` when another cell (another
    lambda target) already wrote it, and writes it otherwise (suite/run/phase1.py)."""
    from suite.run.phase1 import cell_phase1_key

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
    return row, history, routing, checkpoint


def cpu_state(model) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


# -- the whole job ----------------------------------------------------------------------------------
def check_and_report(store: RunStore, registry: list | None = None, write: bool = True, figures: bool = True):
    """Verdicts of a stored run; with `write` (holding the run's lock): claims.csv, the figures
    (from the stored files only, if `figures`), then REPORT.md embedding whatever figures exist."""
    if not write:
        return _verdicts(store, registry)
    with store.lock():
        return _write_report(store, registry, figures)


def _verdicts(store: RunStore, registry: list | None):
    runs = store.runs()
    claims = check_claims(runs, store.manifest()["profile"], registry if registry is not None else load_registry())
    return runs, claims


def _write_report(store: RunStore, registry: list | None = None, figures: bool = True, status: dict | None = None):
    """claims.csv, figures, REPORT.md, in that order; the caller holds the lock. `status`: the
    manifest fields the run will have once its report exists (the report shows them)."""
    runs, claims = _verdicts(store, registry)
    write_csv(store.path / CLAIMS, claims)
    if figures:
        try:
            render_figures(store.path)
        except ConfigError as e:
            print(f"figures: not drawn: {e}", file=sys.stderr)
    manifest = {**store.manifest(), **(status or {})}
    store.write_text(REPORT, report_markdown(manifest, manifest.get("plan", ""), runs, claims, store.path))
    return runs, claims


def print_summary(runs, claims, out=None) -> None:
    out = out or sys.stdout
    print("\nClaims (" + verdict_counts(claims) + ")", file=out)
    table = claims_table(claims)
    if not table.empty:
        print(table.to_string(index=False), file=out)
    print(not_run_line(claims), file=out)
    table = main_table(runs)
    faithful = not faithful_rows(runs).empty
    if not table.empty and faithful:
        print("\nThe original's main table (ours | published):", file=out)
        print(table.to_string(index=False), file=out)
    else:
        print("\nThe original's main table: no cell of this run uses the faithful model", file=out)
    failed = runs[runs["status"] == "failed"] if "status" in runs.columns else runs.iloc[:0]
    if len(failed):
        print(f"\n{len(failed)} cell(s) FAILED, stored as failed (a resume does not retry them; "
              f"--fresh starts a new run that retrains every cell):", file=out)
        for _, r in failed.iterrows():
            print(f"  {r['model']} d={r['distance']} lambda={r['lambda_target']:g} seed={r['seed']}: {r['error']}",
                  file=out)


def reproduce(profile_name: str | None, results_dir: Path, resume: str | None, device: torch.device,
              dry_run: bool = False, fresh: bool = False, progress: bool = True,
              executor: Executor | None = None, command: str = "reproduce") -> int:
    """`executor`: where the cells train (default: local, one after another in this process);
    `command`: the suite command the resume hint names (audit runs resume through `audit`)."""
    results_dir = Path(results_dir)
    executor = executor or make_executor(ExecutorSpec(), device)
    if not dry_run:
        check_results_dir(results_dir)
    elif results_dir.exists() and not results_dir.is_dir():
        raise ConfigError(f"results-dir: '{results_dir}' exists and is not a directory")
    store = None
    if resume:
        store = RunStore.find(results_dir, resume)
        stored = store.manifest()["profile"]
        if profile_name and profile_name not in (stored["name"], stored.get("source")):
            raise ConfigError(f"profile: run '{resume}' is profile '{stored['name']}', not '{profile_name}'")
        profile = parse_profile(store.manifest()["profile_data"], stored.get("source", ""))
    else:
        profile = load_profile(profile_name or default_profile(device))
        if not fresh and not dry_run:
            store = RunStore.unfinished(results_dir, profile.name)
            if store is not None:
                print(f"Resuming the unfinished run {store.path.name} of profile {profile.name} "
                      f"(use --fresh for a new run)")
                profile = parse_profile(store.manifest()["profile_data"], profile.source)
    check_profile_fits(profile, device, executor.cells_per_device())
    gate_routers(profile, device)
    env = environment(device)
    done = store.finished_cells() if store else set()
    with executor.measuring():
        bounds = estimate(profile, device, done)
    plan = plan_text(profile, device, bounds, done, executor)
    print(plan, flush=True)
    if dry_run:
        print("\n--dry-run: nothing trained, nothing written.")
        return 0

    if store is None:
        data = json.loads(Path(profile.source).read_text()) if profile.source else {}
        store = RunStore.create(results_dir, profile.name, {
            "status": "running", "started": utc_now(), "suite_version": __version__,
            "profile": {k: v for k, v in profile.to_dict().items() if k != "cells"},
            "profile_data": data, "cells": [c.describe() for c in profile.cells],
            "protocols": {c.protocol: c.build_protocol().to_dict() for c in profile.cells},
            "environment": env, "plan": plan, "command": " ".join(sys.argv),
        })
    hint = f"python -m suite {command} --resume {store.path.name}"
    if results_dir != DEFAULT_RESULTS:
        hint += f" --results-dir {shlex.quote(str(results_dir))}"
    with store.lock():
        return _run(store, profile, device, env, progress, hint, executor)


def cell_job(cell: Cell, profile: Profile, device: torch.device, env: dict, run_id: str, progress: bool,
             **cell_kwargs):
    """One cell as an executor's job, wherever it runs: the row names the machine and thread count
    of the worker that trained it (a Ray cluster's other node, a worker at K threads)."""
    env = {**env, "device_name": device_name(device), "torch_threads": torch.get_num_threads()}
    return run_cell(cell, profile, device, env, run_id, progress, **cell_kwargs)


PHASE1_DIR = "phase1"


def phase1_order(cells: list, device, lag: int = 1) -> list:
    """Cells in profile order, except that a cell which would read an earlier cell's phase 1 (same
    key) waits until `lag` more first cells have been queued after that first one. With one cell at
    a time (lag 1) it runs right after it, so a run spread over sessions loses no checkpoint to a
    session's end (they are not committed). With `lag` workers, each has taken a later cell by the
    time the sibling is taken, so its phase 1 is usually on disk."""
    if not isinstance(lag, int) or lag < 1:
        raise ValueError(f"lag: must be a positive int, got {lag!r}")
    out, held, first_at, firsts = [], [], {}, 0
    for c in cells:
        key = cell_phase1_key(c, device)
        if key is not None and key in first_at:
            held.append((first_at[key] + lag, c))
        else:
            if key is not None:
                first_at[key] = firsts
            out.append(c)
            firsts += 1
        out += [c for at, c in held if at <= firsts]
        held = [(at, c) for at, c in held if at > firsts]
    return out + [c for _, c in held]


def train_cells(store: RunStore, profile: Profile, device: torch.device, env: dict, progress: bool,
                executor: Executor | None = None, cell_kwargs: dict | None = None) -> None:
    """Train every cell of the profile not stored yet on `executor` (default: local, one after another
    here), storing each as it finishes, in the order they finish; this process alone writes the store.
    A cell whose job fails (any exception, a worker that dies) is stored as a failed row and the run
    goes on; Ctrl-C stops the workers and propagates with everything finished kept.
    `cell_kwargs`: extra keyword arguments of run_cell, passed through to every cell; by default
    routed curriculum cells share phase 1 through checkpoints in <run>/phase1/ (same result, less work).
    A cell that would read another cell's phase 1 is queued as many first cells after it as the
    executor runs at once (phase1_order), so parallel workers rarely train the same phase 1 twice
    (if they do, both write the same file)."""
    run_id = store.path.name
    store.drop_orphan_history()
    done = store.finished_cells()
    start = time.perf_counter()
    already = store.manifest().get("wall_seconds", 0.0)
    if executor is None:
        executor = make_executor(ExecutorSpec(), device)
    todo = phase1_order([c for c in profile.cells if c.config_hash(profile.test_sequences) not in done], device,
                        lag=max(1, executor.slots()))
    cell_kwargs = {"phase1_dir": store.path / PHASE1_DIR, **(cell_kwargs or {})}
    # a cell's own progress bar only where it runs in this process; elsewhere the bars would interleave
    inner = progress and not executor.remote
    jobs = [Job(c.config_hash(profile.test_sequences), c.describe(), cell_job,
                (c, profile, device, env, run_id, inner), dict(cell_kwargs or {})) for c in todo]
    cells = {c.config_hash(profile.test_sequences): c for c in todo}
    with tqdm(total=len(profile.cells), initial=len(profile.cells) - len(todo), desc="cells",
              disable=not progress, unit="cell", dynamic_ncols=True) as bar:
        def running(labels: list[str]) -> None:
            bar.set_postfix_str(labels[0] if len(labels) == 1 else f"{len(labels)} running: " + "; ".join(labels))

        with contextlib.closing(executor.run(jobs, running)) as outcomes:
            for out in outcomes:
                cell = cells[out.job.key]
                if out.failure is None:
                    row, history, routing, checkpoint = out.value
                    line = f"accuracy {row['accuracy']:.4f} usage {row['usage']:.4f} ({row['seconds'] / 60:.1f} min)"
                else:
                    f = out.failure
                    # a non-finite loss is the suite's own, already specific error: stored as it always was
                    error = f.message if f.type == NonFiniteLoss.__name__ else f.line
                    if f.type != NonFiniteLoss.__name__ and f.detail:
                        tqdm.write(f"  {cell.describe()} failed:\n{f.detail.rstrip()}", file=sys.stderr)
                    row, history, routing, checkpoint = failed_row(cell, profile, env, run_id, JobFailed(error)), [], None, None
                    line = f"FAILED: {error}"
                store.append_cell(row, history, routing, checkpoint)
                tqdm.write(f"  done: {cell.describe()}: {line}")
                bar.update(1)
                store.update_manifest(wall_seconds=already + time.perf_counter() - start)


def _run(store: RunStore, profile: Profile, device: torch.device, env: dict, progress: bool, hint: str,
         executor: Executor | None = None) -> int:
    """Train the cells not stored yet, then check claims, draw figures and write the report; only
    then is the run complete (an interruption before that is finished by a re-run, untrained)."""
    print(f"\nRun {store.path.name}: {store.path}")
    try:
        train_cells(store, profile, device, env, progress, executor)
        status = {"status": "complete", "finished": utc_now()}
        runs, claims = _write_report(store, status=status)
    except KeyboardInterrupt:
        n = len(store.finished_cells())
        print(f"\ninterrupted: {n}/{len(profile.cells)} cells stored in {store.path}; "
              f"resume with: {hint}", file=sys.stderr)
        return 130
    store.update_manifest(**status)
    print_summary(runs, claims)
    print(f"\nWrote {store.path}/ (runs.csv, history.csv, routing.csv, claims.csv, manifest.json, REPORT.md)")
    return 0
