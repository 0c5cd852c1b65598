"""Decision swaps: controls at equal budget on a trained routed model (suite.audit.swaps)."""
import dataclasses

import pytest
import torch

from baselines import ModelConfig, build_model
from suite.audit.swaps import COLUMNS, control_gates, decision_swaps, learned_gates
from suite.compute.readings import executed_macs, read_routing
from suite.run.protocol import FAITHFUL
from suite.run.trainer import evaluate, train
from tasks import IGNORE, Batch, make_task

CFG = ModelConfig(d_model=16, n_layers=2, n_heads=2, kernel_size=4)
T = 16


@pytest.fixture(autouse=True)
def _one_thread():
    """After conftest's: one intra-op thread (the cores are shared; two threads that wait on each
    other under load make the training test many times slower)."""
    torch.set_num_threads(1)


ORDER = ["learned", "random", "last", "oracle", "one_layer", "one_layer_0", "one_layer_1", "conv", "attn"]


def routed(router="gumbel", seed=1, **kwargs):
    torch.manual_seed(seed)
    cfg = dataclasses.replace(CFG, router=router, router_kwargs=kwargs)
    return build_model("routed", cfg).eval()


def recall_set(n=12, batch=4):
    return make_task("assoc_recall", distance=14).fixed_set("test", 0, n, batch)


def by_control(rows):
    return {r["control"]: r for r in rows}


def test_random_and_last_keep_each_sequences_per_layer_count_exactly():
    m = routed("random", p=0.25)  # counts differ between sequences and layers
    batches = recall_set()
    learned = learned_gates(m, batches)
    counts = torch.cat([g.sum(-1) for g in learned], 1)                 # (L, N)
    assert len(set(counts.flatten().tolist())) > 2, "the test needs varied counts"
    assert counts.sum(0).max() <= T, "the test needs totals the cap at T leaves alone"
    gates = control_gates(learned, batches, seed=0)
    assert list(gates) == [c for c in ORDER if c != "one_layer"]
    t = torch.arange(T)
    for i, (g, b) in enumerate(zip(learned, batches)):
        c = g.sum(-1)                                                   # (L, B)
        for name in ("random", "last"):
            forced = gates[name][i]
            assert forced.shape == g.shape and set(forced.unique().tolist()) <= {0.0, 1.0}
            assert torch.equal(forced.sum(-1), c)
        assert torch.equal(gates["last"][i], (t >= T - c[..., None]).to(g.dtype))
        total = c.sum(0).clamp(max=T)
        for k in range(2):
            one = gates[f"one_layer_{k}"][i]
            assert torch.equal(one[k], (t >= T - total[:, None]).to(g.dtype)) and one[1 - k].sum() == 0
        assert torch.equal(gates["oracle"][i], b.mask.expand(2, -1, -1).to(g.dtype))
        assert torch.all(gates["conv"][i] == 0) and torch.all(gates["attn"][i] == 1)
        assert torch.equal(gates["learned"][i], g)

    rows = decision_swaps(m, batches)
    assert [r["control"] for r in rows] == ORDER
    assert all(list(r) == list(COLUMNS) for r in rows)
    r = by_control(rows)
    for name in ("random", "last"):
        assert r[name]["usage_per_layer"] == r["learned"]["usage_per_layer"]
        assert r[name]["usage"] == r["learned"]["usage"]
    learned_total = sum(r["learned"]["usage_per_layer"])
    for k in range(2):
        assert r[f"one_layer_{k}"]["usage_per_layer"][k] == pytest.approx(learned_total, rel=1e-12)
        assert r[f"one_layer_{k}"]["usage_per_layer"][1 - k] == 0
    assert r["conv"]["usage_per_layer"] == [0.0, 0.0] and r["conv"]["usage"] == 0
    assert r["attn"]["usage_per_layer"] == [1.0, 1.0] and r["attn"]["usage"] == 1
    assert r["oracle"]["usage_per_layer"] == [1 / T, 1 / T]             # one scored cell per row


def test_one_layer_caps_the_total_at_the_sequence_length():
    m = routed("always_attn")
    batches = recall_set(4, 4)
    gates = control_gates(learned_gates(m, batches), batches)
    assert torch.all(gates["one_layer_0"][0][0] == 1) and torch.all(gates["one_layer_0"][0][1] == 0)
    r = by_control(decision_swaps(m, batches))
    assert r["one_layer_1"]["usage_per_layer"] == [0.0, 1.0]


def test_random_gates_are_fresh_per_sequence_uniform_and_reproducible():
    m = routed("last")  # one attention position per sequence and layer, everywhere
    batches = recall_set(200, 50)
    learned = learned_gates(m, batches)
    a = control_gates(learned, batches, seed=3)["random"]
    b = control_gates(learned, batches, seed=3)["random"]
    c = control_gates(learned, batches, seed=4)["random"]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    picked = torch.cat([g.argmax(-1) for g in a], 1)                     # (L, N) position per row
    assert len({tuple(row) for row in picked.T.tolist()}) > 100          # not one pattern
    assert set(picked.flatten().tolist()) == set(range(T))               # every position drawn
    assert torch.all(torch.cat(a, 1).sum(-1) == 1)
    # and the swaps themselves are reproducible
    small = batches[:1]
    assert decision_swaps(m, small, seed=5) == decision_swaps(m, small, seed=5)


