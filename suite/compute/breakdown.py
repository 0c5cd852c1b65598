"""The per-part MAC breakdown of one forward pass in three readings, cross-checked against fvcore and
FlopCounterMode (what `python -m suite flops` prints)."""
from __future__ import annotations

import pandas as pd
import torch

from baselines import ModelConfig, build_model

from suite.errors import ConfigError
from suite.compute.flops import counter_forward_flops, fvcore_parts
from suite.compute.formulas import PARTS, READINGS, model_macs


def last_positions(T: int, usage: float) -> list[int]:
    """The gate pattern for a usage: the last round(usage * T) positions (at least one when
    usage > 0), the pattern the headline model learns (it routes the query at the end)."""
    if not 0.0 <= usage <= 1.0:
        raise ConfigError(f"usage: must be in [0, 1], got {usage}")
    k = 0 if usage == 0 else max(1, round(usage * T))
    return list(range(T - k, T))


def breakdown(model: str, cfg: ModelConfig, T: int, execution: str, usage: float) -> pd.DataFrame:
    routed = [last_positions(T, usage)] * cfg.n_layers if model == "routed" and execution == "sparse" else None
    rows = []
    for reading in READINGS:
        macs = model_macs(model, cfg, T, reading, execution if model == "routed" else "dense", routed)
        rows += [{"part": p, "reading": reading, "macs": macs[p]} for p in (*PARTS, "total")]
    return pd.DataFrame(rows)


def cross_check(model: str, cfg: ModelConfig, T: int, execution: str, usage: float, table: pd.DataFrame) -> list[str]:
    """Trace the same forward with fvcore and FlopCounterMode; return any disagreement."""
    torch.manual_seed(0)
    m = build_model(model, cfg).eval().set_execution(execution if model == "routed" else "dense")
    if model == "routed" and execution == "sparse":
        gate = torch.zeros(1, T)
        gate[0, last_positions(T, usage)] = 1
        m.force_gates(gate)
    ids = torch.randint(0, cfg.vocab_size, (1, T))
    total = table[table.part == "total"].set_index("reading")["macs"]
    problems = []
    for reading in READINGS:
        fcm = counter_forward_flops(m, ids, reading) // 2
        if fcm != total[reading]:
            problems.append(f"{reading}: FlopCounterMode/2 = {fcm} != closed form {total[reading]}")
        # fvcore cannot see mask values: it reads gathered rows as dense rows
        if reading != "causal" or execution == "dense" or model != "routed":
            fv = fvcore_parts(m, ids, reading)
            if fv["total"] != total[reading]:
                problems.append(f"{reading}: fvcore = {fv['total']} != closed form {total[reading]}")
            if fv["unsupported"]:
                problems.append(f"fvcore met ops it cannot count: {fv['unsupported']}")
    return problems
