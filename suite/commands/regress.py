"""`python -m suite regress`: a candidate router against the original router and the baselines on a
tier's battery (suite/data/tiers.json), same protocol and seeds, with a verdict and an exit code.

Reference cells (the original router, AttnOnly, ConvOnly) are read from a stored run when it holds
them (same config_hash: same task, model, protocol, seed and test set), and trained and stored in
this run otherwise, never skipped. The candidate's cells are trained. Everything lands in a
results folder through the store, plus regress.csv, REGRESS.md and figures/pareto.{pdf,png}.
"""
from __future__ import annotations

import hashlib
import json
import math
import shlex
import sys
from pathlib import Path
import traceback
from typing import Annotated, Any, Literal

import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field

from suite import __version__
from suite.errors import INPUT_ERRORS, ConfigError, parse
from suite.figures.pareto import pareto
from suite.judge import regress as rule
from suite.judge.regress import METRICS, compare, overall
from suite.pipeline.options import Command, add_executor_options, choice, json_object, open_executor, typed
from suite.run.devices import DEVICES, resolve_device
from suite.run.executor import Executor, ExecutorSpec, make_executor
from suite.run.grid import train_cells
from suite.run.plan import check_profile_fits, estimate, gate_routers, plan_text
from suite.run.profiles import Profile, ProtocolName, parse_profile
from suite.run.provenance import environment, utc_now
from suite.run.store import CELL_TABLES, RunStore, check_results_dir, write_csv
from suite.schema.bounds import Distance, Lambda, TestSequences
from suite.schema.rows import ok_rows
from tasks import TASKS

TIERS = Path(__file__).resolve().parent.parent / "data" / "tiers.json"
REPO = Path(__file__).resolve().parent.parent.parent
STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
ORIGINAL = "gumbel"
REFERENCES = ("gumbel", "attn", "conv")


class Battery(BaseModel):
    model_config = STRICT
    task: Literal[tuple(sorted(TASKS))]
    distances: list[Distance] = Field(min_length=1)
    task_params: dict[str, Any] = {}


class Tier(BaseModel):
    model_config = STRICT
    description: str
    faithful: bool
    protocol: ProtocolName
    model: dict[str, Any] = {}
    test_sequences: TestSequences
    lam: Lambda = Field(alias="lambda")
    battery: list[Battery] = Field(min_length=1)
    reference: str | None = None


class TierFile(BaseModel):
    model_config = STRICT
    comment: str = ""
    tiers: dict[str, Tier]


def load_tiers(path: Path | None = None) -> dict[str, Tier]:
    return parse(TierFile, json.loads(Path(path or TIERS).read_text()), "tiers").tiers


def regress_profile(tier_name: str, tier: Tier, router: str, router_kwargs: dict, seeds: int) -> dict:
    """The battery as profile data: reference blocks (attn, conv, the original router) and the
    candidate's block (left out when the candidate is the original router itself)."""
    spec = json.dumps({"router": router, "router_kwargs": router_kwargs, "seeds": seeds}, sort_keys=True)
    name = f"regress-{tier_name}-{hashlib.sha256(spec.encode()).hexdigest()[:8]}"
    is_original = router == ORIGINAL and not router_kwargs
    grid = []
    for b in tier.battery:
        common = {"task": b.task, "distances": b.distances, "seeds": list(range(seeds)),
                  "task_params": b.task_params}
        grid.append({**common, "label": "reference", "models": ["attn", "conv"]})
        grid.append({**common, "label": "reference", "models": ["routed"], "lambdas": [tier.lam]})
        if not is_original:
            grid.append({**common, "label": "candidate", "models": ["routed"], "lambdas": [tier.lam],
                         "model": {"router": router, "router_kwargs": router_kwargs}})
    cuts = [] if tier.faithful else [f"tier {tier_name}: not the faithful model (decides no published claim)"]
    return {"name": name, "description": f"regress {router} {json.dumps(router_kwargs)} on the {tier_name} tier, "
                                         f"{seeds} seed(s)",
            "decides_claims": False, "protocol": tier.protocol, "model": tier.model,
            "test_sequences": tier.test_sequences, "cuts": cuts, "grid": grid}


