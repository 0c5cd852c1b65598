"""Per-cell compute readings: executed MACs under real routing, latency, training FLOPs."""
import dataclasses

import pandas as pd
import pytest
import torch

from baselines import ModelConfig, build_model
from suite.compute.readings import compute_columns, median_latency_ms, routing_counts
from suite.compute.formulas import model_macs
from suite.run.protocol import FAITHFUL
from suite.run.trainer import train
from tasks import make_task

CFG = ModelConfig(d_model=16, n_layers=2, n_heads=2, kernel_size=4)
TINY = dataclasses.replace(FAITHFUL, name="tiny", steps_per_epoch=2, eval_batches=1, phase1_max_epochs=1)


def test_routing_counts_follow_the_gates():
    m = build_model("routed", CFG).eval()
    task = make_task("assoc_recall", distance=14)
    batches = task.fixed_set("test", 0, 6, 3)
    g0 = torch.zeros(3, 16)
    g0[0, [2, 15]] = 1
    g1 = torch.ones(3, 16)
    m.blocks[0].mixer.forced_gate, m.blocks[1].mixer.forced_gate = g0, g1
    counts, rates = routing_counts(m, batches)
    assert len(counts) == 6
    assert counts[0] == [(2, 3 + 16), (16, 16 * 17 // 2)] and counts[1] == [(0, 0), (16, 136)]
    assert rates.shape == (2, 16) and rates[0, 2] == pytest.approx(1 / 3) and torch.all(rates[1] == 1)


def test_compute_columns_of_a_routed_cell():
    task = make_task("assoc_recall", distance=14)
    r = train(task, "routed", lambda_target=0.5, protocol=TINY, model_config=CFG, progress=False)
    test = task.fixed_set("test", 0, 40, 20)
    cols, routing = compute_columns("routed", r.model, CFG, task, test, 0.25, torch.device("cpu"), TINY, r)
    T = 16
    assert cols["macs_forward_attn_ref"] == model_macs("attn", CFG, T, "executed")["total"]
    assert cols["macs_forward_dense_original"] == model_macs("routed", CFG, T, "executed", "dense")["total"]
    counts, _ = routing_counts(r.model.set_execution("dense"), test)
    expect = sum(model_macs("routed", CFG, T, "executed", "sparse", routed_counts=c)["total"] for c in counts) / 40
    assert cols["macs_forward_executed"] == pytest.approx(expect)
    assert cols["savings_notional"] == 0.75
    assert cols["savings_executed"] == pytest.approx(1 - expect / cols["macs_forward_attn_ref"])
    assert cols["latency_ms_model"] > 0 and cols["latency_ms_attn"] > 0
    assert cols["train_flops_phase1"] == cols["train_flops_per_step"] * 2 * r.epochs_phase1
    assert cols["train_flops_phase2"] == cols["train_flops_per_step"] * 2 * r.epochs_phase2
    assert len(routing) == 2 * T and {x["layer"] for x in routing} == {0, 1}


def test_baseline_compute_columns():
    task = make_task("assoc_recall", distance=14)
    r = train(task, "attn", protocol=dataclasses.replace(TINY, baseline_max_epochs=1), model_config=CFG, progress=False)
    cols, routing = compute_columns("attn", r.model, CFG, task, task.fixed_set("test", 0, 8, 8), 1.0,
                                    torch.device("cpu"), TINY, r)
    assert routing is None and cols["savings_executed"] == 0.0 and cols["savings_notional"] == 0.0
    assert cols["train_flops_phase2"] == 0


def test_latency_is_interleaved_medians():
    calls = []
    out = median_latency_ms({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                            torch.device("cpu"), repeats=3)
    assert calls == ["a", "b"] + ["a", "b"] * 3 and set(out) == {"a", "b"}
