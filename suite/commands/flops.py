"""`python -m suite flops`: forward MACs by part, dense, causal-effective and executed readings."""
from __future__ import annotations

import torch

from baselines import MODELS, ModelConfig

from suite.compute.breakdown import breakdown, cross_check, last_positions
from suite.compute.formulas import PARTS, READINGS
from suite.compute.memory import check_fits, training_bytes
from suite.errors import ConfigError
from suite.pipeline.options import MODEL_FLAGS, MODEL_SIZE, SEQ_LEN, USAGE, Command, choice


def add_arguments(f) -> None:
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


def run(a) -> int:
    cfg = ModelConfig(**{f: getattr(a, f) for f in MODEL_FLAGS
                         if getattr(a, f) is not None})
    if a.model != "routed" and a.usage is not None:
        raise ConfigError(f"usage: only the routed model has a usage; '{a.model}' has none")
    usage = 1.0 / a.seq_len if a.usage is None else a.usage
    if not a.no_check:  # the cross-check runs one real forward pass of this size
        check_fits(f"seq-len {a.seq_len}", training_bytes(a.model, cfg, a.seq_len, 1), torch.device("cpu"))
    table = breakdown(a.model, cfg, a.seq_len, a.execution, usage)
    problems = [] if a.no_check else cross_check(a.model, cfg, a.seq_len, a.execution, usage, table)
    if a.format == "csv":
        print(table.to_csv(index=False), end="")
    else:
        wide = table.pivot(index="part", columns="reading", values="macs").reindex([*PARTS, "total"])[list(READINGS)]
        what = a.model if a.model != "routed" else f"routed ({a.execution}" + (
            f", usage {usage:.4g}: last {len(last_positions(a.seq_len, usage))} of {a.seq_len} positions per layer)"
            if a.execution == "sparse" else ", both branches everywhere)")
        print(f"Forward MACs of one sequence, T = {a.seq_len}, {what}")
        print(wide.to_string())
        print("checked: closed form == fvcore == FlopCounterMode / 2" if not (problems or a.no_check) else "")
    for p in problems:
        print(f"MISMATCH {p}")
    return 1 if problems else 0


COMMAND = Command("flops", "forward MACs by part: dense, causal-effective and executed readings", add_arguments, run)
