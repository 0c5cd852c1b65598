import pydantic
import pytest
import torch

from baselines import MODELS, ModelConfig, ModelConfigError, build_model, count_params
from baselines.routers import GumbelRouter, make_router
from conftest import SMALL
from suite.errors import message


def test_faithful_parameter_counts():
    assert {n: count_params(build_model(n)) for n in MODELS} == {
        "attn": 859_136, "conv": 728_064, "routed": 1_124_872}


def test_parameter_counts_follow_the_config():
    # closed form for d=32, 2 layers, 2 heads, k=8, vocab 256
    d, L, V, k, H = 32, 2, 256, 8, 2
    ln, ffn = 2 * d, 8 * d * d + 5 * d
    attn, conv = 4 * d * d + 4 * d, 2 * d * d + 2 * d + H * k
    router = 2 * d * d + d + 2 * d + 2
    shell = V * d + 2 * d + d * V + V
    assert count_params(build_model("attn", SMALL)) == shell + L * (2 * ln + ffn + attn)
    assert count_params(build_model("conv", SMALL)) == shell + L * (2 * ln + ffn + conv)
    assert count_params(build_model("routed", SMALL)) == shell + L * (2 * ln + ffn + attn + conv + router)


def test_conv_kernel_starts_uniform_and_no_positional_parameters():
    m = build_model("routed")
    for b in m.blocks:
        assert torch.equal(b.mixer.conv.kernel_logits, torch.zeros(4, 64))
    names = [n for n, _ in m.named_parameters()]
    assert not any("pos" in n for n in names)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("train_mode", [False, True])
def test_causal_future_tokens_do_not_move_the_past(name, train_mode):
    torch.manual_seed(0)
    m = build_model(name, SMALL).train(train_mode)
    ids = torch.randint(0, 256, (3, 90))
    t = 50
    ids2 = ids.clone()
    ids2[:, t + 1:] = torch.randint(0, 256, (3, 90 - t - 1))
    torch.manual_seed(1)
    a = m(ids)
    torch.manual_seed(1)
    b = m(ids2)
    assert torch.allclose(a.logits[:, :t + 1], b.logits[:, :t + 1], atol=1e-6)
    assert not torch.allclose(a.logits[:, t + 1:], b.logits[:, t + 1:], atol=1e-3)
    for ga, gb in zip(a.gates, b.gates):
        assert torch.equal(ga[:, :t + 1], gb[:, :t + 1])


def test_router_decisions_are_causal_and_depend_on_the_past():
    torch.manual_seed(0)
    r = GumbelRouter(SMALL).eval()
    x = torch.randn(4, 100, 32)
    x2 = x.clone()
    x2[:, 61:] = torch.randn(4, 39, 32)
    l1, l2 = r.logits(x), r.logits(x2)
    assert torch.equal(l1[:, :61], l2[:, :61])
    assert not torch.allclose(l1[:, 61:], l2[:, 61:])
    # the moving average makes position t depend on earlier positions
    x3 = x.clone()
    x3[:, 10] += 1.0
    assert not torch.allclose(r.logits(x3)[:, 11], l1[:, 11])


def test_eval_gates_are_exactly_argmax_and_train_gates_are_hard():
    torch.manual_seed(0)
    m = build_model("routed", SMALL)
    ids = torch.randint(0, 256, (4, 40))
    m.eval()
    with torch.no_grad():
        out = m(ids)
        x = m.embedding(ids)
        first = m.blocks[0]
        logits = first.mixer.router.logits(first.norm1(x))
    for g in out.gates:
        assert set(g.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(out.gates[0], (logits.argmax(-1) == 1).float())
    m.train()
    out = m(ids)
    for g in out.gates:
        assert set(g.detach().unique().tolist()) <= {0.0, 1.0} and g.requires_grad


def test_baseline_gates_are_constant():
    ids = torch.randint(0, 256, (2, 20))
    assert all(bool((g == 1).all()) for g in build_model("attn", SMALL)(ids).gates)
    assert all(bool((g == 0).all()) for g in build_model("conv", SMALL)(ids).gates)


def test_positions_output_shape():
    m = build_model("routed", SMALL).eval()
    out = m(torch.randint(0, 256, (2, 20)), torch.tensor([3, 19]))
    assert out.logits.shape == (2, 2, 256) and all(g.shape == (2, 20) for g in out.gates)


@pytest.mark.parametrize("kwargs,needle", [
    ({"d_model": 30, "n_heads": 4}, "n_heads: must divide d_model"),
    ({"d_model": 0}, "d_model: Input should be greater than or equal to 1"),
    ({"d_model": 100_000}, "d_model: Input should be less than or equal to 8192"),
    ({"kernel_size": 2.0}, "kernel_size: Input should be a valid integer"),
    ({"n_layers": True}, "n_layers: Input should be a valid integer"),
    ({"ema_decay": 1.0}, "ema_decay: Input should be less than 1"),
    ({"ema_decay": float("nan")}, "ema_decay: Input should be a finite number"),
])
def test_bad_model_config(kwargs, needle):
    with pytest.raises(pydantic.ValidationError) as e:
        ModelConfig(**kwargs)
    assert needle in message(e.value) and "\n" not in message(e.value)


def test_unknown_model_router_and_config_key():
    with pytest.raises(ModelConfigError, match="model: unknown 'mamba'"):
        build_model("mamba")
    with pytest.raises(ModelConfigError, match="router: unknown 'topk'"):
        make_router(ModelConfig(router="topk"))
    with pytest.raises(ModelConfigError, match="width: not a model parameter"):
        ModelConfig.from_dict({"width": 3})


def test_force_gates_sets_each_routed_layer_and_releases_them():
    m = build_model("routed", SMALL)
    g0, g1 = torch.zeros(1, 8), torch.ones(1, 8)
    m.force_gates([g0, g1])
    assert [b.mixer.forced_gate for b in m.blocks] == [g0, g1]
    m.force_gates(g1)
    assert all(b.mixer.forced_gate is g1 for b in m.blocks)
    m.force_gates(None)
    assert all(b.mixer.forced_gate is None for b in m.blocks)
    with pytest.raises(ValueError, match="^force_gates: 1 gates for 2 routed layers"):
        m.force_gates([g0])
    with pytest.raises(ValueError, match="^force_gates: AttnOnly has no router"):
        build_model("attn", SMALL).force_gates(None)
