"""`python -m suite regress`: a candidate router against the original router and the baselines on a
tier's battery (suite/data/tiers.json), same protocol and seeds, with a verdict and an exit code.

Reference cells (the original router, AttnOnly, ConvOnly) are read from a stored run when it holds
them (same config_hash: same task, model, protocol, seed and test set), and trained and stored in
this run otherwise, never skipped. The candidate's cells are trained. Everything lands in a
results folder through the store, plus regress.csv, REGRESS.md and figures/pareto.{pdf,png}.
"""
from __future__ import annotations

import shlex
import sys
import traceback
from pathlib import Path
from typing import Annotated

import torch
from pydantic import Field

from suite import __version__
from suite.errors import INPUT_ERRORS, ConfigError
from suite.figures.pareto import pareto
from suite.judge.regress import compare, failed_candidate, overall, series, table
from suite.pipeline.options import Command, add_executor_options, choice, json_object, open_executor, typed
from suite.report.regress_md import print_regress, regress_markdown, shown
from suite.run.devices import DEVICES, resolve_device
from suite.run.executor import Executor, ExecutorSpec, make_executor
from suite.run.grid import train_cells
from suite.run.plan import check_profile_fits, estimate, gate_routers, plan_text
from suite.run.profiles import parse_profile
from suite.run.provenance import environment, utc_now
from suite.run.store import RunStore, check_results_dir, write_csv
from suite.run.tiers import ORIGINAL, REFERENCES, REPO, Tier, import_reference, load_tiers, regress_profile


def regress(router: str, router_kwargs: dict, against: str | None, tier_name: str, seeds: int,
            results_dir: Path, device: torch.device, progress: bool = True, executor: Executor | None = None) -> int:
    results_dir = Path(results_dir)
    executor = executor or make_executor(ExecutorSpec(), device)
    check_results_dir(results_dir)
    tiers = load_tiers()
    if tier_name not in tiers:
        raise ConfigError(f"tier: unknown '{tier_name}'; allowed: {', '.join(tiers)}")
    tier = tiers[tier_name]
    data = regress_profile(tier_name, tier, router, router_kwargs, seeds)
    profile = parse_profile(data, "regress")
    against = against or (str(REPO / tier.reference) if tier.reference else None)
    reference = RunStore.open(against) if against else None
    if reference is not None:
        reference.check_stored()
    check_profile_fits(profile, device)
    gate_routers(profile, device)
    store = RunStore.unfinished(results_dir, profile.name)
    # a finished regress of the same candidate, seeds and tier: its cells are reused, so asking
    # again (after a change of the rule, say) judges again without training
    earlier = RunStore.of_profile(results_dir, profile.name, complete=True)
    sources = [s for s in (reference, earlier[0] if earlier else None) if s is not None]
    env = environment(device)
    have = set().union(*(s.finished_cells() for s in sources)) | (store.finished_cells() if store else set())
    with executor.measuring():
        bounds = estimate(profile, device, have)
    plan = plan_text(profile, device, bounds, have, executor)
    print(plan, flush=True)
    if store is None:
        store = RunStore.create(results_dir, profile.name, {
            "status": "running", "started": utc_now(), "suite_version": __version__,
            "profile": {k: v for k, v in profile.to_dict().items() if k != "cells"}, "profile_data": data,
            "regress": {"router": router, "router_kwargs": router_kwargs, "tier": tier_name, "seeds": seeds,
                        "against": shown(against) if against else None,
                        "reused_from": [shown(s.path) for s in sources]},
            "cells": [c.describe() for c in profile.cells], "environment": env, "plan": plan,
            "command": " ".join(sys.argv)})
    else:
        print(f"Resuming the unfinished regress run {store.path.name}")
    with store.lock():
        try:
            imported = sum(import_reference(store, source, profile) for source in sources)
            print(f"\nRun {store.path.name}: {store.path} ({imported} stored cells reused)")
            # the candidate's cells run in a worker process: a plugin that ends its process fails its cell
            train_cells(store, profile, device, env, progress, executor, isolate=lambda c: c.label == "candidate")
        except KeyboardInterrupt:
            hint = f"python -m suite regress {shlex.join(sys.argv[2:])}" if len(sys.argv) > 2 else "the same command"
            print(f"\ninterrupted: the cells so far are stored in {store.path}; resume with {hint}", file=sys.stderr)
            return 130
        rows = series(store.runs(), router, router_kwargs)
        want = "faithful" if tier.faithful else "mini"
        if (rows["candidate"]["tier"] != want).any():  # a tier file whose model is not its tier's size
            raise ConfigError(f"tier: the {tier_name} tier produced a row of the other tier (its model is not {want} size)")
        (store.path / "figures").mkdir(exist_ok=True)
        pareto(rows, store.path / "figures", f"{router} on the {tier_name} tier")
        verdict = judge(store, tier, imported, finished=utc_now())
    print(f"\nWrote {store.path}/ (runs.csv, regress.csv, REGRESS.md, figures/pareto.*)")
    return exit_code(verdict)


