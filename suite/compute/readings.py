"""Per-cell compute readings: executed FLOPs under the real routing, measured latency, and
training FLOPs, beside the notional 1 - usage that the original reports."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F

from baselines import build_model, usage_of

from suite.compute.flops import counter_mode, training_step_flops
from suite.compute.formulas import model_macs

LATENCY_REPEATS = 7


@dataclass
class Routing:
    """What the model decided on the test set, in eval mode."""
    counts: list          # per sequence, per layer: (routed count, causal pairs sum(i + 1))
    rates: torch.Tensor   # (layers, T): share of sequences sending position t to attention
    ids: torch.Tensor     # (1, T) on the CPU: the first test sequence
    rows: list            # per layer: routed count -> the gates (1, T) of one sequence with it


@torch.no_grad()
def read_routing(model, batches) -> Routing:
    """Gates are decided on the batches as evaluated; each sequence keeps its own (a random router
    in eval draws per row of a batch, so a sequence run alone could be routed differently)."""
    model.eval()
    counts, rows, rate_sum, n = [], None, None, 0
    for b in batches:
        g = torch.stack(model(b.inputs, b.positions).gates)          # (L, B, T)
        L, B, T = g.shape
        rows = rows or [{} for _ in range(L)]
        pos1 = torch.arange(1, T + 1, device=g.device, dtype=g.dtype)
        r = g.sum(-1).round().long().T.tolist()                       # (B, L)
        pairs = (g * pos1).sum(-1).round().long().T.tolist()
        for i in range(B):
            counts.append(list(zip(r[i], pairs[i])))
            for layer in range(L):
                rows[layer].setdefault(r[i][layer], g[layer, i:i + 1].cpu())
        rate_sum = g.sum(1) if rate_sum is None else rate_sum + g.sum(1)
        n += B
    return Routing(counts, (rate_sum / n).cpu(), batches[0].inputs[:1].cpu(), rows)


def _counted(model, ids, gates=None) -> tuple[int, list[int]]:
    """Forward MACs of `ids` (1, T), total and per block, as FlopCounterMode counts them (2 FLOPs
    per MAC), logits at every position; `gates` (per layer (1, T)) force the routing while the
    router still runs and is counted. `model` must be a CPU copy: GPU SDPA is counted dense."""
    if gates is not None:
        model.force_gates(list(gates))
    with torch.no_grad(), counter_mode("executed") as fc:
        model(ids)
    by_module = fc.get_flop_counts()
    name = type(model).__name__
    blocks = [sum(by_module.get(f"{name}.blocks.{i}", {}).values()) // 2 for i in range(len(model.blocks))]
    return fc.get_total_flops() // 2, blocks


def _cpu_copy(model, execution: str | None = None):
    m = copy.deepcopy(model).cpu().eval()
    return m.set_execution(execution) if execution else m


def counted_macs(model, ids, execution: str | None = None) -> int:
    """Counted forward MACs of one sequence `ids` (1, T) run alone, on a CPU copy of the model:
    what the baselines and the original's dense execution cost (the same for every input)."""
    return _counted(_cpu_copy(model, execution), ids.cpu())[0]


def executed_macs(model, routing: Routing) -> float:
    """Mean forward MACs per test sequence, each run alone (batch 1, logits everywhere) in sparse
    execution under its own gates, counted by FlopCounterMode: so a router's real cost is counted.

    Counted per layer, not per sequence: a layer's count depends on its own routed count only
    (its input is (1, T, d) whatever other layers did; in the executed reading each gathered query
    row is scored against all T keys, so the causal pairs do not enter). Round k forces every
    layer's k-th distinct routed count at once and reads each block's share: at most T + 1
    forwards (tens in practice), where whole-model signatures are often one per sequence.
    Assumes the router's own cost does not depend on content (true of the built-ins and of any
    router whose work is set by shapes); a router whose cost does would need every sequence
    counted, which this does not do.
    """
    m = _cpu_copy(model, "sparse")
    L, N = len(routing.rows), len(routing.counts)
    cost = [{} for _ in range(L)]
    rest = 0
    for k in range(max(len(rows) for rows in routing.rows)):
        pick = [list(rows)[min(k, len(rows) - 1)] for rows in routing.rows]
        total, blocks = _counted(m, routing.ids, [routing.rows[layer][r] for layer, r in enumerate(pick)])
        rest = total - sum(blocks)  # embedding, final LayerNorm, head: the same every round
        for layer, r in enumerate(pick):
            cost[layer][r] = blocks[layer]
    return rest + sum(cost[layer][c[layer][0]] for c in routing.counts for layer in range(L)) / N


