"""Per-cell compute readings: executed MACs under real routing, latency, training FLOPs."""
import dataclasses
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from baselines import ModelConfig, build_model
from suite.compute.flops import counter_forward_flops
from suite.compute.formulas import model_macs, router
from suite.compute.readings import compute_columns, executed_macs, median_latency_ms, read_routing
from suite.run.protocol import FAITHFUL
from suite.run.trainer import train
from tasks import make_task

CFG = ModelConfig(d_model=16, n_layers=2, n_heads=2, kernel_size=4)
TINY = dataclasses.replace(FAITHFUL, name="tiny", steps_per_epoch=2, eval_batches=1, phase1_max_epochs=1)


def test_read_routing_follows_the_gates():
    m = build_model("routed", CFG).eval()
    task = make_task("assoc_recall", distance=14)
    batches = task.fixed_set("test", 0, 6, 3)
    g0 = torch.zeros(3, 16)
    g0[0, [2, 15]] = 1
    g1 = torch.ones(3, 16)
    m.blocks[0].mixer.forced_gate, m.blocks[1].mixer.forced_gate = g0, g1
    routing = read_routing(m, batches)
    counts, rates = routing.counts, routing.rates
    assert len(counts) == 6
    assert counts[0] == [(2, 3 + 16), (16, 16 * 17 // 2)] and counts[1] == [(0, 0), (16, 136)]
    assert rates.shape == (2, 16) and rates[0, 2] == pytest.approx(1 / 3) and torch.all(rates[1] == 1)
    # one gate row per layer and routed count, taken from a sequence that had it
    assert set(routing.rows[0]) == {2, 0} and set(routing.rows[1]) == {16}
    assert torch.equal(routing.rows[0][2], g0[:1]) and routing.ids.shape == (1, 16)


def test_compute_columns_of_a_routed_cell():
    task = make_task("assoc_recall", distance=14)
    r = train(task, "routed", lambda_target=0.5, protocol=TINY, model_config=CFG, progress=False)
    test = task.fixed_set("test", 0, 40, 20)
    cols, routing = compute_columns("routed", r.model, CFG, task, test, 0.25, torch.device("cpu"), TINY, r)
    T = 16
    assert cols["macs_forward_attn_ref"] == model_macs("attn", CFG, T, "executed")["total"]
    assert cols["macs_forward_dense_original"] == model_macs("routed", CFG, T, "executed", "dense")["total"]
    counts = read_routing(r.model, test).counts
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
    assert cols["macs_forward_executed"] == cols["macs_forward_dense_original"] == cols["macs_forward_attn_ref"]
    assert cols["train_flops_phase2"] == 0


def test_latency_is_interleaved_medians():
    calls = []
    out = median_latency_ms({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                            torch.device("cpu"), repeats=3)
    assert calls == ["a", "b"] + ["a", "b"] * 3 and set(out) == {"a", "b"}


def closed_executed(cfg, T, counts, router_counted: bool) -> float:
    """Mean closed-form sparse MACs; the closed form's router part is the original router's."""
    drop = 0 if router_counted else router(cfg, T)["router"] * cfg.n_layers
    return sum(model_macs("routed", cfg, T, "executed", "sparse", routed_counts=c)["total"] - drop
               for c in counts) / len(counts)


@pytest.mark.parametrize("name, kwargs", [
    ("gumbel", {}), ("last", {}), ("layer", {"layer": 1}), ("always_attn", {}), ("always_conv", {}),
    ("random", {"p": 0.3}),
])
def test_counted_executed_macs_match_the_closed_form(name, kwargs):
    cfg = dataclasses.replace(CFG, router=name, router_kwargs=kwargs)
    torch.manual_seed(0)
    m = build_model("routed", cfg).set_execution("sparse")
    task = make_task("assoc_recall", distance=14)
    routing = read_routing(m, task.fixed_set("test", 0, 16, 8))
    # fixed policies have no parameters and cost no MACs; the closed form assumes the MLP router
    assert executed_macs(m, routing) == closed_executed(cfg, 16, routing.counts, name == "gumbel")


def test_counting_per_layer_equals_counting_every_sequence():
    # an untrained gumbel router routes by content: most sequences have their own signature
    torch.manual_seed(1)
    m = build_model("routed", CFG).eval().set_execution("sparse")
    task = make_task("assoc_recall", distance=14)
    batches = task.fixed_set("test", 0, 12, 4)
    routing = read_routing(m, batches)
    assert len({tuple(c) for c in routing.counts}) > 3
    each = []
    for b in batches:
        for block in m.blocks:
            block.mixer.forced_gate = None
        gates = torch.stack(m(b.inputs).gates)
        for i in range(b.inputs.shape[0]):
            for layer, block in enumerate(m.blocks):
                block.mixer.forced_gate = gates[layer, i:i + 1]
            each.append(counter_forward_flops(m, b.inputs[i:i + 1]) // 2)
    assert executed_macs(m, routing) == pytest.approx(sum(each) / len(each), rel=1e-12)


class WideRouter(nn.Module):
    """A plugin router with its own MLP of width `hidden` (imported as test_compute:WideRouter)."""

    def __init__(self, cfg, layer_index, hidden=8):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(cfg.d_model, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, x):
        score = self.net(x).squeeze(-1)
        hard = (score > 0).to(x.dtype)
        return hard + (score - score.detach()) if self.training else hard


def test_a_plugin_router_is_counted_at_its_own_cost():
    task = make_task("assoc_recall", distance=14)
    test = task.fixed_set("test", 0, 8, 8)
    forced = [torch.zeros(1, 16), torch.zeros(1, 16)]  # the same routing for every router
    forced[0][0, [3, 15]] = 1
    forced[1][0, 8:] = 1
    result = SimpleNamespace(history=[], epochs_phase1=1, epochs_phase2=0)
    cols = {}
    for key, cfg in [("gumbel", CFG)] + [
            (h, dataclasses.replace(CFG, router="test_compute:WideRouter", router_kwargs={"hidden": h}))
            for h in (8, 64, 512)]:
        torch.manual_seed(0)
        m = build_model("routed", cfg)
        for block, g in zip(m.blocks, forced):
            block.mixer.forced_gate = g
        cols[key], _ = compute_columns("routed", m, cfg, task, test, 0.5, torch.device("cpu"), TINY, result)
    executed = {k: c["macs_forward_executed"] for k, c in cols.items()}
    assert executed[8] < executed[64] < executed[512] and executed[512] > executed["gumbel"]
    # exactly the router's own work apart: Linear(d, h) and Linear(h, 1) at every position, per layer
    for h in (8, 64, 512):
        extra = CFG.n_layers * (16 * (CFG.d_model * h + h) - router(CFG, 16)["router"])
        assert executed[h] - executed["gumbel"] == extra
        assert cols[h]["macs_forward_dense_original"] - cols["gumbel"]["macs_forward_dense_original"] == extra
