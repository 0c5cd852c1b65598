"""Train a profile into a run folder and report it: the job `reproduce` and `audit` share.
A run is complete only once its report exists; an interruption before that is finished by a re-run."""
from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from pathlib import Path

import torch

from suite import __version__
from suite.errors import ConfigError
from suite.judge.claims import load_registry
from suite.pipeline.until_decided import Budget, add_round, budget_from, next_round, worst_case
from suite.report.run_report import print_summary, write_report
from suite.run.executor import Executor, ExecutorSpec, make_executor
from suite.run.grid import train_cells
from suite.run.plan import check_profile_fits, default_profile, duration, estimate, gate_routers, plan_text
from suite.run.profiles import Profile, load_profile, parse_profile
from suite.run.provenance import environment, utc_now
from suite.run.store import RunStore, check_results_dir

DEFAULT_RESULTS = Path("results")


def reproduce(profile_name: str | None, results_dir: Path, resume: str | None, device: torch.device,
              dry_run: bool = False, fresh: bool = False, progress: bool = True,
              executor: Executor | None = None, command: str = "reproduce", mixed_threads: bool = False,
              until_decided: bool = False, max_seeds: int | None = None) -> int:
    """`executor`: where the cells train (default: local, one after another in this process);
    `command`: the suite command the resume hint names (audit runs resume through `audit`);
    `mixed_threads`: let a resume train at another thread count than the stored cells;
    `until_decided`/`max_seeds`: add seeds, a round at a time, to cells of undecided claims
    (suite.pipeline.until_decided; a resumed run keeps the budget it was started with)."""
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
    budget = budget_from(until_decided, max_seeds, store.manifest().get("until_decided") if store else None)
    if budget.active(profile) and not (store is not None or profile.source):
        raise ConfigError("--until-decided: the profile has no file to extend; pass a profile name or .json path")
    if store is not None and not mixed_threads:
        check_thread_count(store, executor.cell_threads(), device)
    check_profile_fits(profile, device, executor.cells_per_device())
    gate_routers(profile, device)
    env = environment(device)
    done = store.finished_cells() if store else set()
    with executor.measuring():
        bounds = estimate(profile, device, done)
    plan = plan_text(profile, device, bounds, done, executor)
    registry = load_registry()
    if budget.active(profile):
        plan += "\n" + _budget_text(profile, registry, budget, device, executor)
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
            **({"until_decided": budget.model_dump()} if budget.active(profile) else {}),
        })
    hint = f"python -m suite {command} --resume {store.path.name}"
    if results_dir != DEFAULT_RESULTS:
        hint += f" --results-dir {shlex.quote(str(results_dir))}"
    if device.type == "cpu" and executor.cell_threads() != torch.get_num_threads():
        hint += f" --threads-per-worker {executor.cell_threads()}"  # a resume must train at the same count
    with store.lock():
        return _run(store, profile, device, env, progress, hint, executor, budget, registry)


def _budget_text(profile: Profile, registry: list, budget: Budget, device: torch.device, executor: Executor) -> str:
    each = f"up to {budget.max_seeds} seeds per cell" if budget.max_seeds else "up to each block's max_seeds per cell"
    extra = worst_case(profile, registry, budget)
    if not extra:
        return (f"Until decided ({each}): no cell of this profile has seeds left to add for a claim it decides; "
                f"no round will run")
    with executor.measuring():
        seconds = sum(estimate(dataclasses.replace(profile, cells=tuple(extra)), device))
    return (f"Until decided ({each}): after each round, one more seed for every cell whose claim is still "
            f"INCONCLUSIVE; worst case {len(extra)} more cells, at most {duration(seconds)} more (every cell "
            f"taken to its budget, each its whole epoch budget)")


def check_thread_count(store: RunStore, threads: int, device: torch.device) -> None:
    """A run's CPU cells all train at one torch thread count: it changes float summation order, and
    with it which mode a seed lands in, so a resume at another count would mix two machines."""
    if device.type != "cpu":
        return
    runs = store.runs()
    if not len(runs):
        return
    stored = sorted({int(t) for t in runs.loc[runs["device"].astype(str).str.startswith("cpu:"), "threads"].dropna()})
    if stored and stored != [threads]:
        counts = " and ".join(str(t) for t in stored)
        raise ConfigError(f"threads: run '{store.path.name}' trained its cells at {counts} torch thread(s), this "
                          f"resume would train at {threads}; pass --threads-per-worker {stored[0]}, or "
                          f"--mixed-threads to mix them")


def _run(store: RunStore, profile: Profile, device: torch.device, env: dict, progress: bool, hint: str,
         executor: Executor | None = None, budget: Budget = Budget(), registry: list | None = None) -> int:
    """Train the cells not stored yet (and, until decided, the rounds after them), then check
    claims, draw figures and write the report; only then is the run complete (an interruption
    before that is finished by a re-run, untrained)."""
    print(f"\nRun {store.path.name}: {store.path}")
    try:
        train_cells(store, profile, device, env, progress, executor)
        while budget.active(profile):
            new, claims = next_round(profile, store.runs(), registry or load_registry(), budget)
            if not new:
                print(f"\nUntil decided: nothing left to add after round {budget.rounds} (every claim on these "
                      f"cells decided, or its cells at their seed budget)")
                break
            profile, budget = add_round(store, profile, new, budget)
            print(f"\nUntil decided, round {budget.rounds}: {len(new)} more cell(s) for {', '.join(claims)}")
            train_cells(store, profile, device, env, progress, executor)
        status = {"status": "complete", "finished": utc_now()}
        runs, claims = write_report(store, status=status)
    except KeyboardInterrupt:
        n = len(store.finished_cells())
        print(f"\ninterrupted: {n}/{len(profile.cells)} cells stored in {store.path}; "
              f"resume with: {hint}", file=sys.stderr)
        return 130
    store.update_manifest(**status)
    print_summary(runs, claims)
    print(f"\nWrote {store.path}/ (runs.csv, history.csv, routing.csv, claims.csv, manifest.json, REPORT.md)")
    return 0