def median_latency_ms(fns: dict, device: torch.device, repeats: int | None = None) -> dict:
    """Interleaved (A B A B ...) timing after one warm-up each; median per callable (LATENCY_REPEATS
    rounds unless told)."""
    repeats = LATENCY_REPEATS if repeats is None else repeats
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    times = {k: [] for k in fns}
    with torch.no_grad():
        for fn in fns.values():
            fn()
        for _ in range(repeats):
            for k, fn in fns.items():
                sync()
                t0 = time.perf_counter()
                fn()
                sync()
                times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: float(pd.Series(v).median()) for k, v in times.items()}


_TRAIN_FLOPS: dict = {}


def train_step_flops(model_name, cfg, task, batch_size: int, lam: float) -> int:
    """FLOPs of one training step (forward + backward, as the trainer runs it), counted on the CPU
    so the number does not depend on the device's kernels; cached per configuration."""
    key = (model_name, cfg, task.seq_len, batch_size, lam > 0)
    if key not in _TRAIN_FLOPS:
        torch.manual_seed(0)
        m = build_model(model_name, cfg).train()
        b = next(task.stream("train", 0, batch_size))

        def step():
            out = m(b.inputs, b.positions)
            ce = F.cross_entropy(out.logits.reshape(-1, out.logits.shape[-1]), b.targets.reshape(-1))
            (ce + lam * usage_of(out.gates) if lam else ce).backward()
        _TRAIN_FLOPS[key] = training_step_flops(step)
    return _TRAIN_FLOPS[key]


def compute_columns(model_name, model, cfg, task, test_batches, usage, device, protocol, result):
    """runs.csv compute columns of one trained cell, and its routing map (layer x position).

    The model's forward MACs are counted on the model itself (a plugin router costs what it
    runs); the AttnOnly reference is the closed form, which the counter matches exactly.
    """
    T = task.seq_len
    model = model.eval()
    first = test_batches[0].inputs[:1]
    if model_name == "routed":
        decided = read_routing(model.set_execution("sparse"), test_batches)
        executed, rates = executed_macs(model, decided), decided.rates
        dense = counted_macs(model, first, "dense")
    else:
        executed = dense = counted_macs(model, first)
        rates = None
    attn_ref = model_macs("attn", cfg, T, "executed")["total"]
    torch.manual_seed(0)
    reference = build_model("attn", cfg).to(device).eval()
    inputs = test_batches[0].inputs
    lat = median_latency_ms({"model": lambda: model(inputs), "attn": lambda: reference(inputs)}, device)
    per_step = train_step_flops(model_name, cfg, task, protocol.batch_size(T), result_lambda(result))
    steps = protocol.steps_per_epoch
    cols = {
        "macs_forward_executed": executed,
        "macs_forward_dense_original": dense,
        "macs_forward_attn_ref": attn_ref,
        "savings_notional": 1.0 - usage,
        "savings_executed": 1.0 - executed / attn_ref,
        "savings_latency": 1.0 - lat["model"] / lat["attn"],
        "latency_ms_model": lat["model"], "latency_ms_attn": lat["attn"], "latency_batch": int(inputs.shape[0]),
        "train_flops_per_step": per_step,
        "train_flops_phase1": per_step * steps * result.epochs_phase1,
        "train_flops_phase2": per_step * steps * result.epochs_phase2,
    }
    routing = None
    if rates is not None:
        L, Tn = rates.shape
        routing = [{"layer": layer, "position": t, "attention_rate": float(rates[layer, t])}
                   for layer in range(L) for t in range(Tn)]
    model.set_execution("dense")
    return cols, routing


def result_lambda(result) -> float:
    """The largest lambda the run trained with (the cost term is then part of the step)."""
    return max((h.lam for h in result.history), default=0.0)