def shown(path) -> str:
    """A path as the report prints it: relative to the repository when inside it (no machine paths)."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def _records(df: pd.DataFrame) -> list[dict]:
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in df.to_dict("records")]


def import_reference(store: RunStore, reference: RunStore, profile: Profile) -> int:
    """Copy the reference run's finished rows of this profile's cells (and their per-cell tables)
    into this run; their run_id column keeps naming the run that trained them."""
    wanted = {c.config_hash(profile.test_sequences) for c in profile.cells} - store.finished_cells()
    rows = ok_rows(reference.runs())
    rows = rows[rows["config_hash"].isin(wanted)] if len(rows) else rows
    tables = {name: reference.table(name) for name in CELL_TABLES}
    for row in _records(rows):
        per_cell = {name: _records(t[t["config_hash"] == row["config_hash"]]) if len(t) else []
                    for name, t in tables.items()}
        store.append_cell(row, *per_cell.values())
    return len(rows)


def series(runs: pd.DataFrame, router: str, router_kwargs: dict) -> dict[str, pd.DataFrame]:
    """Rows of the candidate and of each reference, by model and router."""
    rows = ok_rows(runs)
    kwargs = rows["router_kwargs"].fillna("{}").replace("", "{}") if "router_kwargs" in rows else "{}"
    routers = rows["router"].fillna(ORIGINAL) if "router" in rows else ORIGINAL
    routed = rows["model"] == "routed"
    want = json.dumps(router_kwargs, sort_keys=True)
    return {"candidate": rows[routed & (routers == router) & (kwargs == want)],
            "gumbel": rows[routed & (routers == ORIGINAL) & (kwargs == "{}")],
            "attn": rows[rows["model"] == "attn"], "conv": rows[rows["model"] == "conv"]}


def regress_markdown(manifest: dict, table: pd.DataFrame, verdict: str, reasons: list[str], tier: Tier,
                     imported: int) -> str:
    show = table.copy()
    for c in ("candidate", "reference", "difference", "low", "high"):
        show[c] = show[c].map(lambda v: f"{v:.4g}")
    doc = (rule.__doc__ or "").strip()
    r = manifest["regress"]
    return "\n".join([
        f"# Regression report: `{r['router']}` on the {r['tier']} tier",
        "", f"Run `{manifest['run_id']}`; {r['seeds']} seed(s); router kwargs `{json.dumps(r['router_kwargs'])}`; "
            f"cells reused from {', '.join(f'`{x}`' for x in r.get('reused_from', [])) or 'no stored run'} "
            f"({imported}; the rest trained here).",
        "", f"**Tier {r['tier']}**: {tier.description}" + ("" if tier.faithful else
                                                             " Every row is labelled not faithful."),
        "", f"## Verdict: {verdict}", "", *[f"- {x}" for x in reasons],
        "", "## Paired differences (candidate - reference, by seed)", "", show.to_markdown(index=False),
        "", "![pareto](figures/pareto.png)", "", "*Accuracy against executed forward MACs per cell.*",
        "", "## The rule", "", "```", doc, "```", "",
    ])


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
            train_cells(store, profile, device, env, progress, executor)
        except KeyboardInterrupt:
            hint = f"python -m suite regress {shlex.join(sys.argv[2:])}" if len(sys.argv) > 2 else "the same command"
            print(f"\ninterrupted: the cells so far are stored in {store.path}; resume with {hint}", file=sys.stderr)
            return 130
        rows = series(store.runs(), router, router_kwargs)
        want = "faithful" if tier.faithful else "mini"
        if (rows["candidate"]["tier"] != want).any():  # a tier file whose model is not its tier's size
            raise ConfigError(f"tier: the {tier_name} tier produced a row of the other tier (its model is not {want} size)")
        table = pd.concat([compare(rows["candidate"], rows[name], name) for name in REFERENCES], ignore_index=True)
        verdict, reasons = overall(table, ORIGINAL)
        write_csv(store.path / "regress.csv", table.assign(overall=verdict))
        (store.path / "figures").mkdir(exist_ok=True)
        pareto(rows, store.path / "figures", f"{router} on the {tier_name} tier")
        manifest = {**store.manifest(), "status": "complete", "finished": utc_now()}
        store.write_text("REGRESS.md", regress_markdown(manifest, table, verdict, reasons, tier, imported))
        store.update_manifest(status="complete", finished=manifest["finished"], verdict=verdict)
    print_regress(table, verdict, reasons)
    print(f"\nWrote {store.path}/ (runs.csv, regress.csv, REGRESS.md, figures/pareto.*)")
    return 1 if verdict == "WORSE" else 0


def print_regress(table: pd.DataFrame, verdict: str, reasons: list[str], out=None) -> None:
    out = out or sys.stdout
    wide = table.pivot_table(index=["task", "distance", "against"], columns="metric", values="verdict",
                             aggfunc="first")[[m for m in METRICS if m in set(table["metric"])]]
    print("\nCandidate against each reference, per metric (paired by seed):", file=out)
    print(wide.to_string(), file=out)
    print(f"\nVerdict: {verdict}", file=out)
    for r in reasons:
        print(f"  - {r}", file=out)


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
