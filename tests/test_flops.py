"""FLOP counts: fvcore == closed form == FlopCounterMode / 2, exactly."""
import pytest
import torch

from baselines import ModelConfig, build_model
from suite.compute.flops import counter_forward_flops, fvcore_parts, training_step_flops
from suite.compute.formulas import PARTS, model_macs

FAITHFUL = ModelConfig()


def ids(T, seed=0):
    return torch.randint(0, 256, (1, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("T", [32, 128, 512])
@pytest.mark.parametrize("name", ["attn", "conv", "routed"])
def test_dense_models_three_ways(name, T):
    m = build_model(name).eval()
    x = ids(T)
    for reading in ("dense", "causal", "executed"):
        closed = model_macs(name, FAITHFUL, T, reading)
        fv = fvcore_parts(m, x, reading)
        assert fv["unsupported"] == [], fv["unsupported"]
        assert {p: fv[p] for p in PARTS} == {p: closed[p] for p in PARTS}
        assert fv["total"] == closed["total"] == counter_forward_flops(m, x, reading) // 2
        assert counter_forward_flops(m, x, reading) % 2 == 0


def test_attention_closed_form_against_hand_numbers():
    # one layer, T = 512, d = 128: QKV + out = 4 T d^2; scores + AV = 2 d T^2 dense, 2 d T(T+1)/2 causal
    c = model_macs("attn", ModelConfig(n_layers=1), 512, "dense")
    assert c["attention_proj"] == 4 * 512 * 128 * 128 == 33_554_432
    assert c["attention_core"] == 2 * 128 * 512 * 512 == 67_108_864
    assert model_macs("attn", ModelConfig(n_layers=1), 512, "causal")["attention_core"] == 128 * 512 * 513


def gate_patterns(T):
    one = [T - 1]
    quarter = list(range(0, T, 4))
    spread = [0, 5, T // 2, T - 2]
    return {"none": [[]] * 4, "one-query": [one] * 4, "mixed": [[], one, quarter, spread],
            "all": [list(range(T))] * 4}


@pytest.mark.parametrize("pattern", ["none", "one-query", "mixed", "all"])
@pytest.mark.parametrize("T", [32, 128, 512])
def test_sparse_routed_three_ways(pattern, T):
    routed = gate_patterns(T)[pattern]
    m = build_model("routed").eval().set_execution("sparse")
    for blk, pos in zip(m.blocks, routed):
        g = torch.zeros(1, T)
        g[0, pos] = 1
        blk.mixer.forced_gate = g
    x = ids(T)
    for reading in ("dense", "executed"):
        closed = model_macs("routed", FAITHFUL, T, reading, "sparse", routed)
        fv = fvcore_parts(m, x, reading)
        assert fv["unsupported"] == []
        assert {p: fv[p] for p in PARTS} == {p: closed[p] for p in PARTS}
        assert fv["total"] == closed["total"] == counter_forward_flops(m, x, reading) // 2
    # causal-effective needs the mask's values: FlopCounterMode sees them, fvcore cannot
    closed = model_macs("routed", FAITHFUL, T, "causal", "sparse", routed)
    assert closed["total"] == counter_forward_flops(m, x, "causal") // 2


def test_sparse_at_one_query_saves_far_less_than_usage_suggests():
    T = 128
    one = model_macs("routed", FAITHFUL, T, "executed", "sparse", [[T - 1]] * 4)["total"]
    attn = model_macs("attn", FAITHFUL, T, "executed")["total"]
    usage = 1 / T
    assert 1 - one / attn < 0.5 < 1 - usage


def test_training_step_counts_backward_with_the_grouped_conv_fixed():
    m = build_model("conv", ModelConfig(d_model=32, n_layers=2, n_heads=2, kernel_size=8))
    x = ids(40)

    def step():
        m(x).logits.sum().backward()
    fwd = counter_forward_flops(m, x)
    # every linear and conv computes grads for its input and its weight: 3 x forward
    assert training_step_flops(step) == 3 * fwd
