"""Inference latency beside executed FLOPs: AttnOnly (SDPA), ConvOnly, Routed as in the original
(both branches dense) and Routed sparse at several usages, T in {128, 512, 2048, 4096}, batch 1
and 24. Skipped in the normal run; `nox -s bench` runs them and writes
results/<version>/bench/latency.csv (median time, MACs, predicted and achieved speed-up).

A batch runs "whole" (one call) and, where it differs on the CPU, "sliced" (whole sequences in
slices that stay in cache, suite.run.throughput.sliced_forward). Speed-ups compare models
under the same batching, so neither side gets a treatment the other lacks.
"""
from pathlib import Path

import pandas as pd
import pytest
import torch

from baselines import ModelConfig, build_model
from suite import __version__
from suite.run.devices import resolve_device
from suite.compute.breakdown import last_positions
from suite.compute.formulas import model_macs
from suite.run.throughput import slice_size, sliced_forward
from suite.core.io import write_csv

CFG = ModelConfig()
DEVICE = resolve_device("auto")
USAGES = {"one-query": None, "1%": 0.01, "25%": 0.25, "100%": 1.0}
CASES = [("attn", "sdpa", None), ("conv", "dense", None), ("routed", "dense", None)] + [
    ("routed", "sparse", u) for u in USAGES]
ROWS = []
OUT = Path(__file__).resolve().parent.parent / "results" / __version__ / "bench" / "latency.csv"


def build(model, execution, usage, T):
    torch.manual_seed(0)
    m = build_model(model, CFG).to(DEVICE).eval()
    routed = None
    if model == "routed":
        m.set_execution(execution)
        if execution == "sparse":
            u = 1.0 / T if USAGES[usage] is None else USAGES[usage]
            routed = [last_positions(T, u)] * CFG.n_layers
            gate = torch.zeros(1, T, device=DEVICE)
            gate[0, routed[0]] = 1
            for blk in m.blocks:
                blk.mixer.forced_gate = gate
    macs = model_macs(model, CFG, T, "executed", execution, routed)["total"]
    return m, macs


@pytest.fixture(scope="module", autouse=True)
def write_rows():
    yield
    if ROWS:
        df = pd.DataFrame(ROWS)
        ref = df[df.model == "attn"][["seq_len", "batch", "batching", "macs", "median_ms"]]
        df = df.merge(ref, on=["seq_len", "batch", "batching"], how="left", suffixes=("", "_attn"))
        # speed-ups against AttnOnly at the same length, batch and batching (NaN where not run)
        df["predicted_speedup"] = df["macs_attn"] / df["macs"]
        df["measured_speedup"] = df["median_ms_attn"] / df["median_ms"]
        df["achieved_fraction"] = df["measured_speedup"] / df["predicted_speedup"]
        OUT.parent.mkdir(parents=True, exist_ok=True)
        write_csv(OUT, df)


@pytest.mark.parametrize("batching", ["whole", "sliced"])
@pytest.mark.parametrize("batch", [1, 24])
@pytest.mark.parametrize("seq_len", [128, 512, 2048, 4096])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(x) for x in c if x))
def test_inference_latency(benchmark, case, seq_len, batch, batching):
    if batching == "sliced" and slice_size(batch, seq_len, DEVICE) == batch:
        pytest.skip("one slice is the whole batch here")
    model, execution, usage = case
    m, macs = build(model, execution, usage, seq_len)
    ids = torch.randint(0, 256, (batch, seq_len), device=DEVICE)
    forward = m if batching == "whole" else (lambda x: sliced_forward(m, x, DEVICE))
    if DEVICE.type == "cuda":
        def run():
            forward(ids)
            torch.cuda.synchronize()
    else:
        def run():
            forward(ids)
    with torch.no_grad():
        benchmark.pedantic(run, rounds=3, warmup_rounds=1, iterations=1)
    benchmark.extra_info.update(model=model, execution=execution, usage=usage, seq_len=seq_len, batch=batch,
                                batching=batching, macs=macs * batch)
    u = None if usage is None else (1.0 / seq_len if USAGES[usage] is None else USAGES[usage])
    ROWS.append({"model": model, "execution": execution, "case": usage or execution, "usage": u,
                 "seq_len": seq_len, "batch": batch, "batching": batching,
                 "device": str(DEVICE), "median_ms": benchmark.stats.stats.median * 1e3, "macs": macs * batch})
