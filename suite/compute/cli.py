"""`python -m suite flops`: the per-part MAC breakdown of one forward pass, three readings."""
from __future__ import annotations

import pandas as pd
import torch

from baselines import ModelConfig, build_model

from suite.errors import ConfigError
from suite.compute.flops import counter_forward_flops, fvcore_parts
from suite.compute.formulas import PARTS, READINGS, model_macs
from suite.run.memory import check_fits, training_bytes


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
        for blk in m.blocks:
            blk.mixer.forced_gate = gate
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


def run(a) -> int:
    cfg = ModelConfig(**{f: getattr(a, f) for f in ("d_model", "n_layers", "n_heads", "kernel_size")
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
