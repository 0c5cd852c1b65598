"""`python -m suite train`: one cell under a protocol, its result printed (no results folder)."""
from __future__ import annotations

import json
import math

import pandas as pd

from baselines import MODELS, ModelConfig
from tasks import TASKS, make_task

from suite.compute.memory import check_fits, training_bytes
from suite.errors import ConfigError
from suite.pipeline.options import (DISTANCE, LAMBDA, MODEL_FLAGS, MODEL_SIZE, SEED, Command, choice,
                                    json_object)
from suite.run.devices import DEVICES, resolve_device
from suite.run.gate import check_router, check_spec
from suite.run.protocol import PROTOCOLS, get_protocol
from suite.run.trainer import train


def add_arguments(t) -> None:
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


def finite_or_none(row: dict) -> dict:
    """JSON has no NaN or Infinity: a non-finite number is printed as null."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return [clean(x) for x in v] if isinstance(v, list) else v
    return {k: clean(v) for k, v in row.items()}


def run(a) -> int:
    task = make_task(a.task, distance=a.distance)
    router = {k: v for k, v in (("router", a.router), ("router_kwargs", a.router_kwargs)) if v is not None}
    if router and a.model != "routed":
        raise ConfigError(f"router: only the routed model has a router; '{a.model}' has none")
    cfg = ModelConfig(**{f: getattr(a, f) for f in MODEL_FLAGS if getattr(a, f) is not None}, **router)
    if a.model == "routed":
        check_spec(cfg)
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


COMMAND = Command("train", "train one cell under a protocol and print its result", add_arguments, run)
