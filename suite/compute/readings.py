"""Per-cell compute readings: executed FLOPs under the real routing, measured latency, and
training FLOPs, beside the notional 1 - usage that the original reports."""
from __future__ import annotations

import time

import pandas as pd
import torch
import torch.nn.functional as F

from baselines import build_model

from suite.compute.flops import training_step_flops
from suite.compute.formulas import model_macs
from suite.run.trainer import usage_of

LATENCY_REPEATS = 7


@torch.no_grad()
def routing_counts(model, batches):
    """Per sequence and layer: (routed count, causal pairs); and the layer x position rate."""
    model.eval()
    counts, rate_sum, n = [], None, 0
    for b in batches:
        g = torch.stack(model(b.inputs, b.positions).gates)          # (L, B, T)
        T = g.shape[-1]
        pos1 = torch.arange(1, T + 1, device=g.device, dtype=g.dtype)
        r = g.sum(-1).round().long().T.tolist()                       # (B, L)
        pairs = (g * pos1).sum(-1).round().long().T.tolist()
        counts += [list(zip(ri, pi)) for ri, pi in zip(r, pairs)]
        rate_sum = g.sum(1) if rate_sum is None else rate_sum + g.sum(1)
        n += g.shape[1]
    return counts, (rate_sum / n).cpu()


def median_latency_ms(fns: dict, device: torch.device, repeats: int = LATENCY_REPEATS) -> dict:
    """Interleaved (A B A B ...) timing after one warm-up each; median per callable."""
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
    """runs.csv compute columns of one trained cell, and its routing map (layer x position)."""
    T = task.seq_len
    model = model.eval()
    if model_name == "routed":
        model.set_execution("sparse")
        counts, rates = routing_counts(model, test_batches)
        executed = sum(model_macs("routed", cfg, T, "executed", "sparse", routed_counts=c)["total"]
                       for c in counts) / len(counts)
    else:
        counts, rates = None, None
        executed = model_macs(model_name, cfg, T, "executed")["total"]
    attn_ref = model_macs("attn", cfg, T, "executed")["total"]
    torch.manual_seed(0)
    reference = build_model("attn", cfg).to(device).eval()
    inputs = test_batches[0].inputs
    lat = median_latency_ms({"model": lambda: model(inputs), "attn": lambda: reference(inputs)}, device)
    per_step = train_step_flops(model_name, cfg, task, protocol.batch_size(T), result_lambda(result))
    steps = protocol.steps_per_epoch
    cols = {
        "macs_forward_executed": executed,
        "macs_forward_dense_original": model_macs(model_name, cfg, T, "executed", "dense")["total"],
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
