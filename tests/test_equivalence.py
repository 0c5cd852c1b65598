"""Our fast path computes the same function as a plain transcription of the original."""
import pytest
import torch
import torch.nn.functional as F

from baselines import MODELS, ModelConfig, build_model, causal_ema
from reference import RefLM

TOL = 1e-4


def pair(name, cfg):
    torch.manual_seed(0)
    ours = build_model(name, cfg)
    ref = RefLM(name, cfg)
    ref.load_state_dict(ours.state_dict(), strict=True)
    # move away from the uniform-kernel init so a wrong tap order would show
    with torch.no_grad():
        for m in (ours, ref):
            for n, p in m.named_parameters():
                if "kernel_logits" in n:
                    p.copy_(torch.linspace(-2, 2, p.numel()).view_as(p))
    return ours, ref


@pytest.mark.parametrize("decay", [0.9, 0.5])
@pytest.mark.parametrize("T", [1, 63, 64, 65, 200])
def test_causal_ema_matches_the_loop(T, decay):
    x = torch.randn(3, T, 8, dtype=torch.float64, requires_grad=True)
    c, ref = torch.zeros(3, 8, dtype=torch.float64), []
    for t in range(T):
        c = decay * c + (1 - decay) * x[:, t]
        ref.append(c)
    ref = torch.stack(ref, 1)
    ours = causal_ema(x, decay)
    assert torch.allclose(ours, ref, atol=1e-12)
    w = torch.randn_like(ref)
    g_ours, = torch.autograd.grad((ours * w).sum(), x)
    g_ref, = torch.autograd.grad((ref * w).sum(), x)
    assert torch.allclose(g_ours, g_ref, atol=1e-12)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("cfg", [ModelConfig(), ModelConfig(d_model=48, n_layers=3, n_heads=3, kernel_size=5)],
                         ids=["faithful", "odd"])
@pytest.mark.parametrize("train_mode", [False, True])
def test_logits_and_gradients_match_the_plain_transcription(name, cfg, train_mode):
    ours, ref = pair(name, cfg)
    ours.train(train_mode)
    ref.train(train_mode)
    ids = torch.randint(0, 256, (3, 130))
    positions = torch.tensor([5, 64, 100, 129])
    targets = torch.randint(0, 256, (3, 4))
    lam = 0.3

    torch.manual_seed(11)
    out = ours(ids, positions)
    torch.manual_seed(11)
    ref_logits, ref_gates = ref(ids)

    assert (out.logits - ref_logits[:, positions]).abs().max() <= TOL
    for g, rg in zip(out.gates, ref_gates):
        assert torch.equal(g.detach(), rg.detach())

    def loss(logits, gates):
        usage = torch.stack([g.mean() for g in gates]).mean()
        return F.cross_entropy(logits.reshape(-1, 256), targets.reshape(-1)) + lam * usage

    loss(out.logits, out.gates).backward()
    loss(ref_logits[:, positions], ref_gates).backward()
    ref_grads = dict(ref.named_parameters())
    for n, p in ours.named_parameters():
        rp = ref_grads[n]
        if rp.grad is None:
            assert p.grad is None or not p.grad.any(), n
            continue
        assert (p.grad - rp.grad).abs().max() <= TOL, n


@pytest.mark.parametrize("name", list(MODELS))
def test_full_sequence_logits_match(name):
    ours, ref = pair(name, ModelConfig(d_model=32, n_layers=2, n_heads=4, kernel_size=16))
    ours.eval(), ref.eval()
    ids = torch.randint(0, 256, (2, 70))
    with torch.no_grad():
        assert (ours(ids).logits - ref(ids)[0]).abs().max() <= TOL
