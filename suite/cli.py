"""Command line: `python -m suite <command>`. Bad input: one line on stderr, exit code 2."""
from __future__ import annotations

import argparse
import json
import math
import sys
import traceback
from typing import Annotated

import pandas as pd
import pydantic
from pydantic import Field

from baselines import MODELS, ModelConfig, build_model, check_router_spec, count_params
from tasks import TASKS, make_task

from suite.run.devices import DEVICES, resolve_device
from suite.errors import INPUT_ERRORS, ConfigError, message, one_line
from suite.schema.bounds import Distance, Lambda, Name, Seed, SeqLen
from suite.run.protocol import PROTOCOLS, get_protocol


class Parser(argparse.ArgumentParser):
    """argparse, but errors are one line naming the parameter (no usage dump), exit 2."""

    def error(self, message):
        raise ConfigError(message)


def typed(annotation, kind=int, what: str = ""):
    """An argparse type: the text read as `kind`, then validated against the schema's bounds."""
    adapter = pydantic.TypeAdapter(annotation)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what or kind.__name__}, got '{text}'") from None
        try:
            return adapter.validate_python(value)
        except pydantic.ValidationError as e:
            raise argparse.ArgumentTypeError(one_line(e).removeprefix("input: ")) from None
    return parse


def choice(allowed):
    def parse(text):
        if text not in allowed:
            raise argparse.ArgumentTypeError(f"unknown '{text}'; allowed: {', '.join(allowed)}")
        return text
    return parse


def json_object(text: str) -> dict:
    try:
        value = json.loads(text, parse_constant=lambda c: float("nan"))
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e.msg} at column {e.colno}): '{text}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got '{text}'")
    return value


SEED = typed(Seed, int, "an integer")
DISTANCE = typed(Distance, int, "an integer")
SEQ_LEN = typed(SeqLen, int, "an integer")
LAMBDA = typed(Lambda, float, "a number")
USAGE = typed(Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)], float, "a number")
MODEL_SIZE = typed(Annotated[int, Field(ge=1)], int, "an integer")
RUN_ID = typed(Name, str, "a run id")
COUNT = typed(Annotated[int, Field(ge=1, le=4096)], int, "an integer")
GPU_FRACTION = typed(Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)], float, "a number")


def add_executor_options(p) -> None:
    """Where the cells train (suite/run/executor.py); checked before any work."""
    from suite.run.executor import EXECUTORS

    p.add_argument("--executor", type=choice(list(EXECUTORS)), default="local",
                   help="local: one cell after another in this process (default); processes: N spawned worker "
                        "processes; ray: each cell a Ray task (pip install -e '.[ray]')")
    p.add_argument("--workers", type=COUNT, default=None, metavar="N",
                   help="cells at once (processes, ray; default: the cores / threads per worker, 1 on a GPU; "
                        "on a Ray cluster: as many as its resources hold)")
    p.add_argument("--threads-per-worker", type=COUNT, default=None, metavar="K",
                   help="torch threads per cell (default: 1 for processes and ray; local: unchanged)")
    p.add_argument("--ray-address", default=None, metavar="auto|HOST:PORT",
                   help="ray only: a running Ray cluster (default: start a local instance with N x K CPUs)")
    p.add_argument("--gpus-per-cell", type=GPU_FRACTION, default=None, metavar="F",
                   help="ray on CUDA only: the GPU share of one cell (default 1; 0.25 packs 4 cells on a GPU)")


def open_executor(a, device):
    """The executor of the parsed options, checked (one line, exit 2, before any work)."""
    from suite.run.executor import ExecutorSpec, make_executor

    return make_executor(ExecutorSpec(a.executor, a.workers, a.threads_per_worker, a.ray_address, a.gpus_per_cell),
                         device)


MODEL_FLAGS = ("d_model", "n_layers", "n_heads", "kernel_size")