def exit_code(verdict: str) -> int:
    """asv compare's convention: 1 only when shown WORSE; INCONCLUSIVE is not shown to be worse."""
    return 1 if verdict == "WORSE" else 0


def judge(store: RunStore, tier: Tier, imported: int, finished: str | None = None, quiet: bool = False) -> str:
    """Judge a run's stored cells: regress.csv, REGRESS.md and the manifest's verdict; no training."""
    manifest = store.manifest()
    r = manifest["regress"]
    runs = store.runs()
    rows = series(runs, r["router"], r["router_kwargs"])
    failed = failed_candidate(runs, r["router"], r["router_kwargs"])
    comparisons = [c for name in REFERENCES for c in compare(rows["candidate"], rows[name], name, failed)]
    verdict, reasons = overall(comparisons, ORIGINAL)
    write_csv(store.path / "regress.csv", table(comparisons, verdict))
    done = {"status": "complete", "finished": finished or manifest.get("finished"), "verdict": verdict}
    store.write_text("REGRESS.md", regress_markdown({**manifest, **done}, comparisons, verdict, reasons, tier, imported))
    store.update_manifest(**done)
    if not quiet:
        print_regress(comparisons, verdict, reasons)
    return verdict


def rejudge(run_dir: Path) -> str:
    """A finished regress run judged again under the current rule from its stored cells, in place
    (after a change of the rule); runs.csv, history.csv and the figures are left as they are."""
    store = RunStore.open(run_dir)
    r = store.manifest()["regress"]
    imported = int((store.runs()["run_id"] != store.path.name).sum())
    with store.lock():
        return judge(store, load_tiers()[r["tier"]], imported, quiet=True)


def add_arguments(g) -> None:
    g.add_argument("--router", required=True, help="a built-in router or a plugin 'package.module:Class'")
    g.add_argument("--router-kwargs", type=json_object, default={}, metavar="JSON")
    g.add_argument("--against", default=None, metavar="RUN_DIR",
                   help="a stored run to read reference cells from (default: the tier's committed reference)")
    g.add_argument("--tier", type=choice(["mini", "faithful"]), default="mini")
    g.add_argument("--seeds", type=typed(Annotated[int, Field(ge=1, le=100)], int, "an integer"), default=3)
    g.add_argument("--results-dir", default="results")
    g.add_argument("--device", type=choice(DEVICES), default="auto")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    add_executor_options(g)


def run(a) -> int:
    """Exit 0 not worse, 1 worse, 2 bad input; 3 when the command itself failed, so a crash is
    never read as a verdict (Python's own exit code for an uncaught error is 1)."""
    try:
        device = resolve_device(a.device)
        with open_executor(a, device) as executor:
            return regress(a.router, a.router_kwargs, a.against, a.tier, a.seeds, a.results_dir,
                           device, progress=not a.quiet, executor=executor)
    except (*INPUT_ERRORS, KeyboardInterrupt):
        raise
    except Exception:
        traceback.print_exc()
        print("error: regress failed (exit 3); the cells stored so far are kept, run the same command to resume",
              file=sys.stderr)
        return 3


COMMAND = Command("regress", "a candidate router against the original router and the baselines, with a verdict "
                  "and an exit code (0 not worse, 1 worse, 2 usage error)", add_arguments, run)