def test_known_routers_give_known_controls():
    batches = recall_set(8, 4)
    # "last" on assoc_recall: the learned gates are the oracle's and the last control's
    r = by_control(decision_swaps(routed("last"), batches))
    for name in ("last", "oracle"):
        assert {k: r[name][k] for k in ("accuracy", "usage_per_layer", "macs_forward_executed")} == \
               {k: r["learned"][k] for k in ("accuracy", "usage_per_layer", "macs_forward_executed")}
    # "layer" 1: attention at every position of layer 1 only, so one_layer picks layer 1 exactly
    m = routed("layer", layer=1)
    r = by_control(decision_swaps(m, batches))
    assert r["learned"]["usage_per_layer"] == [0.0, 1.0]
    assert r["one_layer_1"]["usage_per_layer"] == [0.0, 1.0]
    assert r["one_layer_1"]["accuracy"] == r["learned"]["accuracy"]
    assert r["one_layer_1"]["macs_forward_executed"] == r["learned"]["macs_forward_executed"]
    assert r["one_layer_0"]["usage_per_layer"] == [1.0, 0.0]
    best = 0 if r["one_layer_0"]["accuracy"] >= r["one_layer_1"]["accuracy"] else 1  # ties: lowest
    assert r["one_layer"] == {**r[f"one_layer_{best}"], "control": "one_layer", "note": f"layer {best}"}
    # "always_conv": learned is the conv control
    r = by_control(decision_swaps(routed("always_conv"), batches))
    assert r["learned"]["accuracy"] == r["conv"]["accuracy"]
    assert r["learned"]["macs_forward_executed"] == r["conv"]["macs_forward_executed"]


def test_learned_equals_evaluate_and_the_model_is_left_unchanged():
    m = routed()
    batches = recall_set()
    m.train()
    state = {k: v.clone() for k, v in m.state_dict().items()}
    before = [block.mixer.forced_gate for block in m.blocks]
    rows = decision_swaps(m, batches)
    assert m.training
    assert [block.mixer.forced_gate for block in m.blocks] == before == [None, None]
    assert all(torch.equal(v, state[k]) for k, v in m.state_dict().items())
    assert all(block.mixer.execution == "dense" for block in m.blocks)
    acc, per_layer = evaluate(m, batches)
    r = by_control(rows)
    assert r["learned"]["accuracy"] == acc
    assert r["learned"]["usage_per_layer"] == pytest.approx(per_layer, abs=1e-7)
    assert r["learned"]["test_total"] == 12 and r["learned"]["test_correct"] == round(acc * 12)
    # a forced gate set beforehand is restored, the very tensor
    g = torch.zeros(4, T)
    m.blocks[0].mixer.forced_gate = g
    decision_swaps(m, batches[:1])
    assert m.blocks[0].mixer.forced_gate is g and m.blocks[1].mixer.forced_gate is None


def test_a_baseline_is_refused():
    with pytest.raises(TypeError, match="routed"):
        decision_swaps(build_model("attn", CFG), recall_set(4, 4))


def test_only_scored_cells_count():
    m = routed()
    task = make_task("copy", distance=8, segment_len=4)                # T 12, scored 8..11
    b = task.fixed_set("test", 0, 6, 6)[0]
    targets = b.targets.clone()
    targets[0, :] = IGNORE
    targets[1:4, 2] = IGNORE
    batch = Batch(b.inputs, b.positions, targets)
    scored = targets != IGNORE
    gates = control_gates(learned_gates(m, [batch]), [batch])
    want = torch.zeros(6, 12, dtype=torch.bool)
    want[:, 8:] = scored
    assert torch.equal(gates["oracle"][0], want.expand(2, -1, -1).float())
    r = by_control(decision_swaps(m, [batch]))
    assert r["learned"]["test_total"] == int(scored.sum()) == 24 - 4 - 3
    assert r["learned"]["accuracy"] == evaluate(m, [batch])[0]
    assert r["oracle"]["usage_per_layer"] == [17 / 72, 17 / 72]


def test_executed_macs_follow_the_forced_gates():
    m = routed()
    batches = recall_set()
    r = by_control(decision_swaps(m, batches))
    assert r["conv"]["macs_forward_executed"] < r["attn"]["macs_forward_executed"]
    # (a mixed routing may cost more than all-attention: the conv branch then runs as well)
    assert r["conv"]["macs_forward_executed"] <= r["learned"]["macs_forward_executed"]
    try:
        reading = executed_macs(m, read_routing(m.set_execution("sparse"), batches))
    finally:
        m.set_execution("dense")
    assert r["learned"]["macs_forward_executed"] == reading
    # equal per-layer counts cost the same
    assert r["random"]["macs_forward_executed"] == r["last"]["macs_forward_executed"] == reading


#: long enough for a one-layer d16 model to learn the recall, then a cost that thins its routing
LEARN = dataclasses.replace(FAITHFUL, name="learn", steps_per_epoch=100, eval_batches=4, lr=1e-2,
                            phase1_max_epochs=5, solved_above=0.8, phase2_epochs=3, phase2_floor=0.0)


@pytest.mark.slow
def test_the_oracle_scores_at_least_the_learned_router_on_assoc_recall():
    task = make_task("assoc_recall", distance=14)
    cfg = ModelConfig(d_model=16, n_layers=1, n_heads=2, kernel_size=4)
    result = train(task, "routed", lambda_target=2.0, protocol=LEARN, model_config=cfg, progress=False)
    test = task.fixed_set("test", 0, 200, 100)
    r = by_control(decision_swaps(result.model, test))
    assert r["learned"]["accuracy"] > 0.5, "the tiny model should have learned the recall"
    assert r["oracle"]["accuracy"] >= r["learned"]["accuracy"]
    assert r["learned"]["accuracy"] == evaluate(result.model, test)[0]