def add_run_options(p, resume_help: str) -> None:
    """The options of a command that trains a profile into a run folder (reproduce, audit)."""
    p.add_argument("--results-dir", default="results")
    p.add_argument("--resume", default=None, type=RUN_ID, metavar="RUN_ID", help=resume_help)
    p.add_argument("--fresh", action="store_true", help="start a new run even if one of this profile is unfinished")
    p.add_argument("--device", type=choice(DEVICES), default="auto")
    p.add_argument("--dry-run", action="store_true", help="print the plan and the estimate, train nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_executor_options(p)


def build_parser() -> Parser:
    p = Parser(prog="python -m suite", description="Routed Attention benchmark and reproduction suite")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    t = sub.add_parser("train", help="train one cell under a protocol and print its result")
    t.add_argument("--task", required=True, type=choice(sorted(TASKS)))
    t.add_argument("--distance", required=True, type=DISTANCE)
    t.add_argument("--model", required=True, type=choice(list(MODELS)))
    t.add_argument("--lambda-target", type=LAMBDA, default=None,
                   help="final attention cost of phase 2 (routed only; default 0.5)")
    t.add_argument("--seed", type=SEED, default=0)
    t.add_argument("--router", default=None,
                   help="routed only: a built-in router (gumbel, the original; threshold, last, random, layer, "
                        "always_attn, always_conv) or a plugin 'package.module:Class'")
    t.add_argument("--router-kwargs", type=json_object, default=None, metavar="JSON",
                   help="routed only: keyword arguments of the router, a JSON object")
    t.add_argument("--device", type=choice(DEVICES), default="auto")
    t.add_argument("--protocol", type=choice(list(PROTOCOLS)), default="faithful")
    for f in MODEL_FLAGS:
        t.add_argument("--" + f.replace("_", "-"), type=MODEL_SIZE, default=None,
                       help=f"model {f} (default: the original's)")
    t.add_argument("--format", type=choice(["table", "json"]), default="table")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    m = sub.add_parser("models", help="list the models and their parameter counts (default config)")
    m.add_argument("--format", type=choice(["table", "csv"]), default="table")
    sub.add_parser("tasks", help="list the tasks")

    r = sub.add_parser("reproduce", help="train a profile's grid, check every claim, write a results folder")
    r.add_argument("--profile", default=None,
                   help="smoke, cpu, paper, or a path to a .json profile (default: paper on a GPU, cpu otherwise)")
    add_run_options(r, "continue an interrupted run")

    au = sub.add_parser("audit", help="train the audit profile, swap every kept model's decisions, answer the "
                                       "original's questionable points in AUDIT.md")
    au.add_argument("--profile", default=None,
                    help="the audit profile (default: audit; with --resume, the run's own), or a path to a .json profile")
    add_run_options(au, "continue an interrupted audit run")
    au.add_argument("--claims-file", default=None, help="a claims registry other than suite/data/claims.json")

    g = sub.add_parser("regress", help="a candidate router against the original router and the baselines, "
                                       "with a verdict and an exit code (0 not worse, 1 worse, 2 usage error)")
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

    f = sub.add_parser("flops", help="forward MACs by part: dense, causal-effective and executed readings")
    f.add_argument("--model", required=True, type=choice(list(MODELS)))
    f.add_argument("--seq-len", required=True, type=SEQ_LEN)
    f.add_argument("--usage", type=USAGE, default=None,
                   help="routed only: attention usage per layer (default: one routed query, 1/seq-len)")
    f.add_argument("--execution", type=choice(["sparse", "dense"]), default="sparse",
                   help="routed only: sparse (really skips) or dense (the original: both branches everywhere)")
    for fl in MODEL_FLAGS:
        f.add_argument("--" + fl.replace("_", "-"), type=MODEL_SIZE, default=None)
    f.add_argument("--format", type=choice(["table", "csv"]), default="table")
    f.add_argument("--no-check", action="store_true", help="skip the fvcore / FlopCounterMode cross-check")

    g = sub.add_parser("figures", help="draw a results run's figures (PDF + PNG) into <run dir>/figures/")
    g.add_argument("run_dirs", nargs="*", help="run folders (default: the newest under --results-dir)")
    g.add_argument("--latency-csv", default=None)
    g.add_argument("--results-dir", default="results")

    sub.add_parser("gpucheck", help="per-model training step time at T = 128 / 512 / 2048 on this GPU, the share of "
                                    "its float32 matmul peak, and the paper profile's ETA (exit 2 without a GPU)")

    c = sub.add_parser("claims", help="re-check the claims of a stored run without training")
    c.add_argument("run_dir")
    c.add_argument("--claims-file", default=None, help="a claims registry other than suite/data/claims.json")
    c.add_argument("--write", action="store_true", help="also rewrite the run's claims.csv and REPORT.md")
    return p


def finite_or_none(row: dict) -> dict:
    """JSON has no NaN or Infinity: a non-finite number is printed as null."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return [clean(x) for x in v] if isinstance(v, list) else v
    return {k: clean(v) for k, v in row.items()}


def cmd_train(a) -> int:
    from suite.run.gate import check_router
    from suite.run.memory import check_fits, training_bytes
    from suite.run.trainer import train

    task = make_task(a.task, distance=a.distance)
    router = {k: v for k, v in (("router", a.router), ("router_kwargs", a.router_kwargs)) if v is not None}
    if router and a.model != "routed":
        raise ConfigError(f"router: only the routed model has a router; '{a.model}' has none")
    cfg = ModelConfig(**{f: getattr(a, f) for f in MODEL_FLAGS if getattr(a, f) is not None}, **router)
    if a.model == "routed":
        check_router_spec(cfg)
    lam = a.lambda_target
    if lam is None:
        lam = 0.5 if a.model == "routed" else 0.0
    protocol = get_protocol(a.protocol)
    device = resolve_device(a.device)
    check_fits(f"distance {a.distance}", training_bytes(a.model, cfg, task.seq_len, protocol.batch_size(task.seq_len)),
               device)
    if a.model == "routed":
        check_router(cfg, task.seq_len, device)
    r = train(task, a.model, lambda_target=lam, seed=a.seed, protocol=protocol, model_config=cfg,
              device=device, progress=not a.quiet, desc=f"{a.model} d={a.distance} ")
    row = {"task": a.task, "distance": a.distance, "model": a.model, "lambda_target": lam,
           "seed": a.seed, "device": str(device), **r.summary()}
    if a.model == "routed":
        row.update(router=cfg.router, router_kwargs=cfg.router_kwargs)
    if a.format == "json":
        print(json.dumps(finite_or_none(row), allow_nan=False))
    else:
        row["usage_per_layer"] = " ".join(f"{u:.4f}" for u in row["usage_per_layer"])
        if "router_kwargs" in row:
            row["router_kwargs"] = json.dumps(row["router_kwargs"], sort_keys=True)
        print(pd.DataFrame([row]).to_string(index=False))
    return 0


def cmd_models(a) -> int:
    df = pd.DataFrame([{"model": n, "params": count_params(build_model(n))} for n in MODELS])
    print(df.to_csv(index=False), end="") if a.format == "csv" else print(df.to_string(index=False))
    return 0


def cmd_tasks(a) -> int:
    rows = []
    for name, cls in sorted(TASKS.items()):
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        rows.append({"task": name, "description": doc})
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


def cmd_reproduce(a) -> int:
    from suite.commands.reproduce import reproduce
    device = resolve_device(a.device)
    with open_executor(a, device) as executor:
        return reproduce(a.profile, a.results_dir, a.resume, device, dry_run=a.dry_run,
                         fresh=a.fresh, progress=not a.quiet, executor=executor)


def cmd_audit(a) -> int:
    from suite.commands.audit import audit
    device = resolve_device(a.device)
    with open_executor(a, device) as executor:
        return audit(a.profile or (None if a.resume else "audit"), a.results_dir, a.resume, device, dry_run=a.dry_run,
                     fresh=a.fresh, progress=not a.quiet, executor=executor, claims_file=a.claims_file)


def cmd_regress(a) -> int:
    """Exit 0 not worse, 1 worse, 2 bad input; 3 when the command itself failed, so a crash is
    never read as a verdict (Python's own exit code for an uncaught error is 1)."""
    from suite.commands.regress import regress
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


def cmd_gpucheck(a) -> int:
    from suite.commands.gpucheck import gpucheck
    return gpucheck()


def cmd_claims(a) -> int:
    from suite.judge.claims import REGISTRY, load_registry
    from suite.commands.reproduce import check_and_report, print_summary
    from suite.run.store import RunStore

    store = RunStore.open(a.run_dir)
    runs, claims = check_and_report(store, load_registry(a.claims_file or REGISTRY), write=a.write, figures=False)
    print_summary(runs, claims)
    return 0


def cmd_flops(a) -> int:
    from suite.compute.cli import run
    return run(a)


def cmd_figures(a) -> int:
    from suite.figures.draw import render_figures
    from suite.run.store import RunStore

    dirs = a.run_dirs or [RunStore.newest(a.results_dir).path]
    for run_dir in dirs:
        for path in render_figures(run_dir, latency_csv=a.latency_csv):
            print(path)
    return 0


COMMANDS = {"figures": cmd_figures, "flops": cmd_flops, "train": cmd_train, "models": cmd_models, "tasks": cmd_tasks, "reproduce": cmd_reproduce,
            "claims": cmd_claims, "regress": cmd_regress, "audit": cmd_audit, "gpucheck": cmd_gpucheck}


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except INPUT_ERRORS as e:
        print(f"error: {message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
